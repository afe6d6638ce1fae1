import numpy as np
import pytest
import tensorflow as tf

from cae import train

v1 = tf.compat.v1


def recorded_fit(first_step, epochs=3, stop_after=None, num_examples=10, batch_size=4):
    seen = []

    def run_step(indices):
        if stop_after is not None and len(seen) == stop_after:
            raise KeyboardInterrupt
        seen.append(list(indices))
        return 0.0

    try:
        train.fit(run_step, num_examples, batch_size, epochs, first_step, seed=3)
    except KeyboardInterrupt:
        pass
    return seen


def test_each_epoch_visits_every_example_once_last_batch_smaller():
    batches = recorded_fit(0)
    assert len(batches) == 3 * train.steps_per_epoch(10, 4) == 9
    for epoch in range(3):
        indices = sum(batches[epoch * 3:(epoch + 1) * 3], [])
        assert sorted(indices) == list(range(10))
    assert [len(b) for b in batches[:3]] == [4, 4, 2]
    assert batches[:3] != batches[3:6], "epochs must be reshuffled"


def test_resumed_run_sees_the_same_batches_as_an_uninterrupted_one():
    full = recorded_fit(0)
    head = recorded_fit(0, stop_after=4)
    tail = recorded_fit(first_step=4)
    assert head + tail == full


@pytest.mark.parametrize("schedule,expected", [
    ("constant", [0.01] * 6),
    ("cosine", [0.01 * (1 + np.cos(np.pi * s / 100)) / 2 for s in (0, 15, 30, 65)] + [0.0, 0.0]),
    # one_cycle: linear from 0.01/25 up to 0.01 at step 30 (30% of 100), then cosine down to 0 over the other 70
    ("one_cycle", [0.0004, 0.0004 + 0.0096 / 2, 0.01, 0.005, 0.0, 0.0]),
])
def test_learning_rate_schedules(schedule, expected):
    with tf.Graph().as_default() as graph:
        step = v1.placeholder(tf.int64, [])
        rate = train.learning_rate(0.01, schedule, step, total_steps=100)
        with v1.Session(graph=graph) as sess:
            got = [sess.run(rate, {step: s}) for s in (0, 15, 30, 65, 100, 120)]
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_save_cadence_inside_epochs_and_at_epoch_ends():
    saved, epoch_ends = [], []
    train.fit(lambda indices: 0.0, 10, 2, 2, 0, seed=0, on_epoch_end=lambda epoch, step: epoch_ends.append(step),
              save_every_steps=2, save=saved.append)
    assert epoch_ends == [5, 10]
    assert saved == [2, 4, 6, 8]
