"""The tf.data input pipeline: same numbers as feed_dict, every example once per epoch, placeholders still feedable."""

import numpy as np
import pytest
import tensorflow as tf

from cae import data, pipeline, train
from cae.config import PretrainConfig, TransferConfig
from cae.pretrain import build_graph as build_autoencoder
from cae.transfer import build_graph as build_classifier

v1 = tf.compat.v1


def numbered_split(num_examples):
    """Image i is filled with the value i and labelled i % 10, so a batch says which examples it holds."""
    images = np.repeat(np.arange(num_examples, dtype=np.float32)[:, None], data.NUM_PIXELS, axis=1)
    return data.Split(images, np.arange(num_examples, dtype=np.int64) % 10)


def test_tf_data_and_feed_dict_give_the_same_loss(tmp_path, mnist):
    """Same weights, same batch: the loss through the iterator equals the loss through a feed_dict, bit for bit."""
    batch = np.array([7, 3, 5000, 42, 9, 1234, 0, 77])
    for build, tensors in ((build_autoencoder, ["loss"]), (build_classifier, ["loss", "accuracy"])):
        cfg = (PretrainConfig if build is build_autoencoder else TransferConfig)(train_dir=str(tmp_path))
        g = build(cfg, total_steps=100)
        fetches = [g.metrics[name] for name in tensors]
        with v1.Session(graph=g.graph) as sess:
            sess.run(g.init)
            feed = pipeline.Feed(g.model.images, g.input.labels).feed(mnist.train, batch)
            assert len(feed) == len(tensors)  # images, and labels where the graph has them
            fed = sess.run(fetches, feed)  # before the iterator ever starts: a feed needs no pipeline
            g.input.start(sess, mnist.train, [batch], len(batch))
            from_pipeline = sess.run(fetches)
        assert fed == from_pipeline, (build.__module__, fed, from_pipeline)
        assert all(np.isfinite(fed))


def test_one_epoch_visits_every_example_exactly_once():
    """10 examples in batches of 4 (the last batch holds 2), two epochs, each a fresh permutation."""
    split = numbered_split(10)
    with tf.Graph().as_default() as graph:
        p = pipeline.build(data.NUM_PIXELS, with_labels=True)
    seen = []
    with v1.Session(graph=graph) as sess:
        def run_step(indices):
            images, labels = sess.run([p.images, p.labels])
            ids = images[:, 0].astype(np.int64)
            np.testing.assert_array_equal(images, images[:, :1].repeat(data.NUM_PIXELS, axis=1))
            np.testing.assert_array_equal(labels, ids % 10)  # labels travel with their images
            np.testing.assert_array_equal(ids, indices)  # exactly the batch fit meant
            seen.append(ids)
            return 0.0

        starts = []
        last = train.fit(run_step, 10, 4, 2, 0, seed=3, start_epochs=lambda orders, step: starts.append(len(orders))
                         or p.start(sess, split, orders, 4))
    assert starts == [2]  # one start of the iterator holds both epochs of a small set
    assert last == 6 and [len(ids) for ids in seen] == [4, 4, 2] * 2  # no batch crosses an epoch's end
    for epoch in range(2):
        visited = np.concatenate(seen[3 * epoch:3 * epoch + 3])
        np.testing.assert_array_equal(np.sort(visited), np.arange(10))
        np.testing.assert_array_equal(visited, train.epoch_order(10, epoch, 3))
    assert not np.array_equal(np.concatenate(seen[:3]), np.concatenate(seen[3:]))


def test_resumed_run_sees_the_batches_an_uninterrupted_one_would():
    split = numbered_split(10)
    with tf.Graph().as_default() as graph:
        p = pipeline.build(data.NUM_PIXELS, with_labels=False)

    def batches(first_step):
        seen = []
        with v1.Session(graph=graph) as sess:
            train.fit(lambda _: seen.append(sess.run(p.images)[:, 0]) or 0.0, 10, 4, 2, first_step, seed=3,
                      start_epochs=lambda orders, step: p.start(sess, split, orders, 4))
        return seen

    whole, resumed = batches(0), batches(4)  # resumed in the middle of the second epoch
    assert len(resumed) == 2
    for a, b in zip(whole[4:], resumed):
        np.testing.assert_array_equal(a, b)


