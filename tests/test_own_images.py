"""Your own images through the whole workflow: folders built here from real MNIST digits (gray and RGB, PNG and
JPEG, odd sizes), pretrain -> transfer -> export -> predict by class name, and every bad folder refused in one
line with the train_dir left as it was."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cae import export, extract, features, inspect_checkpoint, pretrain, train_dir, transfer
from cae.config import ExportConfig, ExtractConfig, PretrainConfig, TransferConfig
from cae.errors import UserError

from conftest import run_cli, snapshot, stderr_lines

DIGITS = {"zero": 0, "one": 1, "four": 4}  # class folder -> MNIST digit; sorted: four, one, zero


def assert_rejected(result, train_dir, before, *expected):
    """Exit 2, one 'error:' line (the last: decoding may have logged progress before it), no traceback, the
    train_dir byte-identical."""
    errors = [line for line in stderr_lines(result) if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert len(errors) == 1 and stderr_lines(result)[-1] == errors[0], result.stderr[-3000:]
    for text in expected:
        assert text in errors[0]
    assert snapshot(train_dir) == before


def write_folder(root, mnist, per_class, size, color, start=0):
    """root/<name>/<i>.<png|jpg>: MNIST test digits resized to ``size`` (width, height), in random colours per
    image (so colour says nothing about the class) when ``color``. Returns the paths per class."""
    rng = np.random.default_rng(start)
    paths = {}
    for name, digit in DIGITS.items():
        os.makedirs(root / name, exist_ok=True)
        indices = np.flatnonzero(mnist.test.labels == digit)[start:start + per_class]
        paths[name] = []
        for i, index in enumerate(indices):
            ink = mnist.test.images[index].reshape(28, 28)
            if color:
                stroke, paper = rng.integers(128, 256, 3), rng.integers(0, 100, 3)
                pixels = paper + (stroke - paper) * ink[:, :, None]
            else:
                pixels = ink * 255
            image = Image.fromarray(np.rint(pixels).astype(np.uint8)).resize(size, Image.BILINEAR)
            path = root / name / f"{i:03d}.{'jpg' if i % 3 == 0 else 'png'}"
            image.save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))
            paths[name].append(str(path))
    return paths


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory, mnist):
    """An RGB folder of three digit classes (32x32), an autoencoder pretrained on it and a frozen-conv
    classifier trained from that through the real command line."""
    root = tmp_path_factory.mktemp("rgb")
    environment = pytest.MonkeyPatch()
    environment.setenv("XDG_CACHE_HOME", str(root / "xdg"))  # the decoded-image cache stays out of ~/.cache
    folder = root / "photos"
    paths = write_folder(folder, mnist, per_class=120, size=(32, 32), color=True)
    common = dict(image_dir=str(folder), projector_images=20, seed=0)
    pretrain.pretrain(PretrainConfig(train_dir=str(root / "cae"), epochs=8, batch_size=32, **common))
    result = run_cli("transfer_classify.py", f"--image_dir={folder}", f"--checkpoint_path={root / 'cae'}",
                     f"--train_dir={root / 'transfer'}", "--epochs=15", "--batch_size=32", "--projector_images=20",
                     "--trainable_scopes=conv2,fc1,logits")
    assert result.returncode == 0, result.stderr[-3000:]
    yield root, paths
    environment.undo()


def test_rgb_folder_trains_a_colour_model_with_its_class_names(rgb_run):
    root, _ = rgb_run
    shapes = dict(tf.train.list_variables(str(root / "transfer")))
    assert shapes["conv1/kernel"] == [5, 5, 3, 16] and shapes["fc1/kernel"] == [8 * 8 * 32, 200]
    assert shapes["logits/kernel"] == [200, 3]
    assert dict(tf.train.list_variables(str(root / "cae")))["dconv2/kernel"] == [5, 5, 3, 16]  # RGB reconstruction
    assert (root / "transfer" / "labels.txt").read_text() == "four\none\nzero\n"  # sorted folder names
    metrics = json.loads((root / "transfer" / "metrics.json").read_text())
    assert metrics["class_names"] == ["four", "one", "zero"]
    assert metrics["test_accuracy"] > 0.8, metrics  # chance is 1/3; three distinct digits in random colours
    names = (root / "transfer" / "metadata.tsv").read_text().split()
    assert len(names) == 20 and set(names) <= {"four", "one", "zero"}  # the projector labels points by name
    assert json.loads((root / "transfer" / "input.json").read_text()) == {"image_shape": [32, 32, 3],
                                                                          "source": "image_dir"}


def test_a_folder_run_keeps_its_split_and_refuses_to_resume_on_another_fold(rgb_run):
    root, _ = rgb_run
    for run in ("cae", "transfer"):
        assert json.loads((root / run / "split.json").read_text()) == {
            "validation_percentage": 10, "testing_percentage": 10, "fold": 0}
    before = snapshot(root / "transfer")
    result = run_cli("transfer_classify.py", f"--image_dir={root / 'photos'}", f"--checkpoint_path={root / 'cae'}",
                     f"--train_dir={root / 'transfer'}", "--epochs=16", "--fold=1")
    assert_rejected(result, root / "transfer", before, f"--train_dir={root / 'transfer'}: its run was split at "
                    "--validation_percentage=10 --testing_percentage=10 --fold=0, this one asks "
                    "--validation_percentage=10 --testing_percentage=10 --fold=1; resumed, it would test on images "
                    "it trained on: use a new --train_dir")


def test_rgb_model_exports_and_predicts_by_class_name(rgb_run, tmp_path):
    root, paths = rgb_run
    export_dir = tmp_path / "export" / "1"
    export.export(ExportConfig(checkpoint_path=str(root / "transfer"), export_dir=str(export_dir)))
    assert (export_dir / "assets" / "labels.txt").read_text() == "four\none\nzero\n"
    loaded = tf.saved_model.load(str(export_dir))
    signature = loaded.signatures["serving_uint8"]
    assert signature.structured_input_signature[1]["images"].shape.as_list() == [None, 32, 32, 3]

    files = [path for name in DIGITS for path in paths[name][-10:]]
    truth = [name for name in DIGITS for _ in range(10)]
    lines = {}
    for model in (str(export_dir), str(root / "transfer")):  # the SavedModel and the checkpoint agree
        result = run_cli("predict.py", f"--model={model}", *files)
        assert result.returncode == 0, result.stderr[-3000:]
        lines[model] = result.stdout.splitlines()
    assert lines[str(export_dir)] == lines[str(root / "transfer")]
    predicted = [line.split(": ")[1].split(" (probability")[0] for line in lines[str(export_dir)]]
    assert [line.split(": ")[0] for line in lines[str(export_dir)]] == files
    assert set(predicted) <= set(DIGITS) and np.mean(np.array(predicted) == np.array(truth)) > 0.8


def test_an_early_stopping_run_exports_and_predicts_the_weights_it_tested(tmp_path, mnist):
    """With --patience a run tests <train_dir>/best/ (the best validation's weights), so export and predict of its
    train_dir take those, not the last step's; best/ is itself a model, its class names and input spec beside it."""
    folder = tmp_path / "gray"
    paths = write_folder(folder, mnist, per_class=30, size=(24, 24), color=False)
    run = tmp_path / "run"
    metrics = transfer.transfer(TransferConfig(image_dir=str(folder), train_dir=str(run), epochs=3, patience=5,
                                               learning_rate=3e-3, projector_images=0, seed=0))
    best = tf.train.latest_checkpoint(str(run / "best"))
    assert best.endswith(f"model.ckpt-{metrics['best_epoch'] * metrics['steps'] // 3}")
    assert train_dir.tested_checkpoint(str(run), "model") == best
    assert train_dir.tested_checkpoint(str(run / "best"), "model") == best
    last = tf.train.latest_checkpoint(str(run))
    assert train_dir.tested_checkpoint(last, "model") == last  # a prefix is taken as given
    assert (run / "best" / "labels.txt").read_text() == "four\none\nzero\n"
    lines = inspect_checkpoint.inspect(str(run))  # what is on disk, and which of it the run tested
    assert lines[:2] == [f"checkpoint {last}", f"(the weights its run tested, which export and predict take: {best})"]

    export_dir = tmp_path / "export"
    export.export(ExportConfig(checkpoint_path=str(run), export_dir=str(export_dir)))
    exported = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
    tested = tf.train.load_checkpoint(best)
    for name in ("conv1/kernel", "fc1/kernel", "logits/bias"):
        np.testing.assert_array_equal(exported.get_tensor(name), tested.get_tensor(name), err_msg=name)

    output = tmp_path / "fc1.npz"  # features of the tested weights too
    extract.extract(ExtractConfig(image_dir=str(folder), checkpoint_path=str(run), output=str(output), layer="fc1",
                                  split="test"))
    assert str(np.load(output)["checkpoint"]) == best

    files = [path for name in DIGITS for path in paths[name][:4]]
    got = {}
    for model in (run, run / "best", export_dir):
        result = run_cli("predict.py", f"--model={model}", "--json", *files)
        assert result.returncode == 0, result.stderr[-3000:]
        got[model] = json.loads(result.stdout)
    assert got[run] == got[run / "best"]
    for name in ("labels.txt", "input.json"):  # a best/ from before it had its own copies reads its run's
        (run / "best" / name).unlink()
    result = run_cli("predict.py", f"--model={run / 'best'}", "--json", *files)
    assert result.returncode == 0 and json.loads(result.stdout) == got[run], result.stderr[-3000:]
    np.testing.assert_allclose([r["probabilities"] for r in got[export_dir]],
                               [r["probabilities"] for r in got[run]], atol=1e-6)


def test_gray_folder_of_another_size_restores_mnist_convs_and_keeps_them_frozen(tmp_path, mnist, cae_checkpoint):
    folder = tmp_path / "gray"
    write_folder(folder, mnist, per_class=30, size=(24, 24), color=False)
    metrics = transfer.transfer(TransferConfig(image_dir=str(folder), checkpoint_path=cae_checkpoint,
                                               train_dir=str(tmp_path / "run"), epochs=2, projector_images=0))
    assert metrics["class_names"] == ["four", "one", "zero"]
    trained = tf.train.load_checkpoint(str(tmp_path / "run" / f"model.ckpt-{metrics['steps']}"))
    pretrained = tf.train.load_checkpoint(cae_checkpoint)
    for name in ("conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias"):  # 28x28 convs into a 24x24 model
        np.testing.assert_array_equal(trained.get_tensor(name), pretrained.get_tensor(name), err_msg=name)
    assert trained.get_variable_to_shape_map()["fc1/kernel"] == [6 * 6 * 32, 200]


def test_cached_features_kept_on_disk_train_exactly_as_in_memory(tmp_path, mnist, cae_checkpoint, monkeypatch,
                                                                 caplog):
    """Cached features above features.IN_MEMORY_BYTES (here: any) go to an unlinked file in the train_dir and give
    the same run, bit for bit, as features in memory; no file is left behind."""
    folder = tmp_path / "gray"
    write_folder(folder, mnist, per_class=30, size=(24, 24), color=False)
    runs = {}
    for where in ("memory", "disk"):
        if where == "disk":
            monkeypatch.setattr(features, "IN_MEMORY_BYTES", 0)
        caplog.clear()
        with caplog.at_level("INFO"):
            runs[where] = transfer.transfer(TransferConfig(
                image_dir=str(folder), checkpoint_path=cae_checkpoint, train_dir=str(tmp_path / where), epochs=2,
                projector_images=0, cache_features=True))
        assert ("for every image on disk" in caplog.text) == (where == "disk")
        assert not [n for n in os.listdir(tmp_path / where) if "features" in n]
    for key in ("test_accuracy", "test_loss", "best_validation_accuracy", "steps"):
        assert runs["memory"][key] == runs["disk"][key], key


def test_gray_checkpoint_with_colour_images_names_conv1_and_the_flag(tmp_path, mnist, cae_checkpoint):
    folder = tmp_path / "rgb"
    write_folder(folder, mnist, per_class=10, size=(28, 28), color=True)
    train_dir = tmp_path / "run"
    train_dir.mkdir()
    before = snapshot(train_dir)
    result = run_cli("transfer_classify.py", f"--image_dir={folder}", f"--checkpoint_path={cae_checkpoint}",
                     f"--train_dir={train_dir}", "--validation_percentage=20", "--testing_percentage=20")
    assert_rejected(result, train_dir, before, "cannot restore conv1/kernel: [5, 5, 1, 16] in the checkpoint",
                    "[5, 5, 3, 16] in the model", "--color_mode=grayscale")
    fixed = transfer.transfer(TransferConfig(image_dir=str(folder), checkpoint_path=cae_checkpoint, epochs=0,
                                             train_dir=str(tmp_path / "gray_run"), color_mode="grayscale",
                                             validation_percentage=20, testing_percentage=20, projector_images=0))
    assert 0.0 <= fixed["test_accuracy"] <= 1.0


def test_extract_features_of_an_image_folder(tmp_path, mnist, cae_checkpoint):
    folder = tmp_path / "gray"
    write_folder(folder, mnist, per_class=20, size=(20, 20), color=False)
    output = tmp_path / "conv2.npz"
    values, labels = extract.extract(ExtractConfig(image_dir=str(folder), checkpoint_path=cae_checkpoint,
                                                   output=str(output), layer="conv2", split="train"))
    saved = np.load(output)
    assert saved["features"].shape == (len(labels), 5 * 5 * 32) and set(labels) <= {0, 1, 2}
    assert list(saved["class_names"]) == ["four", "one", "zero"]


def test_resuming_with_other_classes_is_refused(tmp_path, mnist):
    folder = tmp_path / "digits"
    write_folder(folder, mnist, per_class=20, size=(28, 28), color=False)
    cfg = TransferConfig(image_dir=str(folder), train_dir=str(tmp_path / "run"), epochs=1, projector_images=0)
    transfer.transfer(cfg)
    os.rename(folder / "zero", folder / "nought")
    before = snapshot(tmp_path / "run")
    with pytest.raises(UserError, match="labels.txt lists the classes four, one, zero, the data has four, nought, "
                                        "one; use a new --train_dir"):
        transfer.transfer(cfg)
    assert snapshot(tmp_path / "run") == before


def bad_folders(root, mnist):
    """{case: (folder, text the error must contain[, flags])}, each folder made here."""
    one_class = root / "one_class"
    write_folder(one_class, mnist, per_class=5, size=(28, 28), color=False)
    for name in ("one", "four"):
        for path in (one_class / name).iterdir():
            path.unlink()
        (one_class / name).rmdir()
    empty_class = root / "empty_class"
    write_folder(empty_class, mnist, per_class=10, size=(28, 28), color=False)
    (empty_class / "seven").mkdir()
    undecodable = root / "undecodable"
    write_folder(undecodable, mnist, per_class=10, size=(28, 28), color=False)
    (undecodable / "one" / "notes.png").write_text("not an image")
    return {
        "missing": (root / "nowhere", f"--image_dir={root / 'nowhere'}"),
        "one class": (one_class, str(one_class)),
        "empty class": (empty_class, str(empty_class / "seven")),
        "undecodable": (undecodable, f"{undecodable / 'one' / 'notes.png'}: not a decodable image"),
        # checked before the folder is even listed
        "fold past the last": (root / "nowhere", "--fold=5: expected 0 to 4 (--testing_percentage=20 makes 5 folds",
                               ("--fold=5",)),
    }


@pytest.mark.parametrize("case", ["missing", "one class", "empty class", "undecodable", "fold past the last"])
def test_bad_folders_are_one_line_and_leave_the_train_dir_alone(tmp_path, mnist, case):
    folder, expected, *flags = bad_folders(tmp_path, mnist)[case]
    train_dir = tmp_path / "run"
    train_dir.mkdir()
    (train_dir / "notes.txt").write_text("my earlier work\n")
    before = snapshot(train_dir)
    result = run_cli("transfer_classify.py", f"--image_dir={folder}", f"--train_dir={train_dir}",
                     "--validation_percentage=20", "--testing_percentage=20", *(flags[0] if flags else ()))
    assert_rejected(result, train_dir, before, expected)


def test_a_tiny_folder_pretrains_with_fewer_validation_images_than_the_grid_shows(tmp_path, mnist):
    folder = tmp_path / "tiny"
    write_folder(folder, mnist, per_class=4, size=(28, 28), color=False)  # 12 images: 1 or 2 for validation
    metrics = pretrain.pretrain(PretrainConfig(image_dir=str(folder), train_dir=str(tmp_path / "cae"), epochs=1,
                                               batch_size=4, projector_images=4))
    assert metrics["steps"] > 0 and metrics["test_reconstruction_loss"] > 0
    grid = Image.open(tmp_path / "cae" / "images" / "reconstructions_inputs_vs_outputs.png")
    assert grid.size == (8 * 28, 2 * 28)
