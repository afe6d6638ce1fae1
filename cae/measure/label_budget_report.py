"""The label-budget report: a markdown table of mean +/- std test accuracy (or the measure of --select_by) and a
matplotlib plot."""

import collections
import dataclasses
import os

import numpy as np

from cae.errors import UserError

OTHER = {"mnist": "Fashion-MNIST", "fashion_mnist": "MNIST"}
METHOD_NOTES = {
    "scratch + augmentation": "every layer trained from random weights, on augmented batches (the semi-supervised "
                              "run's weak view)",
    "semi-supervised": "transfer_classify --semi_supervised from the autoencoder (its defaults: the reconstruction "
                       "loss, FixMatch and Mean Teacher on every training image, labels ignored; the EMA teacher "
                       "tested)",
    "semi-supervised from scratch": "--semi_supervised without the autoencoder (random initial weights, "
                                    "--reconstruction_weight=0)",
    "fine-tuned + augmentation": "fine-tuned on augmented batches",
    "semi-supervised, reconstruction only": "--semi_supervised with --fixmatch_weight=0 --consistency_weight=0",
}


def budget_order(budget):
    """Budgets in increasing order, 'all' (the one word a budget can be) last."""
    return (1, 0) if isinstance(budget, str) else (0, budget)


def by_budget(values):
    """The (budget, value) items of ``values`` in budget_order."""
    return sorted(values.items(), key=lambda item: budget_order(item[0]))


MEASURES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1"}


def summarize(results, measure="accuracy"):
    """{method: {budget: (mean, std, n, labels used, mean wall time)}} of test ``measure`` (a --select_by name), in
    first-seen order."""
    groups = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in results:
        groups[r["method"]][r["budget"]].append(r)
    key = f"test_{measure}"
    return {method: {budget: (float(np.mean([r[key] for r in rs])),
                              float(np.std([r[key] for r in rs])), len(rs), rs[0]["num_labels"],
                              float(np.mean([r["wall_time_s"] + r["cache_time_s"] for r in rs])))
                     for budget, rs in by_budget.items()}
            for method, by_budget in groups.items()}


