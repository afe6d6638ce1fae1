"""--encoder_filters: an encoder of N stride-2 convs and its mirrored decoder, named as TF1 tf.layers named them,
carried from the autoencoder into the classifier, exported and predicted at its image size; bad flags and
checkpoints of another encoder refused in one line."""

import os

import numpy as np
import pytest
import tensorflow as tf

from cae import data, export, models, pretrain, restore, transfer
from cae.config import ExportConfig, PretrainConfig, TransferConfig
from cae.errors import UserError

from conftest import run_cli, snapshot, stderr_lines

v1 = tf.compat.v1
FILTERS = "8,16,24"


def shapes_of(build):
    with tf.Graph().as_default():
        build(models.image_input((32, 32, 3)))
        return {v.op.name: v.shape.as_list() for v in v1.trainable_variables()}


def test_three_conv_autoencoder_and_classifier_variables():
    assert shapes_of(lambda x: models.autoencoder(x, 7, image_shape=(32, 32, 3), filters=(8, 16, 24))) == {
        "conv1/kernel": [5, 5, 3, 8], "conv1/bias": [8],
        "conv2/kernel": [5, 5, 8, 16], "conv2/bias": [16],
        "conv3/kernel": [5, 5, 16, 24], "conv3/bias": [24],
        "latent_var/kernel": [4 * 4 * 24, 7], "latent_var/bias": [7],
        "z_matrix/kernel": [7, 4 * 4 * 24], "z_matrix/bias": [4 * 4 * 24],
        # conv2d_transpose kernels are [k, k, out, in]: dconv1 mirrors conv3, dconv3 gives back the 3 channels
        "dconv1/kernel": [5, 5, 16, 24], "dconv1/bias": [16],
        "dconv2/kernel": [5, 5, 8, 16], "dconv2/bias": [8],
        "dconv3/kernel": [5, 5, 3, 8], "dconv3/bias": [3]}
    classifier = shapes_of(lambda x: models.classifier(x, 4, image_shape=(32, 32, 3), filters=(8, 16, 24)))
    assert classifier["fc1/kernel"] == [4 * 4 * 24, 200] and classifier["logits/kernel"] == [200, 4]
    assert models.classifier_geometry(classifier) == ((32, 32, 3), 4, (8, 16, 24))
    with tf.Graph().as_default():
        t = models.autoencoder(models.image_input((32, 32, 3)), 7, image_shape=(32, 32, 3), filters=(8, 16, 24))
        assert [c.shape.as_list()[1:] for c in t.convs] == [[16, 16, 8], [8, 8, 16], [4, 4, 24]]
        assert t.reconstruction.shape.as_list() == [None, 32 * 32 * 3]


@pytest.fixture(scope="module")
def padded(mnist):
    """Real MNIST digits padded to 32x32 (a multiple of 8 for three convs): 6,000 training images."""
    def pad(split, count):
        images = np.pad(split.images[:count].reshape(-1, 28, 28), [(0, 0), (2, 2), (2, 2)]).reshape(count, -1)
        return data.Split(images, split.labels[:count])
    return data.Datasets(pad(mnist.train, 6000), pad(mnist.validation, 500), pad(mnist.test, 500), (32, 32, 1),
                         mnist.class_names)


@pytest.fixture(scope="module")
def deep_runs(tmp_path_factory, padded):
    root = tmp_path_factory.mktemp("deep")
    pretrain.pretrain(PretrainConfig(train_dir=str(root / "cae"), encoder_filters=FILTERS, epochs=3,
                                     projector_images=0), padded)
    metrics = transfer.transfer(TransferConfig(train_dir=str(root / "frozen"), checkpoint_path=str(root / "cae"),
                                               encoder_filters=FILTERS, projector_images=0), padded)
    return root, metrics


def read(checkpoint_dir, names):
    reader = restore.checkpoint_reader(tf.train.latest_checkpoint(str(checkpoint_dir)))
    return {name: reader.get_tensor(name) for name in names}


def test_every_conv_restored_bit_for_bit_and_kept_frozen(deep_runs):
    root, metrics = deep_runs
    convs = [f"conv{i}/{kind}" for i in (1, 2, 3) for kind in ("kernel", "bias")]
    pretrained, frozen = read(root / "cae", convs), read(root / "frozen", convs)
    for name in convs:
        np.testing.assert_array_equal(frozen[name], pretrained[name], err_msg=name)
    # the head trains on what the convs give: far above the 10% of chance (73% measured; the bit-for-bit check
    # above is the restore's real test)
    assert metrics["test_accuracy"] > 0.5


