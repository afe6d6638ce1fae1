"""What a user sees in TensorBoard: the tags and steps of each run's event files, the decoded images, the graph's
name scopes, the Embedding Projector's files, and a real ``tensorboard`` process serving all of it."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins import projector as projector_plugin

from cae import projector, summaries
from cae.errors import UserError
from cae.config import PretrainConfig, TransferConfig
from cae.pretrain import build_graph, pretrain
from cae.transfer import transfer

from conftest import REPO, snapshot

v1 = tf.compat.v1
EPOCHS, BATCH, EVERY, PROJECTED = 2, 64, 3, 100  # 256 training images: 4 steps an epoch, 8 in all
TRAIN_STEPS, EPOCH_STEPS = [3, 6], [4, 8]
HISTOGRAMS = {
    "cae": ["conv1", "conv2", "latent_var", "z_matrix", "dconv1", "dconv2"],
    "transfer": ["conv1", "conv2", "fc1", "logits"],
}
ACTIVATIONS = {"cae": ["conv1", "conv2", "latent"], "transfer": ["conv1", "conv2", "fc1"]}


def small(split, count):
    return split._replace(images=split.images[:count], labels=split.labels[:count])


@pytest.fixture(scope="module")
def mnist_small(mnist):
    return mnist._replace(train=small(mnist.train, 256), validation=small(mnist.validation, 300),
                          test=small(mnist.test, 300))


@pytest.fixture(scope="module")
def logdir(tmp_path_factory, mnist_small):
    """A short pretrain and a short frozen-conv transfer from it, side by side as TensorBoard runs."""
    root = tmp_path_factory.mktemp("logs")
    common = dict(epochs=EPOCHS, batch_size=BATCH, summary_every_steps=EVERY, projector_images=PROJECTED,
                  learning_rate=1e-3, lr_schedule="cosine")
    pretrain(PretrainConfig(train_dir=str(root / "cae"), save_every_steps=3, **common), mnist_small)
    transfer(TransferConfig(train_dir=str(root / "transfer"), checkpoint_path=str(root / "cae"), **common),
             mnist_small)
    return root


def events(run_dir):
    accumulator = event_accumulator.EventAccumulator(str(run_dir), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0, event_accumulator.HISTOGRAMS: 0})
    return accumulator.Reload()


def decoded(image_event):
    return tf.io.decode_png(image_event.encoded_image_string).numpy()[:, :, 0]


def test_autoencoder_run_scalars_histograms_images_graph(logdir, mnist_small):
    run = events(logdir / "cae")
    assert {tag: [e.step for e in run.Scalars(tag)] for tag in run.Tags()["scalars"]} == {
        "train/loss": TRAIN_STEPS, "train/learning_rate": TRAIN_STEPS, "train/images_per_s": TRAIN_STEPS,
        "val/reconstruction_loss": EPOCH_STEPS, "test/reconstruction_loss": [8]}
    # the rate of the step that reached the logged global step: cosine decay from 1e-3 over the 8 steps
    assert [e.value for e in run.Scalars("train/learning_rate")] == [
        pytest.approx(1e-3 * (1 + math.cos(math.pi * (step - 1) / 8)) / 2) for step in TRAIN_STEPS]
    assert all(e.value > 0 for e in run.Scalars("train/images_per_s"))
    assert sorted(run.Tags()["histograms"]) == sorted(
        [f"weights/{layer}/{v}" for layer in HISTOGRAMS["cae"] for v in ("kernel", "bias")]
        + [f"activations/{name}" for name in ACTIVATIONS["cae"]])
    assert sorted(run.Tags()["images"]) == ["filters/conv1/image", "reconstructions/inputs_vs_outputs/image"]
    grids = run.Images("reconstructions/inputs_vs_outputs/image")
    assert [(e.step, e.height, e.width) for e in grids] == [(4, 56, 224), (8, 56, 224)]
    pixels = decoded(grids[-1])
    assert pixels.shape == (56, 224)
    first_input = np.round(mnist_small.validation.images[0].reshape(28, 28) * 255)
    np.testing.assert_array_equal(pixels[:28, :28], first_input)  # inputs on top, reconstructions below
    scopes = {node.name.split("/")[0] for node in run.Graph().node}
    assert {"ENCODER", "LATENT", "DECODER", "LOSS", "Solver", "SUMMARIES", "PROJECTOR"} <= scopes
    assert not {"Reshape", "transpose", "Merge", "ReadVariableOp"} & scopes  # summary plumbing is tucked away


def test_transfer_run_scalars_histograms_and_confusion_matrix(logdir, mnist_small):
    run = events(logdir / "transfer")
    assert {tag: [e.step for e in run.Scalars(tag)] for tag in run.Tags()["scalars"]} == {
        "train/loss": TRAIN_STEPS, "train/learning_rate": TRAIN_STEPS, "train/images_per_s": TRAIN_STEPS,
        "val/loss": EPOCH_STEPS, "val/accuracy": EPOCH_STEPS, "val/balanced_accuracy": EPOCH_STEPS,
        "val/macro_f1": EPOCH_STEPS, "test/loss": [8], "test/accuracy": [8], "test/balanced_accuracy": [8],
        "test/macro_f1": [8]}
    assert sorted(run.Tags()["histograms"]) == sorted(
        [f"weights/{layer}/{v}" for layer in HISTOGRAMS["transfer"] for v in ("kernel", "bias")]
        + [f"activations/{name}" for name in ACTIVATIONS["transfer"]])
    assert sorted(run.Tags()["images"]) == ["filters/conv1/image", "test/confusion_matrix"]
    confusion = run.Images("test/confusion_matrix")
    assert [e.step for e in confusion] == [8] and confusion[0].height == confusion[0].width > 200
    labelled = decoded(confusion[0])
    pixels = labelled[-200:, -200:]  # the cells; the class names label the rows on the left, columns on top
    assert (labelled[:-200, :-200] == labelled[0, 0]).all() and (labelled[-200:, :-200] > 200).any()  # names
    cells = pixels[::summaries.CONFUSION_CELL, ::summaries.CONFUSION_CELL].astype(float) / 255
    np.testing.assert_array_equal(np.kron(pixels[::20, ::20], np.ones([20, 20])), pixels)  # 10x10 flat cells
    rows = np.bincount(mnist_small.test.labels, minlength=10)
    assert np.allclose(cells.sum(axis=1)[rows > 0], 1, atol=10 / 255)  # each row: fractions of its class
    accuracy = run.Scalars("test/accuracy")[0].value
    assert np.sum(np.diag(cells) * rows) / rows.sum() == pytest.approx(accuracy, abs=1 / 255)


@pytest.mark.parametrize("run_name", ["cae", "transfer"])
def test_filters_image_has_16_tiles_of_the_checkpointed_kernel(logdir, run_name):
    run = events(logdir / run_name)
    images = run.Images("filters/conv1/image")
    assert [(e.step, e.height, e.width) for e in images] == [(4, 90, 90), (8, 90, 90)]
    pixels = decoded(images[-1]).astype(int)
    kernel = tf.train.load_checkpoint(str(logdir / run_name / "model.ckpt-8")).get_tensor("conv1/kernel")
    tile = 5 * summaries.FILTER_ZOOM + summaries.FILTER_GAP
    gaps = [i for i in range(90) if i % tile < summaries.FILTER_GAP]
    assert (pixels[gaps, :] == 255).all() and (pixels[:, gaps] == 255).all()
    for n in range(16):
        row, col = divmod(n, 4)
        top, left = row * tile + summaries.FILTER_GAP, col * tile + summaries.FILTER_GAP
        shown = pixels[top:top + 20, left:left + 20]
        weights = kernel[:, :, 0, n]
        expected = np.round((weights - weights.min()) / (weights.max() - weights.min()) * 255)
        np.testing.assert_allclose(shown[::4, ::4], expected, atol=1)
        np.testing.assert_array_equal(np.kron(shown[::4, ::4], np.ones([4, 4])), shown)


@pytest.mark.parametrize("run_name, tags", [
    ("cae", ["filters/conv1/image", "reconstructions/inputs_vs_outputs/image"]),
    ("transfer", ["filters/conv1/image", "test/confusion_matrix"])])
def test_each_image_is_also_a_png_of_its_latest_step(logdir, run_name, tags):
    run = events(logdir / run_name)
    pngs = logdir / run_name / summaries.PNG_DIR
    assert sorted(os.listdir(pngs)) == sorted(summaries.png_name(tag) for tag in tags)
    for tag in tags:
        assert (pngs / summaries.png_name(tag)).read_bytes() == run.Images(tag)[-1].encoded_image_string, tag
    assert summaries.png_name("reconstructions/inputs_vs_outputs/image") == "reconstructions_inputs_vs_outputs.png"


@pytest.mark.parametrize("run_name, layer, size", [("cae", "latent", 20), ("transfer", "fc1", 200)])
def test_projector_files_agree(logdir, mnist_small, run_name, layer, size):
    run_dir = logdir / run_name
    config = text_format.Parse((run_dir / "projector_config.pbtxt").read_text(), projector_plugin.ProjectorConfig())
    [entry] = config.embeddings
    assert entry.tensor_name == f"embedding/{layer}"
    assert (entry.metadata_path, entry.sprite.image_path) == ("metadata.tsv", "sprite.png")  # relative: movable
    assert list(entry.sprite.single_image_dim) == [28, 28]
    checkpoint = tf.train.latest_checkpoint(str(run_dir))
    vectors = tf.train.load_checkpoint(checkpoint).get_tensor(entry.tensor_name)
    labels = (run_dir / entry.metadata_path).read_text().splitlines()
    sprite = tf.io.decode_png((run_dir / entry.sprite.image_path).read_bytes()).numpy()[:, :, 0]
    side = math.ceil(math.sqrt(PROJECTED))
    assert vectors.shape == (PROJECTED, size) and len(labels) == PROJECTED and sprite.shape == (side * 28,) * 2
    assert labels == [str(label) for label in mnist_small.test.labels[:PROJECTED]]
    tiles = sprite.reshape(side, 28, side, 28).transpose(0, 2, 1, 3).reshape(-1, 28, 28)
    expected = 255 - np.round(mnist_small.test.images[:PROJECTED].reshape(-1, 28, 28) * 255)  # dark on white
    np.testing.assert_array_equal(tiles[:PROJECTED], expected)
    assert np.count_nonzero(vectors.any(axis=1)) == PROJECTED  # real features, not the zero initializer


def test_every_checkpoint_holds_its_own_encoders_features(logdir, mnist_small):
    """Refreshed before each save, mid-epoch ones (--save_every_steps=3: step 3) included."""
    g = build_graph(PretrainConfig(projector_images=PROJECTED), total_steps=8)
    checkpoints = tf.train.get_checkpoint_state(str(logdir / "cae")).all_model_checkpoint_paths
    assert [int(c.rsplit("-", 1)[1]) for c in checkpoints] == [3, 4, 6, 8]
    with g.graph.as_default(), v1.Session(graph=g.graph) as sess:
        for checkpoint in checkpoints:
            g.saver.restore(sess, checkpoint)
            features = sess.run(g.model.latent, {g.model.images: mnist_small.test.images[:PROJECTED]})
            stored = tf.train.load_checkpoint(checkpoint).get_tensor("embedding/latent")
            np.testing.assert_allclose(stored, features, rtol=1e-5, atol=1e-6, err_msg=checkpoint)


def test_resuming_with_another_projector_size_is_a_user_error_that_changes_nothing(logdir, mnist_small):
    run_dir = logdir / "cae"
    before = snapshot(run_dir)
    cfg = PretrainConfig(train_dir=str(run_dir), epochs=EPOCHS + 1, batch_size=BATCH, projector_images=50)
    with pytest.raises(UserError, match=r"--projector_images=50 cannot resume this run: .*model\.ckpt-8: cannot "
                                        r"restore: embedding/latent has shape \[100, 20\] in the checkpoint, "
                                        r"\[50, 20\] in the model"):
        pretrain(cfg, mnist_small)
    assert snapshot(run_dir) == before  # no new event file either


def test_png_encoder_round_trips_through_tensorflows_decoder():
    pixels = np.random.default_rng(0).integers(0, 256, size=(37, 53), dtype=np.uint8)
    np.testing.assert_array_equal(tf.io.decode_png(summaries.encode_png(pixels)).numpy()[:, :, 0], pixels)


def test_sprite_and_subset_limits(mnist_small):
    grid = projector.sprite(mnist_small.test.images[:5])
    assert grid.shape == (84, 84) and (grid[28:, 56:] == 255).all()  # 3x3 tiles; empty ones stay white
    with pytest.raises(UserError, match=r"--projector_images=301: expected 0 \(no projector\) to 300"):
        projector.subset(mnist_small.test, 301)
    assert projector.subset(mnist_small.test, 0)[0].shape == (0, 784)


def test_summaries_are_fetched_only_every_n_steps():
    """The hot loop fetches the summary op on steps 5, 10, ... of the global step only, and writes the images/s
    of the steps since the previous summary."""
    fetched, written = [], []

    class FakeSession:
        def run(self, fetches, feed):
            fetched.append(len(fetches))
            return [None, 0.5] + (["summary"] if len(fetches) == 3 else [])

    class FakeWriter:
        def add_summary(self, summary, step):
            written.append((step, summary if isinstance(summary, str) else
                            {v.tag: v.simple_value for v in summary.value}))

    clock = iter(range(0, 300, 2)).__next__  # read at the start and end of each step: each step takes 2 s
    run_step = summaries.training_step(FakeSession(), "train_op", "loss", "summary", lambda i: {}, FakeWriter(),
                                       first_step=3, every_steps=5, clock=clock)
    batch_sizes = [10, 10, 30, 30, 30, 30, 30, 7, 7]  # global steps 4 .. 12
    losses = [run_step(np.arange(n)) for n in batch_sizes]
    assert losses == [0.5] * 9
    assert fetched == [2, 3, 2, 2, 2, 2, 3, 2, 2]  # the summary only on steps 5 and 10
    assert written == [(5, "summary"), (5, {"train/images_per_s": 20 / 4}),
                       (10, "summary"), (10, {"train/images_per_s": 150 / 10})]


def test_zero_summary_every_steps_is_one_line_error(tmp_path, mnist_dir):
    train_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "pretrain_cae.py"),
                             "--summary_every_steps=0", f"--train_dir={train_dir}"],
                            capture_output=True, text=True, env=dict(os.environ, CAE_DATA_DIR=mnist_dir), timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --summary_every_steps=0: expected a positive number of steps")
    assert "Traceback" not in result.stderr and not train_dir.exists()


def get_json(url, path):
    with urllib.request.urlopen(url + path, timeout=10) as response:
        return json.load(response)


def wait_for(condition, what, deadline):
    """Poll ``condition()`` until it returns something true, for at most ``deadline`` seconds."""
    last = None
    for _ in range(int(deadline / 0.5)):
        try:
            last = condition()
            if last:
                return last
        except (OSError, ValueError) as e:  # not listening yet, or not yet loaded
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


@pytest.fixture
def tensorboard(logdir, tmp_path):
    """A real tensorboard on a port the OS picks, serving a copy of the runs (so nothing depends on where they were
    written); the process and its children are stopped afterwards."""
    served = tmp_path / "moved" / "logs"
    shutil.copytree(logdir, served)
    log = open(tmp_path / "tensorboard.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(served),
                                "--host", "127.0.0.1", "--port", "0"],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def url():
            log.seek(0)
            assert process.poll() is None, log.read()
            line = [s for s in log.read().splitlines() if s.startswith("TensorBoard ") and " at http://" in s]
            return line and line[0].split(" at ")[1].split()[0].rstrip("/")
        yield wait_for(url, "tensorboard to print its address", 120)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        wait_for(lambda: not group_alive(process.pid), "tensorboard's children to exit", 20)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_tensorboard_serves_both_runs_and_the_projector(tensorboard):
    assert wait_for(lambda: sorted(get_json(tensorboard, "/data/runs")) == ["cae", "transfer"], "both runs", 120)
    scalars = wait_for(lambda: get_json(tensorboard, "/data/plugin/scalars/tags"), "scalar tags", 60)
    assert sorted(scalars["cae"]) == ["test/reconstruction_loss", "train/images_per_s", "train/learning_rate",
                                      "train/loss", "val/reconstruction_loss"]
    assert sorted(scalars["transfer"]) == ["test/accuracy", "test/balanced_accuracy", "test/loss", "test/macro_f1",
                                           "train/images_per_s", "train/learning_rate", "train/loss", "val/accuracy",
                                           "val/balanced_accuracy", "val/loss", "val/macro_f1"]
    images = get_json(tensorboard, "/data/plugin/images/tags")
    assert sorted(images["cae"]) == ["filters/conv1/image", "reconstructions/inputs_vs_outputs/image"]
    assert sorted(images["transfer"]) == ["filters/conv1/image", "test/confusion_matrix"]
    assert sorted(get_json(tensorboard, "/data/plugin/projector/runs")) == ["cae", "transfer"]
    for run, layer, size in [("cae", "latent", 20), ("transfer", "fc1", 200)]:
        config = get_json(tensorboard, f"/data/plugin/projector/info?run={run}")
        embedding = config["embeddings"][0]
        assert embedding["tensorName"] == f"embedding/{layer}"
        assert [int(d) for d in embedding["tensorShape"]] == [PROJECTED, size]
        assert embedding["sprite"]["singleImageDim"] == [28, 28]
        with urllib.request.urlopen(f"{tensorboard}/data/plugin/projector/metadata?run={run}"
                                    f"&name=embedding/{layer}", timeout=10) as response:
            assert len(response.read().decode().splitlines()) == PROJECTED
