"""The label-budget experiment: does autoencoder pretraining pay off when labels are few?

For each label budget (images, or with --labels_per_class images of each class) and seed it trains the classifier
from scratch, on frozen pretrained convs (cached features), fine-tuned from the pretrained convs (smaller learning
rate for them), and from convs pretrained on the other domain (Fashion-MNIST; not for --image_dir, a folder of
your own). At --semi_budgets it adds the semi-supervised run from the autoencoder and its fair baselines, scratch
and fine-tuned with the same augmentation; at --ablation_budget the semi-supervised run piece by piece (ABLATION).
Everything runs in this process on data loaded once (once per fold: with --folds a folder is cross-validated, each
fold pretraining its own autoencoder, so a small test set's luck averages out); every run trains its whole schedule
and is tested once, at its end (``--patience`` brings back early stopping on the validation split). Writes a
markdown table and a PNG plot.
"""

import dataclasses
import os
import platform
import shutil
import time

from typing import NamedTuple, Optional

import numpy as np
from absl import logging

from cae import augment, data, models, pretrain, restore, semi_supervised, session, train, transfer
from cae.config import PretrainConfig, TransferConfig, unlabeled_batch
from cae.errors import UserError

EVERY_LAYER = "every layer"  # a Method's trainable_scopes: every conv of --encoder_filters, fc1 and logits


class Method(NamedTuple):
    pretrained_on: Optional[str]  # "source", "other" (the cross-domain dataset) or None (scratch)
    # EVERY_LAYER, a scope list, or None: transfer_classify's default (every layer, a decoder too, when semi)
    trainable_scopes: Optional[str]
    fine_tune: bool  # the restored layers learn at --restored_lr_multiplier times the rate
    cache: bool  # frozen convs' features computed once
    augment: bool = False  # the experiment's augmentation (semi_supervised.augmentation's weak view)
    semi: Optional[dict] = None  # a --semi_supervised run with these TransferConfig settings


METHODS = {
    "scratch": Method(None, EVERY_LAYER, False, False),
    "frozen": Method("source", transfer.FROZEN_HEAD_SCOPES, False, True),
    "fine-tuned": Method("source", EVERY_LAYER, True, False),
    "cross-domain frozen": Method("other", transfer.FROZEN_HEAD_SCOPES, False, True),
    "cross-domain fine-tuned": Method("other", EVERY_LAYER, True, False),
}
# At --semi_budgets: the semi-supervised run from the autoencoder, its fair baselines (the supervised runs with the
# same augmentation, from scratch and from the autoencoder: what the unlabelled images add beyond augmentation and
# the autoencoder's initialization), and the same run without the autoencoder.
SEMI_METHODS = {
    "scratch + augmentation": Method(None, EVERY_LAYER, False, False, augment=True),
    "fine-tuned + augmentation": Method("source", EVERY_LAYER, True, False, augment=True),
    "semi-supervised": Method("source", None, False, False, augment=True, semi={}),
    "semi-supervised from scratch": Method(None, None, False, False, augment=True,
                                           semi=dict(reconstruction_weight=0.0)),
}
# At --ablation_budget, one piece at a time: the autoencoder's initialization alone ("fine-tuned"), + augmentation,
# + the reconstruction loss on the unlabelled images, + consistency (FixMatch and Mean Teacher: "semi-supervised").
ABLATION = {
    "fine-tuned": METHODS["fine-tuned"],
    "fine-tuned + augmentation": SEMI_METHODS["fine-tuned + augmentation"],
    "semi-supervised, reconstruction only": Method("source", None, False, False, augment=True,
                                                   semi=dict(fixmatch_weight=0.0, consistency_weight=0.0)),
    "semi-supervised": SEMI_METHODS["semi-supervised"],
}
# In the report's column order: the supervised methods, what the semi-supervised run adds piece by piece, and
# the semi-supervised run without the autoencoder.
EVERY_METHOD = {**METHODS, "scratch + augmentation": SEMI_METHODS["scratch + augmentation"], **ABLATION,
                "semi-supervised from scratch": SEMI_METHODS["semi-supervised from scratch"]}
