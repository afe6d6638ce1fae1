"""Few labels: augmentation in the graph, --labels_per_class, and --semi_supervised (the restored decoder keeps
training, an EMA teacher validates, is exported and predicts), on real MNIST digits."""

import json
import signal

import numpy as np
import pytest
import tensorflow as tf

from cae import augment, data, export, models, transfer
from cae.config import ExportConfig, TransferConfig
from cae.errors import UserError

from conftest import checkpoint_predictions, run_cli, save_autoencoder_checkpoint, snapshot
from test_crash_resume import assert_same_tensors, read_all, scalars, start, step_of, wait_for
from test_own_images import assert_rejected, write_folder

v1 = tf.compat.v1

EVERY_OPTION = augment.Augmentation(translate=3, crop=10, scale=20, flip_left_right=True, flip_up_down=True,
                                    rotate=30, brightness=30, contrast=40)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def run_augment(images, aug, step, image_shape=(28, 28, 1), fraction=0.0):
    with tf.Graph().as_default(), v1.Session() as sess:
        seed = augment.step_seed(7, tf.constant(step, tf.int64))
        out = augment.cutout(augment.augment(tf.constant(images), image_shape, aug, seed), image_shape, fraction,
                             seed)
        return sess.run(out)


@pytest.mark.parametrize("aug", [augment.Augmentation(translate=3), augment.Augmentation(crop=10),
                                 augment.Augmentation(scale=20), augment.Augmentation(flip_left_right=True),
                                 augment.Augmentation(flip_up_down=True), augment.Augmentation(rotate=30),
                                 augment.Augmentation(brightness=30), augment.Augmentation(contrast=40),
                                 EVERY_OPTION], ids=lambda a: ",".join(k for k, v in a._asdict().items() if v))
def test_each_augmentation_keeps_shape_and_range_and_is_a_function_of_seed_and_step(mnist, aug):
    images = mnist.test.images[:32]
    out = run_augment(images, aug, step=3)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out, images, atol=1e-3)  # it did something to these digits
    np.testing.assert_array_equal(out, run_augment(images, aug, step=3))  # reproducible
    assert not np.array_equal(out, run_augment(images, aug, step=4))  # another step, another draw


def test_hue_and_saturation_change_colours_keep_gray_and_brightness_and_need_colour_images():
    rng = np.random.RandomState(0)
    # Mid-range colours, so that no turn of the hue leaves [0, 1] and clipping cannot hide a wrong matrix.
    images = (0.4 + 0.2 * rng.rand(16, 8 * 8 * 3)).astype(np.float32)
    images[0] = 0.3  # a gray image
    luminance = np.array([0.299, 0.587, 0.114], np.float32)
    for aug in augment.Augmentation(hue=180), augment.Augmentation(saturation=50), augment.Augmentation(
            hue=90, saturation=30):
        out = run_augment(images, aug, step=3, image_shape=(8, 8, 3))
        assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 1.0
        np.testing.assert_allclose(out[0], images[0], atol=1e-5)  # gray has no hue and no saturation
        np.testing.assert_allclose(out.reshape(-1, 3) @ luminance, images.reshape(-1, 3) @ luminance, atol=1e-5)
        assert np.abs(out[1:] - images[1:]).mean() > 0.01  # the colours moved
        np.testing.assert_array_equal(out, run_augment(images, aug, step=3, image_shape=(8, 8, 3)))
    with pytest.raises(UserError, match=r"--random_hue needs colour images: these have 1 channel"):
        run_augment(images[:, :64], augment.Augmentation(hue=10), step=0, image_shape=(8, 8, 1))


def test_distribution_alignment_damps_the_class_the_teacher_calls_too_often():
    from cae import semi_supervised
    teacher = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]], np.float32)  # calls class 0 for 77% of the mass
    labels = np.array([0, 1, 1])  # while the labelled images are 1/3 class 0
    with tf.Graph().as_default(), v1.Session() as sess:
        aligned = semi_supervised.align_distribution(tf.constant(teacher), tf.constant(labels), 2)
        sess.run(v1.global_variables_initializer())
        first = sess.run(aligned)
        for _ in range(1000):  # the running means settle on the batch's
            last = sess.run(aligned)
        means = sess.run({v.op.name: v for v in v1.global_variables()})
    np.testing.assert_allclose(means["distribution_alignment/labelled_classes"], [1 / 3, 2 / 3], atol=1e-4)
    np.testing.assert_allclose(means["distribution_alignment/teacher_classes"], teacher.mean(0), atol=1e-4)
    expected = teacher * (np.array([1 / 3, 2 / 3]) / teacher.mean(0))
    np.testing.assert_allclose(last, expected / expected.sum(1, keepdims=True), rtol=1e-3)
    np.testing.assert_allclose(first.sum(1), 1.0, rtol=1e-6)
    assert last[:, 0].mean() < 0.5 < teacher[:, 0].mean()  # the overcalled class is damped


