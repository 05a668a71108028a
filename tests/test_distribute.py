"""SGMModel under tf.distribute.MirroredStrategy on the two logical CPUs set up in conftest."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_sgm
from keras_sgm.losses import sgm_loss
from tests.testing import encoder, toy_data


@functools.cache
def _strategy():
    # One strategy per process: several MirroredStrategy objects in one process
    # can mix up their collective ops' instance keys.
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest should provide two logical CPU devices"
    return tf.distribute.MirroredStrategy(devices)


def _one_step(strategy, cross_replica, x, y, lr=0.5):
    with strategy.scope():
        model = keras_sgm.SGMModel(encoder(seed=1), cross_replica=cross_replica)
        model.compile(optimizer=keras.optimizers.SGD(lr))
    start = [w.copy() for w in model.get_weights()]
    logs = model.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0).history
    return start, model.get_weights(), logs


def _expected_step(start, x, y, halves, lr=0.5):
    """One SGD step by hand: the global-batch loss, or the mean of the replicas' losses."""
    model = encoder(seed=1)
    model.set_weights(start)
    with tf.GradientTape() as tape:
        embeddings = model(x, training=True)
        if halves:
            n = len(y) // 2
            loss = (
                tf.reduce_mean(sgm_loss(y[:n], embeddings[:n]))
                + tf.reduce_mean(sgm_loss(y[n:], embeddings[n:]))
            ) / 2
        else:
            loss = tf.reduce_mean(sgm_loss(y, embeddings))
    grads = tape.gradient(loss, model.trainable_weights)
    return [w - lr * g.numpy() for w, g in zip(start, grads)], float(loss)


@pytest.mark.parametrize("cross_replica", [True, False])
def test_mirrored_step_matches_the_single_device_step(cross_replica):
    x, y = toy_data(n_per_class=8, classes=(0, 1, 2), seed=4, spread=1.5)
    # Replica 0 sees classes {0, 1}, replica 1 sees {1, 2}: the two modes differ.
    order = np.argsort(y, kind="stable")
    x, y = x[order], y[order]
    start, after, logs = _one_step(_strategy(), cross_replica, x, y)
    expected, loss = _expected_step(start, x, y, halves=not cross_replica)
    for got, want in zip(after, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert logs["loss"][0] == pytest.approx(loss, rel=1e-4)


def test_cross_replica_changes_the_gradient():
    x, y = toy_data(n_per_class=8, classes=(0, 1, 2), seed=4, spread=1.5)
    order = np.argsort(y, kind="stable")
    x, y = x[order], y[order]
    _, with_gather, _ = _one_step(_strategy(), True, x, y)
    _, without, _ = _one_step(_strategy(), False, x, y)
    assert max(np.abs(a - b).max() for a, b in zip(with_gather, without)) > 1e-4


def test_mirrored_fit_on_balanced_batches_learns():
    from keras_sgm.data import class_balanced_batches

    x, y = toy_data(n_per_class=40, seed=5)
    strategy = _strategy()
    with strategy.scope():
        model = keras_sgm.SGMModel(encoder(), cross_replica=True)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
    ds = class_balanced_batches(x, y, samples_per_class=8, seed=0)
    history = model.fit(ds, epochs=6, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert history["centroid_accuracy"][-1] >= 0.9


@pytest.mark.parametrize("cross_replica", [True, False])
def test_a_bad_slice_on_one_replica_keeps_every_replica_from_updating(cross_replica):
    x, y = toy_data(n_per_class=8, classes=(0, 1, 2), seed=4)
    x[-1, 0] = np.nan  # only the second replica's half is bad
    with _strategy().scope():
        model = keras_sgm.SGMModel(encoder(seed=1), cross_replica=cross_replica)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    start = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="Non-finite"):
        model.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    for before, after in zip(start, model.get_weights()):
        np.testing.assert_array_equal(before, after)
