"""Feature extraction, the command-line errors of the new flags, and the experiment's quick mode."""

import collections
import dataclasses
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import logging

from cae import data, features, session, train, transfer
from cae.config import ExperimentConfig, TransferConfig
from cae.errors import UserError
from cae.measure import label_budget

from conftest import REPO, snapshot

v1 = tf.compat.v1


def run_script(name, *args, data_dir):
    env = dict(os.environ, CAE_DATA_DIR=data_dir)
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", name), *args],
                          capture_output=True, text=True, env=env, timeout=900)


def test_extract_features_writes_the_classifier_features(tmp_path, cae_checkpoint, mnist_dir, mnist):
    output = str(tmp_path / "out" / "conv2.npz")
    result = run_script("extract_features.py", f"--checkpoint_path={cae_checkpoint}", "--layer=conv2",
                        "--split=validation", f"--output={output}", "--batch_size=700", data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote {output}: features [5000, 1568], labels [5000]" in result.stdout
    saved = np.load(output)
    np.testing.assert_array_equal(saved["labels"], mnist.validation.labels)
    # The same numbers the transfer graph feeds its head after restoring the checkpoint.
    cfg = TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path / "run"))
    g = transfer.build_graph(cfg, total_steps=100)
    with g.graph.as_default(), v1.Session() as sess:
        transfer.initialize(sess, g, cfg)
        expected = features.compute(sess, g.model.features, g.model.images, mnist.validation.images[:1000])
    np.testing.assert_allclose(saved["features"][:1000], expected, rtol=1e-5, atol=1e-6)
    assert str(saved["layer"]) == "conv2" and os.listdir(tmp_path / "out") == ["conv2.npz"]