def test_the_strong_view_is_stronger_and_jitters_colours_whatever_the_weak_view_does():
    from cae import semi_supervised
    weak = augment.Augmentation(translate=4, flip_left_right=True, brightness=10)
    plain = semi_supervised.strong(weak, 2.0)
    assert plain == weak._replace(translate=8, brightness=20)
    gray = semi_supervised.strong(weak, 2.0, photometric=50)
    assert gray == weak._replace(translate=8, brightness=50, contrast=50)  # no saturation: gray has none
    colour = semi_supervised.strong(weak._replace(brightness=40, saturation=70), 2.0, photometric=50, colour=True)
    assert (colour.brightness, colour.contrast, colour.saturation) == (80, 50, 70)  # never weaker than amplified


def test_flips_are_exact_mirrors_and_cutout_is_a_gray_square(mnist):
    images = mnist.test.images[:64]
    flipped = run_augment(images, augment.Augmentation(flip_left_right=True), step=0)
    grid, grid_flipped = images.reshape(-1, 28, 28), flipped.reshape(-1, 28, 28)
    mirrored = np.array([np.allclose(f, g[:, ::-1], atol=1e-5) for f, g in zip(grid_flipped, grid)])
    kept = np.array([np.allclose(f, g, atol=1e-5) for f, g in zip(grid_flipped, grid)])
    assert (mirrored | kept).all() and 10 < mirrored.sum() < 54  # each image mirrored or not, about half
    cut = run_augment(images, augment.Augmentation(), step=0, fraction=0.5).reshape(-1, 28, 28)
    changed = cut != grid
    assert (cut[changed] == 0.5).all() and changed.any(axis=(1, 2)).mean() > 0.9


def test_evaluation_is_never_augmented(tmp_path, mnist):
    """The classifier's input tensor is IMAGE_IN: what validation, test, export and predict feed passes unchanged,
    while the training batch below it is augmented."""
    cfg = TransferConfig(train_dir=str(tmp_path), random_rotate=30, random_translate=3, epochs=1)
    g = transfer.build_graph(cfg, total_steps=10)
    images = mnist.test.images[:16]
    with v1.Session(graph=g.graph) as sess:
        sess.run(g.init)
        fed, logits = sess.run([g.model.images, g.model.logits], {g.input.images: images})
        np.testing.assert_array_equal(fed, images)
        np.testing.assert_array_equal(logits, sess.run(g.model.logits, {g.input.images: images}))
        g.input.start(sess, mnist.test, [np.arange(16)], 16)
        trained_on = sess.run(g.model.images)
    assert trained_on.shape == images.shape and not np.allclose(trained_on, images, atol=1e-3)


def test_labels_per_class_takes_the_first_of_each_class_in_the_seeds_order(mnist):
    order = np.random.default_rng(3).permutation(len(mnist.train.labels))
    chosen = data.splits.per_class(mnist.train, 5, mnist.class_names, order)
    assert np.bincount(chosen.labels).tolist() == [5] * 10
    seen, first = np.zeros(10, int), []
    for i in order:  # walk the order, keeping an image while its class has fewer than 5
        if seen[mnist.train.labels[i]] < 5:
            seen[mnist.train.labels[i]] += 1
            first.append(i)
    np.testing.assert_array_equal(chosen.labels, mnist.train.labels[first])
    np.testing.assert_array_equal(chosen.images, mnist.train.images[first])
    with pytest.raises(UserError, match=r"--labels_per_class=26: class 'a' has only 25 training images"):
        data.splits.per_class(data.Split(chosen.images, chosen.labels % 2), 26, ("a", "b"))