OTHER_DATASET = {"mnist": "fashion_mnist", "fashion_mnist": "mnist"}
ALL = "all"  # a --labels_per_class budget: every training label


def parse_ints(text, flag, words=()):
    """Comma-separated positive integers (or one of ``words``) of --``flag``."""
    try:
        values = [v if v in words else int(v) for v in restore.parse_scopes(text)]
    except ValueError:
        raise UserError(f"--{flag}={text}: expected comma-separated integers"
                        + "".join(f" or '{w}'" for w in words)) from None
    if not values or min([v for v in values if v not in words] or [1]) < 1:
        raise UserError(f"--{flag}={text}: expected positive integers")
    return values


def quick_settings(cfg):
    """CI mode: a few hundred images, two budgets (--labels_per_class as given), two seeds, a few dozen steps
    (semi-supervised runs: two passes over the unlabelled images)."""
    return dataclasses.replace(cfg, budgets="20,100", cross_domain_budgets="100", seeds=2, pretrain_epochs=1,
                               batch_size=16, max_steps=40, min_epochs=1, semi_epochs=2, unlabeled_batch_size=64)


def shrink(datasets, train_size, validation_size, test_size):
    sizes = {"train": train_size, "validation": validation_size, "test": test_size}
    return datasets.map_splits(lambda name, split: data.Split(split.images[:sizes[name]], split.labels[:sizes[name]]))


def labelled_subset(split, budget, seed):
    """``budget`` labelled images drawn at random (per seed) from the training split; all of them if it has
    fewer."""
    if budget >= len(split.labels):
        return split
    chosen = np.sort(np.random.default_rng([seed, budget]).permutation(len(split.labels))[:budget])
    return data.Split(split.images[chosen], split.labels[chosen])


def seed_order(split, seed):
    """The training split in an order drawn from ``seed``, so that --labels_per_class takes other images at each
    seed: a folder's hash order would give every seed the same labelled images, and the spread over seeds would
    hide how much the choice of the few labelled images matters (ELPV at 20 a class: the same method scored 75.7
    and 57.9 balanced accuracy on two hash splits of one set). Every method of a seed gets the same order."""
    order = np.random.default_rng(seed).permutation(len(split.labels))
    return data.Split(split.images[order], split.labels[order])