def test_a_large_set_streams_an_epoch_per_start(monkeypatch):
    """Where STREAM_EXAMPLES holds one epoch only, the iterator restarts at each epoch, with the same batches."""
    monkeypatch.setattr(train, "STREAM_EXAMPLES", 15)
    split = numbered_split(10)
    with tf.Graph().as_default() as graph:
        p = pipeline.build(data.NUM_PIXELS, with_labels=False)
    seen, starts = [], []
    with v1.Session(graph=graph) as sess:
        train.fit(lambda _: seen.append(sess.run(p.images)[:, 0]) or 0.0, 10, 4, 3, 0, seed=3,
                  start_epochs=lambda orders, step: starts.append(len(orders)) or p.start(sess, split, orders, 4))
    assert starts == [1, 1, 1]
    np.testing.assert_array_equal(np.concatenate(seen), np.concatenate([train.epoch_order(10, e, 3)
                                                                        for e in range(3)]))


def test_evaluation_feeds_the_graph_and_leaves_the_training_stream_in_place(tmp_path, mnist):
    """Evaluating through the pipeline in the middle of an epoch gives the feed_dict's numbers, and the next
    training batch is still the one the stream was at."""
    split = data.Split(mnist.validation.images[:1100], mnist.validation.labels[:1100])
    g = build_classifier(TransferConfig(train_dir=str(tmp_path)), total_steps=100)
    fed_batches = pipeline.Feed(g.model.images, g.input.labels)
    order = np.arange(20)[::-1]
    with v1.Session(graph=g.graph) as sess:
        sess.run(g.init)
        g.input.start(sess, mnist.train, [order], 8)
        first = sess.run(g.input.labels)
        fed = train.evaluate(sess, g.metrics, fed_batches, split, batch_size=400)
        piped = train.evaluate(sess, g.metrics, g.input, split, batch_size=400)
        fed_predictions = train.predict(sess, g.model.predictions, fed_batches, split, batch_size=400)
        piped_predictions = train.predict(sess, g.model.predictions, g.input, split, batch_size=400)
        second, third = sess.run(g.input.labels), sess.run(g.input.labels)
        with pytest.raises(tf.errors.OutOfRangeError):  # 8 + 8 + 4: the stream is used up
            sess.run(g.input.labels)
    assert fed == piped
    assert fed_predictions.shape == (1100,)
    np.testing.assert_array_equal(fed_predictions, piped_predictions)
    for batch, indices in zip((first, second, third), (order[:8], order[8:16], order[16:])):
        np.testing.assert_array_equal(batch, mnist.train.labels[indices])


def test_batch_rows_cut_each_order_on_its_own():
    rows = pipeline.batch_rows([np.array([5, 6, 7]), np.array([], np.int64), np.array([1, 2, 3, 4, 0])], 2)
    np.testing.assert_array_equal(rows, [[5, 6], [7, -1], [1, 2], [3, 4], [0, -1]])


def test_pixels_on_disk_give_the_batches_of_the_same_images_in_memory(tmp_path, mnist):
    """MNIST's pixels written to a RowFile (as an image folder's cache holds them) train on exactly the batches,
    bit for bit, of the float32 arrays: the pipeline scales them as data.to_float does, and reads only the batch."""
    pixels = np.rint(mnist.train.images[:3000] * 255).astype(np.uint8)
    np.testing.assert_array_equal(data.to_float(pixels), mnist.train.images[:3000])  # MNIST is k / 255 exactly
    path = tmp_path / "rows.pixels"
    pixels.tofile(path)
    on_disk = data.rows.RowFile(str(path), (28, 28, 1))[np.arange(1000, 3000)]  # a view: nothing read
    in_memory = data.Split(mnist.train.images[1000:3000], mnist.train.labels[1000:3000])
    assert on_disk.shape == (2000, 784) and len(on_disk[::2]) == 1000
    np.testing.assert_array_equal(np.asarray(on_disk[[5, 0]]), pixels[[1005, 1000]])
    np.testing.assert_array_equal(on_disk[:, 300], pixels[1000:, 300])
    cfg = TransferConfig(train_dir=str(tmp_path))
    g = build_classifier(cfg, total_steps=100)
    orders = [train.epoch_order(2000, 0, seed=1)[:320]]
    losses = {}
    with v1.Session(graph=g.graph) as sess:
        sess.run(g.init)  # the same weights for both: the loss is fetched, never trained
        for name, split in (("memory", in_memory), ("disk", data.Split(on_disk, in_memory.labels))):
            g.input.start(sess, split, orders, 64)
            losses[name] = [sess.run([g.model.images, g.metrics["loss"]]) for _ in range(5)]
    for (images, loss), (disk_images, disk_loss) in zip(losses["memory"], losses["disk"]):
        np.testing.assert_array_equal(images, disk_images)
        assert loss == disk_loss
