"""The measures of a classifier beside accuracy, from its predictions: numpy only, no TensorFlow.

For an inspector the question is how many of the rare class are missed (its recall) at what false-alarm rate, which
accuracy hides: always predicting the common class of a 69/31 set scores 69%. So every classifier run reports,
from the confusion matrix counts[true, predicted]:

- per class: precision = TP / predicted, recall = TP / support, F1 = their harmonic mean (0 where undefined);
- balanced accuracy = the mean of the recalls (50% for the constant guess of two classes);
- macro F1 = the mean of the F1s;
- for two classes, ROC AUC of the second class's probability (the chance that a random image of it scores above
  a random image of the first; ties count half).

An inspector then fixes how many of the rare class may be missed: --target_recall picks, on the validation split,
the threshold on that class's probability which finds that share of it (threshold_for_recall), and the test split
says what it costs in false alarms (at_threshold).
"""

import numpy as np

SELECT_BY = ("accuracy", "balanced_accuracy", "macro_f1")  # what early stopping may follow (--select_by)
CLASS_WEIGHTS = ("none", "balanced")  # the loss weights of --class_weight (balanced_class_weights)


def confusion_matrix(labels, predictions, num_classes):
    """counts[true, predicted]."""
    counts = np.zeros([num_classes, num_classes], np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predictions)), 1)
    return counts


def _ratio(numerator, denominator):
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def per_class(counts):
    """(precision, recall, f1, support), each a float array over the classes (support: int counts)."""
    hits = np.diag(counts).astype(float)
    support = counts.sum(axis=1)
    precision = _ratio(hits, counts.sum(axis=0).astype(float))
    recall = _ratio(hits, support.astype(float))
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1, support


def summary(counts):
    """accuracy, balanced_accuracy (over the classes present) and macro_f1 of a confusion matrix."""
    _, recall, f1, support = per_class(counts)
    present = support > 0
    return {"accuracy": float(np.trace(counts) / max(1, counts.sum())),
            "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0}


def roc_auc(labels, scores):
    """Area under the ROC curve of ``scores`` for the positive labels (1) against the negative ones (0): the
    Mann-Whitney statistic from average ranks, so tied scores count half. None with only one class present."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return None
    order = np.argsort(scores, kind="stable")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    # ties: every member of a run of equal scores gets the run's mean rank
    _, first, count = np.unique(sorted_scores, return_index=True, return_counts=True)
    mean_rank = first + (count + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, count)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def report(counts, labels, probabilities, class_names):
    """Everything metrics.json holds about a split from its confusion matrix ``counts`` (and, for two classes, the
    true ``labels`` and the ``probabilities`` for roc_auc of the second class): the summary and per-class
    precision/recall/F1/support by class name."""
    precision, recall, f1, support = per_class(counts)
    values = summary(counts)
    values["per_class"] = {str(name): {"precision": float(p), "recall": float(r), "f1": float(f),
                                       "support": int(s)}
                           for name, p, r, f, s in zip(class_names, precision, recall, f1, support)}
    if len(class_names) == 2:
        values["roc_auc"] = roc_auc(np.asarray(labels) == 1, np.asarray(probabilities)[:, 1])
    return values


def threshold_for_recall(is_positive, scores, target):
    """The highest threshold t such that ``scores >= t`` flags at least the share ``target`` of the positives (the
    k-th highest positive score, k = ceil(target * positives)); ValueError without positives."""
    positive_scores = np.sort(np.asarray(scores)[np.asarray(is_positive, bool)])[::-1]
    if not len(positive_scores):
        raise ValueError("no image of the class to find")
    needed = max(1, int(np.ceil(target * len(positive_scores) - 1e-9)))
    return float(positive_scores[needed - 1])


def at_threshold(is_positive, scores, threshold):
    """What flagging ``scores >= threshold`` does: recall (share of positives flagged), false_alarm_rate (share of
    negatives flagged), precision (share of flagged that are positive; 0 if none is), and the counts."""
    is_positive = np.asarray(is_positive, bool)
    flagged = np.asarray(scores) >= threshold
    found, false_alarms = int((flagged & is_positive).sum()), int((flagged & ~is_positive).sum())
    positives, negatives = int(is_positive.sum()), int((~is_positive).sum())
    return {"recall": found / positives if positives else 0.0,
            "false_alarm_rate": false_alarms / negatives if negatives else 0.0,
            "precision": found / (found + false_alarms) if found + false_alarms else 0.0,
            "found": found, "positives": positives, "false_alarms": false_alarms, "negatives": negatives}


def operating_point(target_recall, index, class_name, validation, test):
    """--target_recall's report: the threshold on class ``index``'s probability chosen on the validation split,
    and what it does there and on the test split (each a (labels, probabilities) pair)."""
    scores = {name: (np.asarray(labels) == index, np.asarray(probabilities)[:, index])
              for name, (labels, probabilities) in (("validation", validation), ("test", test))}
    threshold = threshold_for_recall(*scores["validation"], target_recall)
    return {"class": class_name, "target_recall": target_recall, "threshold": threshold,
            **{name: at_threshold(*pair, threshold) for name, pair in scores.items()}}


def operating_point_lines(report):
    """The log lines of an operating_point report."""
    name, val, test = report["class"], report["validation"], report["test"]
    return [f"operating point: {name} where its probability >= {report['threshold']:.4f}, which finds "
            f"{val['recall']:.1%} of the validation's {name} (--target_recall={report['target_recall']:g})",
            f"on the test split it finds {test['recall']:.1%} of {name} ({test['found']} of {test['positives']}) "
            f"at a false alarm rate of {test['false_alarm_rate']:.1%} ({test['false_alarms']} of "
            f"{test['negatives']} others flagged), precision {test['precision']:.1%}"]


def table_lines(values):
    """The per-class table of a report, as log lines."""
    width = max(5, *(len(name) for name in values["per_class"]))
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for name, v in values["per_class"].items():
        lines.append(f"{name:<{width}}  {v['precision']:9.4f}  {v['recall']:6.4f}  {v['f1']:.4f}  {v['support']:7d}")
    auc = f", ROC AUC {values['roc_auc']:.4f}" if values.get("roc_auc") is not None else ""
    lines.append(f"balanced accuracy {values['balanced_accuracy']:.4f}, macro F1 {values['macro_f1']:.4f}{auc}")
    return lines


def balanced_class_weights(labels, class_names):
    """sklearn's 'balanced' weights, N / (K * n_c) for each class c of the training labels: the loss of each class
    then weighs as much as every other's. ValueError naming a class with no training image."""
    counts = np.bincount(np.asarray(labels), minlength=len(class_names))
    missing = [str(name) for name, n in zip(class_names, counts) if n == 0]
    if missing:
        raise ValueError(f"class {', '.join(missing)} has no training image")
    return (counts.sum() / (len(class_names) * counts)).astype(np.float32)
