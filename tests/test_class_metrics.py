"""The measures beside accuracy (per-class precision/recall/F1, balanced accuracy, macro F1, ROC AUC, PR curves),
--class_weight=balanced, --select_by and --target_recall's operating point: against hand computations, and
through real imbalanced two-class runs."""

import itertools
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from cae import class_metrics, data, export, models, predict, transfer
from cae.config import ExportConfig, TransferConfig
from cae.errors import UserError

from conftest import snapshot

v1 = tf.compat.v1


def test_measures_match_a_hand_computation():
    counts = np.array([[5, 1, 0],   # class a: 6 images, 5 right
                       [2, 3, 1],   # class b: 6 images, 3 right
                       [0, 0, 4]])  # class c: 4 images, all right
    precision, recall, f1, support = class_metrics.per_class(counts)
    np.testing.assert_allclose(precision, [5 / 7, 3 / 4, 4 / 5])
    np.testing.assert_allclose(recall, [5 / 6, 3 / 6, 4 / 4])
    np.testing.assert_allclose(f1, [2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6), 2 * .75 * .5 / 1.25, 2 * .8 / 1.8])
    np.testing.assert_array_equal(support, [6, 6, 4])
    values = class_metrics.summary(counts)
    assert values["accuracy"] == pytest.approx(12 / 16)
    assert values["balanced_accuracy"] == pytest.approx((5 / 6 + 1 / 2 + 1) / 3)
    assert values["macro_f1"] == pytest.approx(f1.mean())
    labels = np.repeat([0, 0, 0, 1, 1, 1, 2, 2, 2], counts.ravel())
    predictions = np.repeat([0, 1, 2] * 3, counts.ravel())
    np.testing.assert_array_equal(class_metrics.confusion_matrix(labels, predictions, 3), counts)
    # a class never predicted has precision 0 (not NaN); the constant guess of two classes has balanced accuracy 1/2
    constant = class_metrics.summary(np.array([[69, 0], [31, 0]]))
    assert constant == pytest.approx({"accuracy": .69, "balanced_accuracy": .5, "macro_f1": (2 * .69 / 1.69) / 2})


def test_roc_auc_is_the_share_of_positive_negative_pairs_in_order_ties_half():
    rng = np.random.default_rng(0)
    labels = rng.random(60) < 0.3
    scores = np.round(rng.random(60) + labels * 0.3, 1)  # rounded: many ties
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0)
             for p, n in itertools.product(scores[labels], scores[~labels])]
    assert class_metrics.roc_auc(labels, scores) == pytest.approx(np.mean(pairs))
    assert class_metrics.roc_auc(labels, labels.astype(float)) == 1.0
    assert class_metrics.roc_auc(np.ones(5, bool), np.arange(5.0)) is None


def test_the_threshold_for_a_recall_is_the_kth_highest_positive_score():
    is_positive = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1], bool)
    scores = np.array([.9, .8, .3, .6, .7, .2, .1, .5, .05, .4])  # positives ranked .9 .8 .6 .4 .3
    assert class_metrics.threshold_for_recall(is_positive, scores, 0.6) == .6  # 3 of 5
    assert class_metrics.threshold_for_recall(is_positive, scores, 0.61) == .4  # 3.05: 4 needed
    assert class_metrics.threshold_for_recall(is_positive, scores, 1.0) == .3
    assert class_metrics.threshold_for_recall(is_positive, scores, 0.0) == .9  # at least one
    point = class_metrics.at_threshold(is_positive, scores, .4)  # flags .9 .8 .7 .6 .5 .4
    assert point == {"recall": 4 / 5, "false_alarm_rate": 2 / 5, "precision": 4 / 6, "found": 4, "positives": 5,
                     "false_alarms": 2, "negatives": 5}
    assert class_metrics.at_threshold(is_positive, scores, 1.0)["precision"] == 0.0  # nothing flagged
    with pytest.raises(ValueError, match="no image of the class"):
        class_metrics.threshold_for_recall(np.zeros(3, bool), scores[:3], 0.9)


def test_balanced_class_weights_follow_the_counts():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    weights = class_metrics.balanced_class_weights(labels, ["a", "b", "c"])
    np.testing.assert_allclose(weights, [10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)], rtol=1e-6)
    assert (weights[labels].sum()) == pytest.approx(len(labels))  # the mean weight of a training image is 1
    with pytest.raises(ValueError, match="class c has no training image"):
        class_metrics.balanced_class_weights(labels[:9], ["a", "b", "c"])