def schedule(cfg, num_examples, at_least_steps=0):
    """(epochs, eval_every_epochs) for a run: max_steps or at_least_steps, whichever is more (but at least
    min_epochs), about cfg.validations checks."""
    per_epoch = train.steps_per_epoch(num_examples, cfg.batch_size)
    epochs = max(cfg.min_epochs, -(-max(cfg.max_steps, at_least_steps) // per_epoch))
    return epochs, max(1, epochs // cfg.validations)


def semi_supervised_steps(cfg, unlabeled_count):
    """Steps of a semi-supervised run: --semi_epochs passes over ``unlabeled_count`` images."""
    return cfg.semi_epochs * train.steps_per_epoch(unlabeled_count, unlabeled_batch(cfg.unlabeled_batch_size))


def data_settings(cfg, fold=0):
    """The data flags a run's config records (its data are given to it, already loaded)."""
    if cfg.image_dir:
        return dict(image_dir=cfg.image_dir, image_size=cfg.image_size, color_mode=cfg.color_mode,
                    validation_percentage=cfg.validation_percentage, testing_percentage=cfg.testing_percentage,
                    fold=fold)
    return dict(dataset=cfg.dataset)


def model_settings(cfg):
    """The encoder of every pretraining and run: --encoder_filters, --batch_norm."""
    return dict(encoder_filters=cfg.encoder_filters, batch_norm=cfg.batch_norm)


def pretrain_config(cfg, dataset, train_dir, fold=0):
    """The autoencoder of ``dataset`` (a built-in name, or None for --image_dir's fold ``fold``), with the
    experiment's augmentation flags."""
    where = data_settings(cfg, fold) if dataset is None else dict(dataset=dataset)
    return PretrainConfig(
        **where, **augment.flags(augment.from_config(cfg)), **model_settings(cfg), train_dir=train_dir,
        epochs=cfg.pretrain_epochs,
        batch_size=cfg.pretrain_batch_size, learning_rate=cfg.pretrain_learning_rate,
        lr_schedule=cfg.pretrain_lr_schedule, latent_size=cfg.latent_size, loss=cfg.loss,
        input_noise=cfg.input_noise, input_cutout=cfg.input_cutout, input_mask=cfg.input_mask, seed=0,
        keep_checkpoints=1, save_every_steps=0, summary_every_steps=100, projector_images=0,
        intra_op_threads=cfg.intra_op_threads, inter_op_threads=cfg.inter_op_threads, precision=cfg.precision)


def transfer_config(cfg, method, checkpoint, train_dir, seed, num_examples, image_shape=(28, 28, 1),
                    labels_per_class=None, unlabeled_count=0, fold=0):
    """The TransferConfig of one run. Supervised runs train max_steps; semi-supervised ones --semi_epochs passes
    over the ``unlabeled_count`` training images with transfer_classify's semi-supervised recipe. Methods
    "+ augmentation" and semi-supervised runs augment as a semi-supervised run's weak view does (the experiment's
    flags, else shifts of 1/8 of the side); the others do not augment. The supervised "+ augmentation" runs are
    the semi-supervised run's fair baselines: they train as many steps as it does, if that is more than max_steps
    (what the unlabelled images add, not what more steps add)."""
    m = EVERY_METHOD[method]
    settings = augment.flags(semi_supervised.augmentation(cfg, image_shape) if m.augment else
                             augment.Augmentation())
    if m.semi is not None:
        recipe = dict(semi_supervised=True, epochs=cfg.semi_epochs, unlabeled_batch_size=cfg.unlabeled_batch_size,
                      strong_photometric=cfg.strong_photometric,
                      eval_every_epochs=max(1, cfg.semi_epochs // cfg.validations), **m.semi)
    else:
        epochs, eval_every = schedule(cfg, num_examples,
                                      semi_supervised_steps(cfg, unlabeled_count) if m.augment else 0)
        recipe = dict(epochs=epochs, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                      cache_features=m.cache and not any(settings.values()), eval_every_epochs=eval_every,
                      restore_scopes=None)  # transfer_classify's default: every conv
    scopes = m.trainable_scopes
    if scopes == EVERY_LAYER:
        scopes = ",".join(models.classifier_scopes(cfg.filters))
    return TransferConfig(
        **data_settings(cfg, fold), **settings, **recipe, **model_settings(cfg), train_dir=train_dir,
        checkpoint_path=checkpoint if m.pretrained_on else None, trainable_scopes=scopes,
        class_weight=cfg.class_weight, select_by=cfg.select_by,
        lr_schedule=cfg.lr_schedule, restored_lr_multiplier=cfg.restored_lr_multiplier if m.fine_tune else 1.0,
        labels_per_class=labels_per_class, patience=cfg.patience, seed=seed, keep_checkpoints=1, loss=cfg.loss,
        save_every_steps=0, summary_every_steps=100, projector_images=0, intra_op_threads=cfg.intra_op_threads,
        inter_op_threads=cfg.inter_op_threads, precision=cfg.precision)


def budgets(cfg):
    """The label budgets: images (--budgets) or, with --labels_per_class, images of each class (or 'all')."""
    if cfg.labels_per_class:
        return parse_ints(cfg.labels_per_class, "labels_per_class", words=(ALL,))
    return parse_ints(cfg.budgets, "budgets")


def runs(cfg):
    """Every (method, budget, seed) the config asks for, in the order they run."""
    every = budgets(cfg)
    cross = set() if cfg.image_dir else set(parse_ints(cfg.cross_domain_budgets, "cross_domain_budgets"))
    semi = set(parse_ints(cfg.semi_budgets, "semi_budgets", words=(ALL,))) if cfg.semi_budgets else set()
    ablation = set(parse_ints(cfg.ablation_budget, "ablation_budget", words=(ALL,))) if cfg.ablation_budget else set()
    unit = "--labels_per_class" if cfg.labels_per_class else "--budgets"
    for flag, asked in ("semi_budgets", semi), ("ablation_budget", ablation):
        if asked and not cfg.labels_per_class:
            raise UserError(f"--{flag} needs --labels_per_class: a semi-supervised run takes the first N labels "
                            f"of each class and every training image unlabelled")
        if asked - set(every):
            missing = ",".join(map(str, sorted(asked - set(every), key=str)))
            raise UserError(f"--{flag}: {missing} is not one of the budgets of {unit}={','.join(map(str, every))}")
    plan = []
    for budget in every:
        methods = [m for m in METHODS if not m.startswith("cross") or budget in cross]
        methods += [m for m in SEMI_METHODS if budget in semi]
        methods += [m for m in ABLATION if budget in ablation and m not in methods]
        plan += [(method, budget, seed) for seed in range(cfg.seeds) for method in methods]
    return plan


WORK_DIR_MARK = ".cae-experiment"  # in every work_dir this command made: only such a directory is ever emptied


def check_work_dir(work_dir):
    """UserError unless work_dir is new, empty, or an earlier experiment's (marked): its contents get deleted."""
    if os.path.exists(work_dir) and not os.path.isdir(work_dir):
        raise UserError(f"--work_dir={work_dir}: exists and is not a directory")
    if os.path.isdir(work_dir) and os.listdir(work_dir) and not os.path.exists(os.path.join(work_dir, WORK_DIR_MARK)):
        raise UserError(f"--work_dir={work_dir}: not empty and not made by an earlier experiment; everything in it "
                        f"would be deleted, so pick a new or empty directory")


def reset_work_dir(work_dir):
    """Empty (or create) the checked work_dir and mark it as this command's."""
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    open(os.path.join(work_dir, WORK_DIR_MARK), "w").close()


def check_folds(cfg):
    """UserError unless --folds fits: a folder's, with test sets that do not overlap."""
    if cfg.folds > 1 and not cfg.image_dir:
        raise UserError(f"--folds={cfg.folds} needs --image_dir: {cfg.dataset} has a test file of its own")
    if cfg.folds > data.splits.folds(cfg.testing_percentage):
        raise UserError(f"--folds={cfg.folds}: expected at most {data.splits.folds(cfg.testing_percentage)} at "
                        f"--testing_percentage={cfg.testing_percentage} (the folds' test sets must not overlap; "
                        f"--testing_percentage={100 // cfg.folds} tests every image once)")


def load_target(cfg, fold=0):
    """The classified data: --image_dir's folder (its test fold ``fold``), or --dataset."""
    if cfg.image_dir:
        return data.load_image_dir(cfg.image_dir, cfg.image_size, cfg.color_mode, cfg.validation_percentage,
                                   cfg.testing_percentage, fold=fold)
    return data.load(cfg.data_dir, dataset=cfg.dataset)


def run(cfg, command=None):
    """Pretrain on both domains (a folder: on its own training images only), train every run (a folder: on each
    fold), write the report; returns the list of result dicts."""
    if cfg.quick:
        cfg = quick_settings(cfg)
    plan = runs(cfg)
    if cfg.seeds < 1:
        raise UserError(f"--seeds={cfg.seeds}: expected at least 1")
    check_folds(cfg)
    check_work_dir(cfg.work_dir)
    cfg = precision_this_cpu_runs(cfg)
    start = time.time()
    targets = [load_target(cfg, fold) for fold in range(cfg.folds)]  # every folder check before anything is written
    augment.check_channels(augment.from_config(cfg), targets[0].image_shape)
    reset_work_dir(cfg.work_dir)
    results, pretrain_metrics = [], {}
    for fold, target in enumerate(targets):
        work_dir = os.path.join(cfg.work_dir, f"fold{fold}") if cfg.folds > 1 else cfg.work_dir
        results += run_fold(cfg, plan, target, work_dir, pretrain_metrics, fold)
    wall = time.time() - start
    results.sort(key=lambda r: list(EVERY_METHOD).index(r["method"]))  # stable: budgets and seeds keep their order
    from cae.measure import label_budget_report  # matplotlib is imported only when a report is written
    label_budget_report.write(cfg, results, pretrain_metrics, wall, machine(), command)
    return results


def run_fold(cfg, plan, target, work_dir, pretrain_metrics, fold=0):
    """Pretrain on both domains (a folder: on this fold's training images), then every run of ``plan`` on
    ``target``; adds the pretrainings' metrics to ``pretrain_metrics`` and returns the runs' result dicts."""
    if cfg.quick:
        target = shrink(target, 400, 200, 500)
    source = {"source": target}
    if any(EVERY_METHOD[method].pretrained_on == "other" for method, _, _ in plan):
        other = OTHER_DATASET[cfg.dataset]
        source["other"] = data.load(cfg.other_data_dir, dataset=other)
        if cfg.quick:
            source["other"] = shrink(source["other"], 400, 200, 500)
    checkpoints, of_fold = {}, f", fold {fold}" if cfg.folds > 1 else ""
    for name, datasets in source.items():
        dataset = None if cfg.image_dir else cfg.dataset if name == "source" else OTHER_DATASET[cfg.dataset]
        pcfg = pretrain_config(cfg, dataset, os.path.join(work_dir, name), fold)
        logging.info("pretraining on %s%s", dataset or cfg.image_dir, of_fold)
        pretrained = dataset or os.path.basename(os.path.normpath(cfg.image_dir))
        pretrain_metrics[pretrained + of_fold] = pretrain.pretrain(pcfg, datasets)
        checkpoints[name] = pcfg.train_dir
    results = []
    for method, budget, seed in plan:
        per_class = None if not cfg.labels_per_class or budget == ALL else budget
        if not cfg.labels_per_class:
            given = target._replace(train=labelled_subset(target.train, budget, seed))
        elif per_class and cfg.image_dir:
            given = target._replace(train=seed_order(target.train, seed))
        else:  # every label, or MNIST, whose run draws its labelled images in an order of its own seed
            given = target
        count = (per_class * len(target.class_names) if per_class else len(given.train.labels))
        tcfg = transfer_config(cfg, method, checkpoints.get(EVERY_METHOD[method].pretrained_on), os.path.join(
            work_dir, "runs", f"{method.replace(' ', '_').replace(',', '')}-{budget}-{seed}"), seed, count,
            target.image_shape, per_class, unlabeled_count=len(target.train.labels), fold=fold)
        metrics = transfer.transfer(tcfg, given)
        results.append(dict(metrics, method=method, budget=budget, seed=seed, fold=fold))
        logging.info("%s, %s labels%s, seed %d%s: test accuracy %.4f", method, budget,
                     " per class" if cfg.labels_per_class else "", seed, of_fold, metrics["test_accuracy"])
    return results


def precision_this_cpu_runs(cfg):
    """cfg in the precision this CPU runs, decided once: a fallback warns once, not once per run, and the report
    lists the precision that ran."""
    return dataclasses.replace(cfg, precision=session.precision_to_run(cfg.precision,
                                                                       "the whole experiment runs in float32"))


def machine():
    import tensorflow as tf
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, TensorFlow {tf.__version__}"