@pytest.fixture(scope="module")
def semi_run(tmp_path_factory, mnist):
    """A semi-supervised run from an autoencoder checkpoint: 3 labels of each digit, 1,024 unlabelled training
    images in batches of 128 for 2 epochs (16 steps), and its variables right after the restore."""
    root = tmp_path_factory.mktemp("semi")
    checkpoint = save_autoencoder_checkpoint(root / "cae", latent_size=12)
    small = mnist._replace(train=mnist.train._replace(images=mnist.train.images[:1024],
                                                      labels=mnist.train.labels[:1024]))
    common = dict(checkpoint_path=checkpoint, semi_supervised=True, labels_per_class=3, batch_size=16,
                  unlabeled_batch_size=128, fixmatch_threshold=0.2, unlabeled_ramp_up=0.25, summary_every_steps=1,
                  seed=2)
    cfg = TransferConfig(train_dir=str(root / "run"), epochs=2, **common)
    g = transfer.build_graph(cfg, total_steps=16, latent_size=12)
    with v1.Session(graph=g.graph) as sess:  # the variables right after the selective restore
        transfer.initialize(sess, g, cfg.settled())
        variables = g.graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)
        restored = {v.op.name: value for v, value in zip(variables, sess.run(variables))}
    metrics = transfer.transfer(cfg, small)
    return checkpoint, root, restored, metrics


def test_semi_supervised_restores_the_decoder_bit_for_bit_and_trains_it(semi_run):
    checkpoint, root, restored, metrics = semi_run
    autoencoder = read_all(checkpoint)
    trained = read_all(tf.train.latest_checkpoint(str(root / "run")))
    assert metrics["steps"] == 16 and metrics["num_labels"] == 30
    for name in ["conv1/kernel", "conv2/kernel", "latent_var/kernel", "z_matrix/kernel", "dconv1/kernel",
                 "dconv2/kernel", "dconv2/bias"]:
        np.testing.assert_array_equal(restored[name], autoencoder[name])  # restored bit for bit
        assert not np.array_equal(trained[name], autoencoder[name]), name  # and then trained
    for name in models.CLASSIFIER_VARIABLES:  # the teacher starts as the student it averages
        np.testing.assert_array_equal(restored[f"{name}/ExponentialMovingAverage"], restored[name])
        assert not np.array_equal(trained[f"{name}/ExponentialMovingAverage"], trained[name])


def test_semi_supervised_terms_change_and_go_to_tensorboard(semi_run):
    _, root, _, _ = semi_run
    for tag in ["train/supervised", "train/reconstruction", "train/pseudo_label", "train/pseudo_label_share",
                "train/ramp", "train/loss"]:
        values = [value for _, value in scalars(root / "run", tag)]
        assert len(values) == 16 and len(set(values)) > 1, (tag, values)
    ramp = [value for _, value in scalars(root / "run", "train/ramp")]
    assert ramp == sorted(ramp) and ramp[0] < 0.05 and ramp[-1] == 1.0  # 4 ramp-up steps, then full weight
    assert max(value for _, value in scalars(root / "run", "train/pseudo_label_share")) > 0


def teacher_predictions(checkpoint, images):
    """The classes of the checkpoint's teacher (its moving averages), read with a plain Saver."""
    with tf.Graph().as_default() as graph:
        t = models.classifier(models.image_input())
        saver = v1.train.Saver({f"{v.op.name}/ExponentialMovingAverage": v for v in v1.trainable_variables()})
        with v1.Session(graph=graph) as sess:
            saver.restore(sess, checkpoint)
            return sess.run(t.probabilities, {t.images: images})


def test_the_exported_model_is_the_teacher_that_was_tested(semi_run, mnist, tmp_path):
    _, root, _, metrics = semi_run
    latest = tf.train.latest_checkpoint(str(root / "run"))
    export.export(ExportConfig(checkpoint_path=latest, export_dir=str(tmp_path / "model")))
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    exported = loaded.signatures["serving_default"](images=tf.constant(mnist.test.images))["probabilities"].numpy()
    teacher = teacher_predictions(latest, mnist.test.images)
    np.testing.assert_allclose(exported, teacher, atol=1e-6)
    accuracy = np.mean(teacher.argmax(1) == mnist.test.labels)
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-6)  # what the run tested is what ships
    student, _ = checkpoint_predictions(str(root / "run"), mnist.test.images)
    assert (student != teacher.argmax(1)).any()  # and it is not the student


def cli_args(root, checkpoint):
    return [f"--image_dir={root / 'digits'}", f"--unlabeled_dir={root / 'more'}", f"--checkpoint_path={checkpoint}",
            "--semi_supervised", "--labels_per_class=3", "--batch_size=8", "--unlabeled_batch_size=32",
            "--epochs=4", "--save_every_steps=5", "--summary_every_steps=1", "--random_translate=2",
            "--random_rotate=10", "--fixmatch_threshold=0.3"]