def test_three_conv_classifier_exports_and_predicts_at_its_size(deep_runs, padded, tmp_path):
    root, _ = deep_runs
    export_dir = str(tmp_path / "export" / "1")
    export.export(ExportConfig(checkpoint_path=str(root / "frozen"), export_dir=export_dir))
    images = padded.test.images[:64]
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        signature = export.serving_signatures((32, 32, 1), 10, (8, 16, 24))[export.DEFAULT_SIGNATURE]
        export.restore_classifier(sess, tf.train.latest_checkpoint(str(root / "frozen")))
        expected = sess.run(signature["outputs"]["probabilities"],
                            {signature["inputs"]["images"]: images.reshape(-1, 32, 32)})
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        meta = v1.saved_model.load(sess, ["serve"], export_dir)
        inputs = meta.signature_def["serving_default"].inputs["images"]
        outputs = meta.signature_def["serving_default"].outputs["probabilities"]
        assert [d.size for d in inputs.tensor_shape.dim] == [-1, 32, 32]
        got = sess.run(outputs.name, {inputs.name: images.reshape(-1, 32, 32)})
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_a_checkpoint_of_another_encoder_is_one_line_and_nothing_written(deep_runs, padded, tmp_path):
    root, _ = deep_runs
    train_dir = tmp_path / "run"
    with pytest.raises(UserError, match=r"holds an encoder of 3 convs of widths 8,16,24; --encoder_filters=16,32 "
                                        r"builds 2 \("):
        transfer.transfer(TransferConfig(train_dir=str(train_dir), checkpoint_path=str(root / "cae")), padded)
    with pytest.raises(UserError, match=r"conv1/kernel has shape \[5, 5, 1, 8\] in the checkpoint, "
                                        r"\[5, 5, 1, 16\] in the model"):
        transfer.transfer(TransferConfig(train_dir=str(train_dir), checkpoint_path=str(root / "cae"),
                                         encoder_filters="16,32,64"), padded)
    with pytest.raises(UserError, match="3 stride-2 convs need an image side that is a multiple of 8, the images "
                                        "are 28x28"):
        transfer.transfer(TransferConfig(train_dir=str(train_dir), encoder_filters="16,32,64"),
                          padded._replace(image_shape=(28, 28, 1)))
    assert snapshot(train_dir) == {}


@pytest.mark.parametrize("value", ["", "16,0", "16,x"])
def test_bad_encoder_filters_flag(value, tmp_path):
    result = run_cli("pretrain_cae.py", f"--encoder_filters={value}", f"--train_dir={tmp_path / 'cae'}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert stderr_lines(result)[-1].startswith(f"error: flag --encoder_filters={value}: expected comma-separated "
                                               f"positive integers")
    assert not os.path.exists(tmp_path / "cae")


def test_no_dense_bottleneck_decodes_from_the_last_conv_and_semi_supervised_runs_restore_it(tmp_path):
    """--latent_size=0: no latent_var or z_matrix; the deconvs start from convN's map, so the reconstruction can
    keep small details; a semi-supervised run restores exactly those deconvs."""
    shapes = shapes_of(lambda x: models.autoencoder(x, 0, image_shape=(32, 32, 3), filters=(8, 16, 24)))
    assert sorted(shapes) == sorted(f"{scope}/{kind}" for scope in ("conv1", "conv2", "conv3", "dconv1", "dconv2",
                                                                    "dconv3") for kind in ("kernel", "bias"))
    assert shapes["dconv1/kernel"] == [5, 5, 16, 24]  # straight from conv3's [4, 4, 24] map
    with tf.Graph().as_default() as graph:
        models.autoencoder(models.image_input((32, 32, 1)), 0, image_shape=(32, 32, 1), filters=(8, 16, 24))
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            checkpoint = v1.train.Saver().save(sess, str(tmp_path / "model.ckpt"))
    cfg = TransferConfig(checkpoint_path=checkpoint, semi_supervised=True, encoder_filters=FILTERS)
    assert transfer.decoder_latent_size(cfg) == 0
    assert transfer.restore_scopes(cfg, 0) == "conv1,conv2,conv3,dconv1,dconv2,dconv3"
    assert transfer.restore_scopes(cfg, 20) == "conv1,conv2,conv3,latent_var,z_matrix,dconv1,dconv2,dconv3"
