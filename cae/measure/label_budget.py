"""The label-budget experiment: does autoencoder pretraining pay off when labels are few?

For each label budget and seed it trains the classifier from scratch, on frozen pretrained convs (cached
features), fine-tuned from the pretrained convs (smaller learning rate for them), and from convs pretrained on the
other domain (Fashion-MNIST). Everything runs in this process on data loaded once; every run trains its whole
one-cycle schedule and is tested once, at its end (``--patience`` brings back early stopping on the validation
split). Writes a markdown table and a PNG plot.
"""

import dataclasses
import os
import platform
import shutil
import time

import numpy as np
from absl import logging

from cae import data, pretrain, restore, session, train, transfer
from cae.config import PretrainConfig, TransferConfig
from cae.errors import UserError

# method -> (pretrained on, trainable scopes, restored-layer learning-rate multiplier applies, cache features)
METHODS = {
    "scratch": (None, transfer.ALL_SCOPES, False, False),
    "frozen": ("source", transfer.FROZEN_HEAD_SCOPES, False, True),
    "fine-tuned": ("source", transfer.ALL_SCOPES, True, False),
    "cross-domain frozen": ("other", transfer.FROZEN_HEAD_SCOPES, False, True),
    "cross-domain fine-tuned": ("other", transfer.ALL_SCOPES, True, False),
}
OTHER_DATASET = {"mnist": "fashion_mnist", "fashion_mnist": "mnist"}


def parse_ints(text, flag):
    try:
        values = [int(v) for v in restore.parse_scopes(text)]
    except ValueError:
        raise UserError(f"--{flag}={text}: expected comma-separated integers") from None
    if not values or min(values) < 1:
        raise UserError(f"--{flag}={text}: expected positive integers")
    return values


def quick_settings(cfg):
    """CI mode: a few hundred images, two budgets, two seeds, a few dozen steps."""
    return dataclasses.replace(cfg, budgets="20,100", cross_domain_budgets="100", seeds=2, pretrain_epochs=1,
                               batch_size=16, max_steps=40, min_epochs=1)


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


def schedule(cfg, num_examples):
    """(epochs, eval_every_epochs) for a run: max_steps (but at least min_epochs), about cfg.validations checks."""
    per_epoch = train.steps_per_epoch(num_examples, cfg.batch_size)
    epochs = max(cfg.min_epochs, -(-cfg.max_steps // per_epoch))
    return epochs, max(1, epochs // cfg.validations)


def pretrain_config(cfg, dataset, train_dir):
    return PretrainConfig(
        dataset=dataset, train_dir=train_dir, epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch_size,
        learning_rate=cfg.pretrain_learning_rate, lr_schedule=cfg.pretrain_lr_schedule, latent_size=cfg.latent_size,
        loss=cfg.loss, input_noise=cfg.input_noise, seed=0, keep_checkpoints=1, save_every_steps=0,
        summary_every_steps=100, projector_images=0, intra_op_threads=cfg.intra_op_threads,
        inter_op_threads=cfg.inter_op_threads, precision=cfg.precision)


def transfer_config(cfg, method, checkpoint, train_dir, seed, num_examples):
    _, trainable, fine_tune, cache = METHODS[method]
    epochs, eval_every = schedule(cfg, num_examples)
    return TransferConfig(
        train_dir=train_dir, checkpoint_path=checkpoint, restore_scopes="conv1,conv2", trainable_scopes=trainable,
        epochs=epochs, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, lr_schedule=cfg.lr_schedule,
        restored_lr_multiplier=cfg.restored_lr_multiplier if fine_tune else 1.0, cache_features=cache,
        eval_every_epochs=eval_every, patience=cfg.patience, seed=seed, keep_checkpoints=1, save_every_steps=0,
        summary_every_steps=100, projector_images=0, intra_op_threads=cfg.intra_op_threads,
        inter_op_threads=cfg.inter_op_threads, precision=cfg.precision)


def runs(cfg):
    """Every (method, budget, seed) the config asks for, in the order they run."""
    budgets = parse_ints(cfg.budgets, "budgets")
    cross = set(parse_ints(cfg.cross_domain_budgets, "cross_domain_budgets"))
    return [(method, budget, seed) for budget in budgets for seed in range(cfg.seeds) for method in METHODS
            if not method.startswith("cross") or budget in cross]


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


def run(cfg, command=None):
    """Pretrain on both domains, train every run, write the report; returns the list of result dicts."""
    if cfg.quick:
        cfg = quick_settings(cfg)
    plan = runs(cfg)
    if cfg.seeds < 1:
        raise UserError(f"--seeds={cfg.seeds}: expected at least 1")
    check_work_dir(cfg.work_dir)
    cfg = precision_this_cpu_runs(cfg)
    start = time.time()
    other = OTHER_DATASET[cfg.dataset]
    target = data.load(cfg.data_dir, dataset=cfg.dataset)
    source = {"source": target, "other": data.load(cfg.other_data_dir, dataset=other)}
    if cfg.quick:
        target = shrink(target, 400, 200, 500)
        source = {"source": target, "other": shrink(source["other"], 400, 200, 500)}
    reset_work_dir(cfg.work_dir)
    checkpoints, pretrain_metrics = {}, {}
    for name, datasets in source.items():
        pcfg = pretrain_config(cfg, cfg.dataset if name == "source" else other, os.path.join(cfg.work_dir, name))
        logging.info("pretraining on %s", pcfg.dataset)
        pretrain_metrics[pcfg.dataset] = pretrain.pretrain(pcfg, datasets)
        checkpoints[name] = pcfg.train_dir
    results = []
    for method, budget, seed in plan:
        split = labelled_subset(target.train, budget, seed)
        pretrained_on = METHODS[method][0]
        tcfg = transfer_config(cfg, method, checkpoints.get(pretrained_on), os.path.join(
            cfg.work_dir, "runs", f"{method.replace(' ', '_')}-{budget}-{seed}"), seed, len(split.labels))
        metrics = transfer.transfer(tcfg, target._replace(train=split))
        results.append(dict(metrics, method=method, budget=budget, seed=seed))
        logging.info("%s, %d labels, seed %d: test accuracy %.4f", method, budget, seed, metrics["test_accuracy"])
    wall = time.time() - start
    from cae.measure import label_budget_report  # matplotlib is imported only when a report is written
    label_budget_report.write(cfg, results, pretrain_metrics, wall, machine(), command)
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