def table(summary, per_class=False):
    """Markdown: one row per budget, one column per method, cells 'mean +/- std' in percent."""
    methods = list(summary)
    budgets = sorted({b for m in summary.values() for b in m}, key=budget_order)
    unit = "labels per class (labels)" if per_class else "labels"
    lines = [f"| {unit} | " + " | ".join(methods) + " |", "|---:|" + "---:|" * len(methods)]
    for budget in budgets:
        used = next(s[budget][3] for s in summary.values() if budget in s)
        cells = [f"{100 * s[budget][0]:.2f} +/- {100 * s[budget][1]:.2f}" if budget in s else "-"
                 for s in summary.values()]
        label = (f"{budget}" if used == budget else f"{budget} ({used})" if per_class or isinstance(budget, str) else
                 f"{budget} (all {used})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def gains(summary, baseline="scratch"):
    """Markdown: each method's mean minus the baseline's mean, in points, per budget."""
    if baseline not in summary:
        return []
    methods = [m for m in summary if m != baseline]
    lines = ["| labels | " + " | ".join(f"{m} - {baseline}" for m in methods) + " |",
             "|---:|" + "---:|" * len(methods)]
    for budget, base in by_budget(summary[baseline]):
        cells = [f"{100 * (summary[m][budget][0] - base[0]):+.2f}" if budget in summary[m] else "-"
                 for m in methods]
        lines.append(f"| {budget} | " + " | ".join(cells) + " |")
    return lines


AUGMENTED_SUPERVISED = ("scratch + augmentation", "fine-tuned + augmentation")


def semi_gains(summary):
    """Markdown: at each budget where it ran, the semi-supervised run's mean against the best supervised run with
    the same augmentation (the issue's test of whether the unlabelled images pay)."""
    if "semi-supervised" not in summary:
        return []
    lines = ["| labels | semi-supervised | best supervised, same augmentation | gain (points) |",
             "|---:|---:|---|---:|"]
    for budget, semi in by_budget(summary["semi-supervised"]):
        rivals = [(summary[m][budget][0], m) for m in AUGMENTED_SUPERVISED if budget in summary.get(m, {})]
        if rivals:
            best, name = max(rivals)
            lines.append(f"| {budget} | {100 * semi[0]:.2f} | {name}: {100 * best:.2f} | "
                         f"{100 * (semi[0] - best):+.2f} |")
    return lines


def plot(summary, path, title, measure="accuracy"):
    """The measure vs number of labels, log x axis, one line per method with std error bars."""
    import matplotlib
    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    for method, by_budget in summary.items():
        budgets = sorted(by_budget, key=budget_order)
        axes.errorbar([by_budget[b][3] for b in budgets], [100 * by_budget[b][0] for b in budgets],
                      yerr=[100 * by_budget[b][1] for b in budgets], marker="o", capsize=3, label=method)
    axes.set_xscale("log")
    ticks = sorted({v[3] for by_budget in summary.values() for v in by_budget.values()})
    axes.set_xticks(ticks, [str(t) for t in ticks])
    axes.minorticks_off()
    axes.set_xlabel("labelled training images")
    axes.set_ylabel(f"test {MEASURES[measure]} (%)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write(cfg, results, pretrain_metrics, wall_time_s, machine, command=None):
    """reports/label_budget.md and reports/label_budget.png from the results of label_budget.run."""
    try:
        os.makedirs(cfg.report_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"--report_dir={cfg.report_dir}: cannot create it ({e})") from None
    measure = MEASURES[cfg.select_by]
    summary = summarize(results, cfg.select_by)
    png = os.path.join(cfg.report_dir, "label_budget.png")
    name = os.path.basename(os.path.normpath(cfg.image_dir)) if cfg.image_dir else cfg.dataset
    runs_of_each = f"{cfg.seeds} seeds" + (f" x {cfg.folds} folds" if cfg.folds > 1 else "")
    plot(summary, png, f"{name}: test {measure} vs labels ({runs_of_each}, mean +/- std)", cfg.select_by)
    settings = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                if f.name not in ("data_dir", "other_data_dir", "work_dir", "report_dir")}
    per_class = bool(cfg.labels_per_class)
    subsets = ("Each run trains on the first N labelled images of each class of the training split, in "
               + "an order drawn from its seed (every method of a seed takes the same images; the spread over "
                 "seeds includes which images carry labels); 'all': every one. "
               if per_class else
               "Each run trains on a labelled subset drawn at random per seed from the training split (all of it "
               "when the budget is larger" + ("" if cfg.image_dir else ": the validation split, the last 5,000 of "
                                              "the 60,000 training images, is held out") + "). ")
    notes = [f"{method}: {METHOD_NOTES[method]}" for method in summary if method in METHOD_NOTES]
    lines = [
        "# Label-budget experiment",
        "",
        f"Test {measure} (%) on {name}, mean +/- std over {runs_of_each}"
        + (" (**quick mode**: tiny data, not a result)" if cfg.quick else "") + ".",
        "",
        *table(summary, per_class),
        "",
        f"Gain over training from scratch (percentage points of mean test {measure}):",
        "",
        *gains(summary),
        "",
        *([*semi_gains(summary), ""] if "semi-supervised" in summary else []),
        f"![{measure} vs labels](label_budget.png)",
        "",
        subsets
        + (f"Cross-validated: each of the {cfg.folds} folds tests its own {cfg.testing_percentage}% of the images "
           "(transfer_classify --fold) and pretrains its own autoencoder on its training split; every fold and seed "
           "counts once in the mean. " if cfg.folds > 1 else "")
        + (f"Runs stop early on validation {measure}; the test set is evaluated once per run, with the "
           "best-validation weights. " if cfg.patience else
           "Each run trains its whole learning-rate schedule; the test set is evaluated once per run, at its end. ")
        + "frozen: pretrained convs frozen, fc1/logits trained on cached features of the last conv; fine-tuned: every "
        "layer trained, the pretrained convs at learning_rate x restored_lr_multiplier"
        + (f"; cross-domain: the autoencoder was pretrained on {OTHER[cfg.dataset]} instead"
           if any(method.startswith("cross") for method in summary) else "") + "."
        + "".join(f" {note}." for note in notes),
        "",
        "## Settings",
        "",
        *([f"Command: `{command}`" if cfg.image_dir else f"Command: `CAE_DATA_DIR=/path/to/mnist {command}`", ""]
          if command else []),
        *[f"- `{k}`: {v}" for k, v in settings.items()],
        "",
        "Pretraining: " + "; ".join(f"{name}: test reconstruction loss ({m['loss']}) "
                                    f"{m['test_reconstruction_loss']:.5f} in {m['wall_time_s']:.0f} s"
                                    for name, m in pretrain_metrics.items()),
        "",
        "Mean wall time per run (s): " + "; ".join(
            f"{method} " + ", ".join(f"{b}: {v[4]:.1f}" for b, v in by_budget(s))
            for method, s in summary.items()),
        "",
        f"Total wall time: {wall_time_s / 60:.1f} min on {machine}.",
    ]
    with open(os.path.join(cfg.report_dir, "label_budget.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return summary