def test_a_killed_semi_supervised_run_resumes_to_the_same_weights(tmp_path, mnist):
    """SIGKILL after the first checkpoint, the same command again: the same final tensors (weights, teacher,
    Adam's slots, global_step) and losses as a run that was never killed; --unlabeled_dir's images are used."""
    write_folder(tmp_path / "digits", mnist, 40, (28, 28), color=False)
    write_folder(tmp_path / "more", mnist, 20, (32, 32), color=True, start=200)  # resized and made gray
    checkpoint = save_autoencoder_checkpoint(tmp_path / "cae")
    reference = run_cli("transfer_classify.py", *cli_args(tmp_path, checkpoint), f"--train_dir={tmp_path / 'ref'}")
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert "--unlabeled_dir: 60 unlabelled images" in reference.stderr
    steps = json.load(open(tmp_path / "ref" / "metrics.json"))["steps"]
    killed = tmp_path / "killed"
    log = tmp_path / "killed.log"
    process = start("transfer_classify.py", [*cli_args(tmp_path, checkpoint), f"--train_dir={killed}"], log, "")
    wait_for(process, log, r"saved .*model\.ckpt-5", train_dir=killed)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    at = step_of(tf.train.latest_checkpoint(str(killed)))
    assert 5 <= at < steps
    final = run_cli("transfer_classify.py", *cli_args(tmp_path, checkpoint), f"--train_dir={killed}")
    assert final.returncode == 0, final.stderr[-3000:]
    assert f"resumed all variables from {killed}/model.ckpt-{at}" in final.stderr
    latest = tf.train.latest_checkpoint(str(killed))
    assert step_of(latest) == steps
    assert_same_tensors(read_all(latest), read_all(tf.train.latest_checkpoint(str(tmp_path / "ref"))))
    # The logged losses, step by step: seen once, with the other core busy, to differ in the last bit of one step's
    # loss while every weight still matched (a value no gradient depends on), so they are held to 1e-6.
    got, want = scalars(killed, "train/loss"), scalars(tmp_path / "ref", "train/loss")
    assert [step for step, _ in got] == [step for step, _ in want] == list(range(1, steps + 1))
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)


@pytest.mark.parametrize("case", ["no_decoder", "empty_unlabeled_dir", "too_many_labels", "out_of_range",
                                  "with_cache", "hue_of_gray"])
def test_bad_semi_supervised_input_is_one_line_and_writes_nothing(tmp_path, mnist, case):
    write_folder(tmp_path / "digits", mnist, 12, (28, 28), color=False)
    (tmp_path / "empty").mkdir()
    classifier_only = tmp_path / "classifier"
    with tf.Graph().as_default(), v1.Session() as sess:
        models.classifier(models.image_input(), 3)
        sess.run(v1.global_variables_initializer())
        classifier_prefix = v1.train.Saver().save(sess, str(classifier_only / "model.ckpt"))
    checkpoint = save_autoencoder_checkpoint(tmp_path / "cae")
    train_dir = tmp_path / "run"
    train_dir.mkdir()
    (train_dir / "notes.txt").write_text("mine")
    before = snapshot(train_dir)
    common = [f"--image_dir={tmp_path / 'digits'}", f"--train_dir={train_dir}", "--semi_supervised"]
    args, expected = {
        "no_decoder": ([f"--checkpoint_path={classifier_prefix}"], ["--checkpoint_path", "latent_var/kernel",
                                                                    "--reconstruction_weight=0"]),
        "empty_unlabeled_dir": ([f"--checkpoint_path={checkpoint}", f"--unlabeled_dir={tmp_path / 'empty'}"],
                                ["no images", "empty"]),
        "too_many_labels": ([f"--checkpoint_path={checkpoint}", "--labels_per_class=50"],
                            ["--labels_per_class=50", "has only"]),
        "out_of_range": ([f"--checkpoint_path={checkpoint}", "--random_crop=150"], ["--random_crop", "< 100"]),
        "with_cache": ([f"--checkpoint_path={checkpoint}", "--cache_features"], ["--cache_features",
                                                                                  "--semi_supervised"]),
        "hue_of_gray": ([f"--checkpoint_path={checkpoint}", "--random_saturation=20"],
                        ["--random_saturation", "colour images", "1 channel"]),
    }[case]
    assert_rejected(run_cli("transfer_classify.py", *common, *args), train_dir, before, *expected)
