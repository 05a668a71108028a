"""SGMModel under tf.distribute.MirroredStrategy on the two logical CPUs set up in conftest."""

import functools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

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


# ------------------------------------------------- strategies of training runs
MULTIWORKER_FIT = """
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras, numpy as np, tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
x = np.ones((64, 4), "float32")
model.fit(tf.data.Dataset.from_tensor_slices((x, x[:, :2])).batch(16), epochs=1, verbose=0)
print("fit finished")
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.xfail(strict=True, reason="Keras 3 Model.fit under MultiWorkerMirroredStrategy")
def test_keras_fit_under_multiworker_is_broken_upstream(tmp_path):
    """Why keras_sgm refuses strategy 'multiworker': plain Keras fails on two local workers.

    Strict: the day this passes, lift the refusal in keras_sgm.distribute.make_strategy.
    """
    script = tmp_path / "fit.py"
    script.write_text(MULTIWORKER_FIT)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "CUDA_VISIBLE_DEVICES": "-1"}
        processes.append(
            subprocess.Popen(
                [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True
            )
        )
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=180)[0])
        except subprocess.TimeoutExpired:
            process.kill()
            outputs.append(process.communicate()[0])
    assert all("fit finished" in out for out in outputs), outputs


def test_make_strategy_refuses_what_it_cannot_run(monkeypatch):
    from keras_sgm import distribute

    assert distribute.make_strategy("none") is None
    with pytest.raises(ValueError, match="Unknown strategy 'horovod'"):
        distribute.make_strategy("horovod")
    with pytest.raises(ValueError, match="needs strategy 'mirrored' and a value >= 2"):
        distribute.make_strategy("none", replicas=2)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="reads the cluster from the TF_CONFIG"):
        distribute.make_strategy("multiworker")
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}}
    monkeypatch.setenv("TF_CONFIG", json.dumps({**cluster, "task": {"index": 1}}))
    with pytest.raises(ValueError, match="test_keras_fit_under_multiworker_is_broken_upstream"):
        distribute.make_strategy("multiworker")
    assert distribute.task() == ("worker", 1) and not distribute.is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({**cluster, "task": {"type": "worker"}}))
    assert distribute.is_chief()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.task()
    with pytest.raises(ValueError, match="TF_CONFIG must be a JSON object"):
        monkeypatch.setenv("TF_CONFIG", "[1]")
        distribute.make_strategy("multiworker")
    with pytest.raises(ValueError, match="does not divide among 4 replicas"):
        distribute.check_balanced_slices(6, 4)
    distribute.check_balanced_slices(8, 4)


def test_train_script_on_two_mirrored_cpu_replicas(tmp_path):
    """scripts/train.py --strategy mirrored --replicas 2, in a fresh process."""
    out = tmp_path / "run"
    script = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
    args = [sys.executable, str(script), "--dataset", "digits", "--image-size", "32"]
    args += ["--epochs", "2", "--samples-per-class", "4", "--verbose", "0"]
    args += ["--strategy", "mirrored", "--replicas", "2"]
    bad = subprocess.run(
        [*args, "--output", str(tmp_path / "bad"), "--samples-per-class", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "does not divide among 2 replicas" in bad.stderr
    done = subprocess.run(
        [*args, "--output", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["replicas"] == 2
    assert metrics["knn_accuracy"] > 0.8  # 10 digits: chance is 0.1
    model = keras.saving.load_model(out / "model.keras")
    assert model.cross_replica and len(model.gaussian_ids) == 10


def test_a_stray_tf_config_does_not_move_a_single_machine_run(tmp_path, monkeypatch):
    from keras_sgm.training import TrainConfig, train

    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"index": 1}}))
    with pytest.raises(ValueError, match="Unknown strategy 'ring'"):
        TrainConfig.from_dict({"strategy": "ring"})
    with pytest.raises(ValueError, match="needs strategy 'mirrored'"):
        TrainConfig.from_dict({"replicas": 2})
    out = tmp_path / "run"
    metrics = train(
        {
            "dataset": "digits",
            "image_size": 32,
            "epochs": 1,
            "max_train_samples": 100,
            "samples_per_class": 4,
            "output": str(out),
            "verbose": 0,
        }
    )
    assert metrics["replicas"] == 1 and (out / "metrics.json").is_file()
    assert not (out / "workers").exists()