def test_weighted_loss_is_the_class_weighted_mean_cross_entropy(mnist):
    weights = np.array([3.0, 0.5] + [1.0] * 8, np.float32)
    images, labels = mnist.test.images[:50], mnist.test.labels[:50]
    with tf.Graph().as_default():
        logits = models.classifier(models.image_input()).logits
        label_in = v1.placeholder(tf.int64, [None])
        weighted = models.cross_entropy(logits, label_in, weights)
        plain = models.cross_entropy(logits, label_in)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            got, got_plain, z = sess.run([weighted, plain, logits], {"IMAGE_IN:0": images, label_in: labels})
    z = z.astype(np.float64)
    xent = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - z[np.arange(50), labels]
    assert got == pytest.approx(np.mean(weights[labels] * xent), rel=1e-5)
    assert got_plain == pytest.approx(np.mean(xent), rel=1e-5)


def two_class(mnist, rare_share):
    """Digits 3 ("fine", common) against 8 ("defect", rare: ``rare_share`` of every split), real MNIST images."""
    def pick(split, size):
        fine = np.flatnonzero(split.labels == 3)[:round(size * (1 - rare_share))]
        defect = np.flatnonzero(split.labels == 8)[:round(size * rare_share)]
        order = np.sort(np.concatenate([fine, defect]))
        return data.Split(split.images[order], (split.labels[order] == 8).astype(np.int64))
    return data.Datasets(pick(mnist.train, 2000), pick(mnist.validation, 400), pick(mnist.test, 800),
                         models.MNIST_SHAPE, ("fine", "defect"))


def restored_predictions(train_dir, images, num_classes):
    with tf.Graph().as_default() as graph:
        t = models.classifier(models.image_input(), num_classes)
        saver = v1.train.Saver(v1.trainable_variables())
        with v1.Session(graph=graph) as sess:
            saver.restore(sess, tf.train.latest_checkpoint(train_dir))
            return sess.run([t.predictions, t.probabilities], {t.images: images})


def test_imbalanced_run_reports_per_class_measures_and_pr_curves(tmp_path, mnist):
    sets = two_class(mnist, rare_share=0.1)
    train_dir = str(tmp_path / "run")
    metrics = transfer.transfer(TransferConfig(train_dir=train_dir, epochs=2, batch_size=64, learning_rate=3e-4,
                                               class_weight="balanced", select_by="balanced_accuracy",
                                               projector_images=0), sets)
    counts = np.bincount(sets.train.labels)
    np.testing.assert_allclose(metrics["class_weights"], len(sets.train.labels) / (2 * counts), rtol=1e-6)
    predictions, probabilities = restored_predictions(train_dir, sets.test.images, 2)
    matrix = class_metrics.confusion_matrix(sets.test.labels, predictions, 2)
    recall = np.diag(matrix) / matrix.sum(1)
    precision = np.diag(matrix) / matrix.sum(0)
    for index, name in enumerate(("fine", "defect")):
        assert metrics["test_per_class"][name]["recall"] == pytest.approx(recall[index])
        assert metrics["test_per_class"][name]["precision"] == pytest.approx(precision[index])
        assert metrics["test_per_class"][name]["support"] == matrix[index].sum()
    assert metrics["test_balanced_accuracy"] == pytest.approx(recall.mean())
    assert metrics["test_roc_auc"] == pytest.approx(class_metrics.roc_auc(sets.test.labels == 1, probabilities[:, 1]),
                                                    abs=1e-6)
    assert metrics["test_roc_auc"] > 0.95  # 3 against 8 is easy; a broken score would sit near 0.5
    assert metrics["select_by"] == "balanced_accuracy" and metrics["best_validation_score"] > 0.8
    assert json.load(open(os.path.join(train_dir, "metrics.json")))["test_per_class"] == metrics["test_per_class"]

    events = event_accumulator.EventAccumulator(train_dir, size_guidance={"tensors": 0})
    events.Reload()
    steps = [e.step for e in events.Scalars("val/balanced_accuracy")]
    assert len(steps) == 2 and [e.step for e in events.Scalars("test/roc_auc")] == [steps[-1]]
    for name, index in (("fine", 0), ("defect", 1)):
        assert [e.step for e in events.Tensors(f"val/pr_curve/{name}/pr_curves")] == steps
        curve = tf.make_ndarray(events.Tensors(f"test/pr_curve/{name}/pr_curves")[0].tensor_proto)
        # rows: TP, FP, TN, FN, precision, recall over thresholds 0 ... 1; at threshold 0 everything is positive
        assert curve[0, 0] == (sets.test.labels == index).sum() and curve[5, 0] == 1.0
        assert curve[1, 0] == (sets.test.labels != index).sum()


def test_balanced_weights_need_every_class_in_the_training_split(tmp_path, mnist):
    sets = two_class(mnist, rare_share=0.1)
    sets = sets._replace(train=data.Split(sets.train.images[sets.train.labels == 0],
                                          sets.train.labels[sets.train.labels == 0]))
    train_dir = tmp_path / "run"
    with pytest.raises(UserError, match="--class_weight=balanced: class defect has no training image"):
        transfer.transfer(TransferConfig(train_dir=str(train_dir), epochs=1, class_weight="balanced"), sets)
    assert snapshot(train_dir) == {}