def test_extract_latent_sized_from_checkpoint(tmp_path, mnist_dir):
    from conftest import save_autoencoder_checkpoint
    checkpoint = save_autoencoder_checkpoint(tmp_path / "cae", latent_size=7)
    output = str(tmp_path / "latent.npz")
    result = run_script("extract_features.py", f"--checkpoint_path={checkpoint}", "--layer=latent",
                        "--split=test", f"--output={output}", data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.load(output)["features"].shape == (10000, 7)


def test_extract_fc1_from_an_autoencoder_is_one_clear_error(tmp_path, cae_checkpoint, mnist_dir):
    output = tmp_path / "fc1.npz"
    output.write_bytes(b"the user's file")
    result = run_script("extract_features.py", f"--checkpoint_path={cae_checkpoint}", "--layer=fc1",
                        f"--output={output}", data_dir=mnist_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "fc1/kernel missing" in result.stderr and "Traceback" not in result.stderr
    assert output.read_bytes() == b"the user's file"


def test_cache_features_with_fine_tuning_exits_2_in_one_line(tmp_path, cae_checkpoint, mnist_dir):
    result = run_script("transfer_classify.py", f"--checkpoint_path={cae_checkpoint}", "--cache_features",
                        "--trainable_scopes=conv2,fc1,logits", "--num_labels=100", "--epochs=1",
                        f"--train_dir={tmp_path}", data_dir=mnist_dir)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == ("error: --cache_features needs every restored layer frozen, but --trainable_scopes trains "
                    "restored conv2; drop it from --trainable_scopes or turn off --cache_features")
    assert "Traceback" not in result.stderr


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_quick_experiment_writes_table_and_plot(tmp_path, mnist_dir, fashion_mnist):
    cfg = ExperimentConfig(data_dir=mnist_dir, quick=True, work_dir=str(tmp_path / "work"),
                           report_dir=str(tmp_path / "reports"))
    results = label_budget.run(cfg, command="python scripts/experiment.py --quick")
    methods = list(label_budget.METHODS)
    assert len(results) == 2 * 2 * 3 + 2 * 2  # budgets x seeds x methods, cross-domain at 100 labels only
    assert {r["method"] for r in results} == set(methods)
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["num_labels"] == r["budget"] for r in results)
    report = open(tmp_path / "reports" / "label_budget.md").read().splitlines()
    header = report.index("| labels | " + " | ".join(methods) + " |")
    assert report[header + 1] == "|---:|" + "---:|" * len(methods)
    cell = r"\d+\.\d\d \+/- \d+\.\d\d"
    assert re.fullmatch(rf"\| 20 \| {cell} \| {cell} \| {cell} \| - \| - \|", report[header + 2]), report
    assert re.fullmatch(rf"\| 100 \|( {cell} \|){{5}}", report[header + 3]), report
    assert "Command: `CAE_DATA_DIR=/path/to/mnist python scripts/experiment.py --quick`" in report
    assert png_size(tmp_path / "reports" / "label_budget.png") == (700, 450)
    mean_100 = np.mean([r["test_accuracy"] for r in results if r["budget"] == 100 and r["method"] == "scratch"])
    row = report[header + 3].split("|")[2].split()
    assert float(row[0]) == round(100 * mean_100, 2)


def test_each_seed_labels_other_images_of_a_folder_and_every_method_of_a_seed_the_same():
    from cae.data import splits
    labels = np.repeat(np.arange(3), 50)
    train = data.Split(np.arange(150 * 4, dtype=np.float32).reshape(150, 4), labels)
    chosen = {seed: splits.per_class(label_budget.seed_order(train, seed), 5, ["a", "b", "c"]) for seed in (0, 1)}
    for split in chosen.values():
        assert np.bincount(split.labels).tolist() == [5, 5, 5]
        assert (labels[(split.images[:, 0] // 4).astype(int)] == split.labels).all()  # images keep their labels
    assert set(chosen[0].images[:, 0]) != set(chosen[1].images[:, 0])
    again = splits.per_class(label_budget.seed_order(train, 0), 5, ["a", "b", "c"])
    np.testing.assert_array_equal(again.images, chosen[0].images)


def test_quick_experiment_on_a_folder_by_labels_per_class_with_the_semi_supervised_column(tmp_path, mnist,
                                                                                           monkeypatch):
    from test_own_images import write_folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    write_folder(tmp_path / "photos", mnist, 40, (16, 16), color=True)
    # a real folder's settings: a deeper batch-normalized encoder, a masked autoencoder, balanced class weights,
    # and the report in balanced accuracy
    cfg = ExperimentConfig(image_dir=str(tmp_path / "photos"), quick=True, labels_per_class="2,all",
                           semi_budgets="2", ablation_budget="2", random_hue=180, strong_photometric=60,
                           work_dir=str(tmp_path / "work"),
                           report_dir=str(tmp_path / "reports"), encoder_filters="4,8,8", batch_norm=True,
                           loss="patch_mse", input_mask=0.5, class_weight="balanced", select_by="balanced_accuracy")
    results = label_budget.run(cfg, command="python scripts/experiment.py --image_dir=photos")
    methods = ["scratch", "frozen", "fine-tuned", "scratch + augmentation", "fine-tuned + augmentation",
               "semi-supervised, reconstruction only", "semi-supervised", "semi-supervised from scratch"]
    assert list(dict.fromkeys(r["method"] for r in results)) == methods  # no cross-domain methods for a folder
    assert len(results) == 2 * (8 + 3)  # seeds x (every method at 2 labels a class + the three at 'all')
    train_size = {r["num_labels"] for r in results if r["budget"] == "all"}
    assert {r["num_labels"] for r in results if r["budget"] == 2} == {2 * 3} and train_size.pop() > 60
    # The augmented methods take the experiment's augmentation; the ablation drops the consistency terms.
    semi = label_budget.transfer_config(label_budget.quick_settings(cfg), "semi-supervised, reconstruction only",
                                        "/tmp/p", "/tmp/t", 0, 6, (16, 16, 3), labels_per_class=2)
    assert semi.semi_supervised and semi.random_hue == 180 and semi.fixmatch_weight == semi.consistency_weight == 0
    assert semi.epochs == 2 and semi.labels_per_class == 2 and semi.reconstruction_weight == 1
    assert semi.strong_photometric == 60  # the student's view only: the supervised runs below keep the flags given
    assert (semi.encoder_filters, semi.batch_norm, semi.loss, semi.class_weight, semi.select_by) == (
        "4,8,8", True, "patch_mse", "balanced", "balanced_accuracy")
    pretrained = label_budget.pretrain_config(cfg, None, "/tmp/p")
    assert (pretrained.encoder_filters, pretrained.batch_norm, pretrained.loss, pretrained.input_mask) == (
        "4,8,8", True, "patch_mse", 0.5)
    scopes = {m: label_budget.transfer_config(cfg, m, "/tmp/p", "/tmp/t", 0, 6).trainable_scopes
              for m in ("scratch", "frozen", "fine-tuned")}
    assert scopes == {"scratch": "conv1,conv2,conv3,fc1,logits", "frozen": "fc1,logits",
                      "fine-tuned": "conv1,conv2,conv3,fc1,logits"}  # every conv of the deeper encoder
    plain = label_budget.transfer_config(cfg, "scratch", None, "/tmp/t", 0, 6, (16, 16, 3), labels_per_class=2)
    assert plain.checkpoint_path is None and not plain.semi_supervised and not plain.augmenting
    augmented = label_budget.transfer_config(cfg, "scratch + augmentation", None, "/tmp/t", 0, 6, (16, 16, 3))
    assert augmented.random_hue == 180 and augmented.random_translate == 0  # the flags given, nothing else
    assert augmented.strong_photometric == 0 and augmented.random_brightness == 0
    # The fair baselines train as many steps as the semi-supervised run (here 2 passes of 10,000 / 64 images)
    # where that is more than max_steps; the plain supervised runs keep max_steps.
    quick = label_budget.quick_settings(cfg)
    def steps(method):
        run = label_budget.transfer_config(quick, method, "/tmp/p", "/tmp/t", 0, 6, (16, 16, 3), 2, 10000)
        if run.semi_supervised:
            return run.epochs * train.steps_per_epoch(10000, run.unlabeled_batch_size)
        return run.epochs * train.steps_per_epoch(6, run.batch_size)
    assert steps("semi-supervised") == 2 * 157 and steps("scratch") == 40
    assert steps("scratch + augmentation") == steps("fine-tuned + augmentation") == 2 * 157
    at_two = {m: {r["steps"] for r in results if r["method"] == m and r["budget"] == 2} for m in methods}
    assert at_two["scratch + augmentation"] == at_two["scratch"] == {40}  # more than 2 passes of ~100 images
    # Without the ablation the semi-supervised run still meets both fair baselines, from scratch and fine-tuned.
    plan = label_budget.runs(ExperimentConfig(labels_per_class="10", semi_budgets="10", seeds=1))
    assert [m for m, _, _ in plan] == ["scratch", "frozen", "fine-tuned", "scratch + augmentation",
                                       "fine-tuned + augmentation", "semi-supervised", "semi-supervised from scratch"]
    scratch = label_budget.transfer_config(cfg, "semi-supervised from scratch", "/tmp/p", "/tmp/t", 0, 6)
    assert scratch.checkpoint_path is None and scratch.reconstruction_weight == 0 and scratch.semi_supervised
    default = label_budget.transfer_config(ExperimentConfig(), "scratch + augmentation", None, "/tmp/t", 0, 6)
    assert default.random_translate == 28 / 8 and not default.flip_left_right  # the weak view of a digit
    report = open(tmp_path / "reports" / "label_budget.md").read()
    assert "| labels per class (labels) | " + " | ".join(methods) + " |" in report
    assert re.search(r"\| all \(\d+\) \|", report) and "| 2 (6) |" in report
    assert "Test balanced accuracy (%) on photos" in report
    semi_mean = 100 * np.mean([r["test_balanced_accuracy"] for r in results if r["method"] == "semi-supervised"])
    rival = max(100 * np.mean([r["test_balanced_accuracy"] for r in results
                               if r["method"] == m and r["budget"] == 2])
                for m in ("scratch + augmentation", "fine-tuned + augmentation"))
    assert f"| 2 | {semi_mean:.2f} | " in report and f"| {semi_mean - rival:+.2f} |" in report
    assert "Command: `python scripts/experiment.py --image_dir=photos`" in report and "cross-domain" not in report


def test_quick_cross_validation_tests_every_image_once_each_fold_with_its_own_autoencoder(tmp_path, mnist,
                                                                                          monkeypatch):
    from test_own_images import write_folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    write_folder(tmp_path / "scans", mnist, 30, (16, 16), color=False)
    tested, restored = collections.defaultdict(list), []
    real_transfer = transfer.transfer

    def recording(cfg, datasets):
        tested[cfg.fold].append(np.asarray(datasets.test.images))
        restored.append((cfg.fold, cfg.checkpoint_path))
        return real_transfer(cfg, datasets)
    monkeypatch.setattr(transfer, "transfer", recording)
    cfg = ExperimentConfig(image_dir=str(tmp_path / "scans"), quick=True, labels_per_class="all", folds=2,
                           validation_percentage=10, testing_percentage=50, work_dir=str(tmp_path / "work"),
                           report_dir=str(tmp_path / "reports"))
    results = label_budget.run(cfg)
    assert [(r["method"], r["seed"], r["fold"]) for r in results] == [
        (m, seed, fold) for m in ("scratch", "frozen", "fine-tuned") for fold in (0, 1) for seed in (0, 1)]
    rows = {fold: {row.tobytes() for row in images[0]} for fold, images in tested.items()}
    assert all((images == tested[fold][0]).all() for fold in tested for images in tested[fold])
    every = data.load_image_dir(str(tmp_path / "scans"), validation_percentage=10, testing_percentage=50)
    assert rows[0].isdisjoint(rows[1]) and len(rows[0]) + len(rows[1]) == sum(
        len(split.labels) for split in every.splits().values())  # each image tested in exactly one fold
    assert {fold: {c for f, c in restored if f == fold and c} for fold in (0, 1)} == {
        fold: {str(tmp_path / "work" / f"fold{fold}" / "source")} for fold in (0, 1)}
    report = open(tmp_path / "reports" / "label_budget.md").read()
    assert "mean +/- std over 2 seeds x 2 folds" in report and "scans, fold 1: test reconstruction loss" in report
    with pytest.raises(UserError, match=re.escape("--folds=3: expected at most 2 at --testing_percentage=50")):
        label_budget.run(dataclasses.replace(cfg, folds=3))


@pytest.mark.parametrize("flags, message", [
    (dict(semi_budgets="10"), "--semi_budgets needs --labels_per_class"),
    (dict(labels_per_class="10,30", semi_budgets="10,20"), "--semi_budgets: 20 is not one of the budgets of "
                                                           "--labels_per_class=10,30"),
    (dict(labels_per_class="10,all", ablation_budget="5"), "--ablation_budget: 5 is not one of the budgets"),
    (dict(labels_per_class="10,every"), "--labels_per_class=10,every: expected comma-separated integers or 'all'"),
])
def test_experiment_flags_that_do_not_fit_are_one_line(tmp_path, flags, message):
    cfg = ExperimentConfig(work_dir=str(tmp_path / "work"), report_dir=str(tmp_path / "r"), **flags)
    with pytest.raises(UserError, match=re.escape(message)):
        label_budget.run(cfg)
    assert not (tmp_path / "work").exists() and not (tmp_path / "r").exists()


def test_an_experiment_turning_the_hues_of_gray_images_is_one_line(tmp_path, mnist_dir):
    cfg = ExperimentConfig(data_dir=mnist_dir, quick=True, random_hue=30, work_dir=str(tmp_path / "work"),
                           report_dir=str(tmp_path / "r"))
    with pytest.raises(UserError, match="--random_hue needs colour images: these have 1 channel"):
        label_budget.run(cfg)
    assert not (tmp_path / "work").exists() and not (tmp_path / "r").exists()


def test_a_work_dir_it_did_not_make_is_refused_and_left_alone(tmp_path, mnist_dir, fashion_mnist):
    """--work_dir is emptied first: a directory holding anything else (checkpoints, say) must never be."""
    work_dir = tmp_path / "checkpoints"
    (work_dir / "cae").mkdir(parents=True)
    (work_dir / "cae" / "model.ckpt-4690.index").write_bytes(b"months of work")
    before = snapshot(work_dir)
    cfg = ExperimentConfig(data_dir=mnist_dir, quick=True, work_dir=str(work_dir), report_dir=str(tmp_path / "r"))
    with pytest.raises(UserError, match=r"--work_dir=.*checkpoints: not empty and not made by an earlier "
                                        r"experiment; everything in it would be deleted"):
        label_budget.run(cfg)
    assert snapshot(work_dir) == before and not (tmp_path / "r").exists()
    label_budget.check_work_dir(str(tmp_path / "new"))  # new, empty and marked directories are fine
    (tmp_path / "empty").mkdir()
    label_budget.check_work_dir(str(tmp_path / "empty"))
    label_budget.reset_work_dir(str(work_dir / "earlier"))
    (work_dir / "earlier" / "runs").mkdir()
    label_budget.check_work_dir(str(work_dir / "earlier"))
    label_budget.reset_work_dir(str(work_dir / "earlier"))
    assert os.listdir(work_dir / "earlier") == [label_budget.WORK_DIR_MARK]


def test_the_experiment_runs_in_one_precision_and_falls_back_once(monkeypatch):
    """Every pretraining and run takes the experiment's precision; a CPU without bfloat16 turns the whole
    experiment float32 with one warning, not one per run, and the report lists float32."""
    cfg = ExperimentConfig()
    assert cfg.precision == "mixed_bfloat16"
    assert label_budget.pretrain_config(cfg, "mnist", "/tmp/p").precision == "mixed_bfloat16"
    for method in label_budget.METHODS:
        assert label_budget.transfer_config(cfg, method, "/tmp/p", "/tmp/t", 0, 1000).precision == "mixed_bfloat16"
    monkeypatch.setattr(session, "bfloat16_unsupported", lambda: "this CPU has no bfloat16 instructions (test)")
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda message, *args: warnings.append(message % args))
    ran = label_budget.precision_this_cpu_runs(cfg)
    assert ran.precision == "float32" and ran.pretrain_epochs == cfg.pretrain_epochs
    assert warnings == ["--precision=mixed_bfloat16: this CPU has no bfloat16 instructions (test); the whole "
                        "experiment runs in float32"]
    assert label_budget.precision_this_cpu_runs(ExperimentConfig(precision="float32")).precision == "float32"
    assert len(warnings) == 1