def assert_highest_threshold_of_the_restored_weights(point, train_dir, sets):
    """The operating point's threshold is the highest that finds its target share of the validation's defects by
    the probabilities of the train_dir's weights in a float32 classifier, and its test figures are theirs."""
    _, probabilities = restored_predictions(train_dir, sets.validation.images, 2)
    scores, defect, target = probabilities[:, 1], sets.validation.labels == 1, point["target_recall"]
    threshold = point["threshold"]
    flagged = scores >= threshold
    assert flagged[defect].mean() >= target and point["validation"]["recall"] == flagged[defect].mean()
    assert threshold in scores[defect]  # the highest threshold that does it: one of the defects' own scores
    assert (scores[defect] >= np.nextafter(threshold, 1)).mean() < target
    _, probabilities = restored_predictions(train_dir, sets.test.images, 2)
    expected = class_metrics.at_threshold(sets.test.labels == 1, probabilities[:, 1], threshold)
    assert point["test"] == pytest.approx(expected)


def test_target_recall_picks_the_threshold_on_validation_and_export_applies_it(tmp_path, mnist):
    """The rare class (defect, 10%) is found at least --target_recall of the time on the validation split; the test
    figures are those of that threshold; the exported model's classes follow it, not the argmax."""
    sets = two_class(mnist, rare_share=0.1)
    train_dir = str(tmp_path / "run")
    metrics = transfer.transfer(TransferConfig(train_dir=train_dir, epochs=1, batch_size=64, learning_rate=3e-4,
                                               target_recall=0.99, projector_images=0), sets)
    point = metrics["operating_point"]
    assert point["class"] == "defect" and point["target_recall"] == 0.99  # the rarer class by default
    assert_highest_threshold_of_the_restored_weights(point, train_dir, sets)
    threshold = point["threshold"]
    assert json.load(open(os.path.join(train_dir, "decision.json"))) == {
        "class": "defect", "threshold": threshold, "target_recall": 0.99}

    export_dir = tmp_path / "export"
    export.export(ExportConfig(checkpoint_path=train_dir, export_dir=str(export_dir)))
    assert json.loads((export_dir / "assets" / "decision.json").read_text())["threshold"] == threshold
    served = tf.saved_model.load(str(export_dir)).signatures["serving_default"](
        images=tf.constant(sets.test.images.reshape(-1, 28, 28)))
    got = served["probabilities"].numpy()[:, 1]
    np.testing.assert_array_equal(served["classes"].numpy(), (got >= threshold).astype(np.int64))
    assert (served["classes"].numpy() != served["probabilities"].numpy().argmax(1)).any()  # the rule matters
    files = []
    for i, pixels in enumerate(sets.test.images[:40]):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.rint(pixels.reshape(28, 28) * 255).astype(np.uint8)).save(files[-1])
    for model in (train_dir, str(export_dir)):  # predict: the checkpoint and the SavedModel decide alike
        results = predict.classify(model, files)
        assert [r["class"] for r in results] == [int(r["probabilities"][1] >= threshold) for r in results]
        assert all(r["decision"] == {"class": "defect", "threshold": threshold} for r in results)
        assert predict.format_line(results[0]).endswith(f"; defect where its probability >= {threshold:.4f})")

    # a later run without it leaves no threshold of other weights behind
    metrics = transfer.transfer(TransferConfig(train_dir=train_dir, epochs=2, batch_size=64, learning_rate=3e-4,
                                               projector_images=0), sets)
    assert "operating_point" not in metrics and not os.path.exists(os.path.join(train_dir, "decision.json"))


def test_a_bfloat16_run_picks_its_threshold_on_the_float32_probabilities_export_serves(tmp_path, mnist):
    """bfloat16 arithmetic moves every probability a little; the threshold must hold for the model that applies it
    (export and predict run float32), so it is chosen on those: exactly one of their scores, and the highest."""
    sets = two_class(mnist, rare_share=0.1)
    train_dir = str(tmp_path / "run")
    metrics = transfer.transfer(TransferConfig(train_dir=train_dir, epochs=1, batch_size=64, learning_rate=3e-4,
                                               precision="mixed_bfloat16", target_recall=0.9,
                                               positive_class="defect", projector_images=0), sets)
    assert_highest_threshold_of_the_restored_weights(metrics["operating_point"], train_dir, sets)


@pytest.mark.parametrize("flags, message", [
    (dict(target_recall=0.9, positive_class="scratch"), "--positive_class=scratch: not a class of the data "
                                                        "(fine, defect)"),
    (dict(positive_class="defect"), "--positive_class=defect needs --target_recall"),
])
def test_bad_operating_point_flags_are_refused_before_anything_is_written(tmp_path, mnist, flags, message):
    train_dir = tmp_path / "run"
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        transfer.transfer(TransferConfig(train_dir=str(train_dir), epochs=1, **flags), two_class(mnist, 0.1))
    assert snapshot(train_dir) == {}
