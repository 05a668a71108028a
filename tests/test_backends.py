"""Every Keras backend gives TensorFlow's numbers: the losses, their gradients, SGMModel's train
step, and `.keras` files both ways. Each other backend runs in its own process (Keras picks its
backend once per process); this one runs TensorFlow and compares. JAX is in the dev extra;
the PyTorch half runs where torch is installed and is skipped otherwise.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_sgm
from keras_sgm.losses import sgm_loss, triplet_loss
from tests.testing import BACKEND, value_and_grad

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="the reference side of these comparisons is TensorFlow"
)

ROOT = Path(__file__).resolve().parents[1]

LOSSES = {
    "sgm": lambda y, x: sgm_loss(y, x, 0.7),
    "sgm_loo": lambda y, x: sgm_loss(y, x, 0.7, leave_one_out=True),
    "sgm_mixture": lambda y, x: sgm_loss(y, x, 0.7, classes=y // 2, subclass_weight=0.5),
    "triplet_hard": lambda y, x: triplet_loss(y, x, margin=0.3, mining="batch_hard"),
    "triplet_semi": lambda y, x: triplet_loss(y, x, margin=0.3, mining="semi_hard"),
}

OTHER_SIDE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras, keras_sgm
    from keras import ops
    from keras_sgm.distribute import make_strategy
    from tests.test_backends import LOSSES
    from tests.testing import BACKEND, value_and_grad

    data_path, model_path, out_dir = sys.argv[1:4]
    data = np.load(data_path)
    x, y, images, labels = data["x"], data["y"], data["images"], data["labels"]
    out = {"backend": keras.backend.backend(), "losses": {}}
    for name, f in LOSSES.items():
        mean = lambda e, f=f: ops.mean(f(y, e))
        value, grad = value_and_grad(mean, x)
        compiled = value_and_grad(mean, x, jit=True)[0]  # jax.jit; torch: eager
        out["losses"][name] = {
            "values": np.asarray(ops.convert_to_numpy(f(y, x))).tolist(),
            "mean": value, "grad": grad.tolist(), "compiled": compiled,
        }
    out["class_loss"] = float(keras_sgm.SGMLoss(sigma=0.7)(y, x))

    saved = keras.saving.load_model(model_path)  # saved under TensorFlow
    out["embeddings"] = saved.predict(images, verbose=0).tolist()
    out["proba"] = saved.predict_proba(images).tolist()

    # the train step: same file, same compile (SGD), same full batches as the TensorFlow side
    model = keras.saving.load_model(model_path)
    history = model.fit(images, labels, batch_size=len(labels), epochs=3, shuffle=False, verbose=0)
    out["history"] = history.history
    out["trained_weights"] = [w.tolist() for w in model.get_weights()]
    model.fit_gaussians(images, labels)
    model.save(f"{out_dir}/trained.keras")
    out["trained_embeddings"] = model.predict(images, verbose=0).tolist()
    out["trained_proba"] = model.predict_proba(images).tolist()

    # the non-finite guard inside this backend's (compiled) step
    bad = images.copy()
    bad[3, 1] = np.nan
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    try:
        model.fit(bad, labels, batch_size=len(labels), epochs=1, verbose=0)
    except ValueError as error:
        out["non_finite"] = str(error)
    out["untouched"] = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    refusals = {}
    for part, call in {
        "strategy": lambda: make_strategy("mirrored"),
        "sampler": lambda: keras_sgm.data.ClassBalancedSampler(images, labels, 5, 3).dataset(),
        "export": lambda: keras_sgm.export(
            keras.saving.load_model(model_path), "never_written.onnx", format="onnx"
        ),
    }.items():
        try:
            dataset = call()
        except RuntimeError as error:
            refusals[part] = str(error)
        else:
            if part == "sampler":  # the class-balanced tf.data pipeline feeds this backend's fit
                model = keras.saving.load_model(model_path)
                fed = model.fit(dataset, epochs=2, verbose=0).history
                out["sampler_fit"] = {k: [float(v) for v in vs] for k, vs in fed.items()}
    out["refusals"] = refusals
    print(json.dumps(out))
    """
)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype("float32")
    y = np.repeat([2, 3, 6, 7], 3)  # sub-classes 2k, 2k+1 of class k for the mixture
    images = rng.uniform(size=(30, 6)).astype("float32")
    labels = np.arange(30) % 3
    images[labels == 1] += 0.5
    return x, y, images, labels


def _saved_model(path, images, labels):
    """A small SGMModel with Gaussians and a calibrated sigma, compiled with SGD, saved."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    encoder = keras.Model(inputs, keras.layers.Dense(4)(hidden))
    model = keras_sgm.SGMModel(encoder, sigma=0.8, class_names=["a", "b", "c"])
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    model.fit_gaussians(images, labels)
    model.calibrate(images, labels)
    model.save(path)
    return model


@pytest.fixture(scope="module", params=["jax", "torch"])
def other(request, tmp_path_factory):
    """`(results, tmp)`: what the other backend computed, in its own process."""
    backend = request.param
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    tmp = tmp_path_factory.mktemp(backend)
    x, y, images, labels = _data()
    _saved_model(tmp / "model.keras", images, labels)
    np.savez(tmp / "data.npz", x=x, y=y, images=images, labels=labels)
    script = tmp / "other_side.py"
    script.write_text(OTHER_SIDE)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(script), str(tmp / "data.npz"), str(tmp / "model.keras"), str(tmp)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["backend"] == backend
    return results, tmp


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_values_and_gradients_match_tensorflow(other, name):
    results, _ = other
    x, y, _, _ = _data()
    got = results["losses"][name]
    mean = lambda e: keras.ops.mean(LOSSES[name](y, e))  # noqa: E731
    value, grad = value_and_grad(mean, x)
    np.testing.assert_allclose(
        got["values"], keras.ops.convert_to_numpy(LOSSES[name](y, x)), rtol=1e-5, atol=1e-6
    )
    assert got["mean"] == pytest.approx(value, rel=1e-5, abs=1e-6)
    assert got["compiled"] == pytest.approx(value, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(got["grad"], grad, rtol=1e-4, atol=1e-6)
    assert np.any(np.abs(grad) > 1e-4)  # a gradient worth comparing


def test_a_model_saved_under_tensorflow_classifies_alike(other):
    results, tmp = other
    x, y, images, _ = _data()
    model = keras.saving.load_model(tmp / "model.keras")
    assert results["class_loss"] == pytest.approx(float(keras_sgm.SGMLoss(sigma=0.7)(y, x)))
    np.testing.assert_allclose(results["embeddings"], model.predict(images, verbose=0), atol=1e-6)
    np.testing.assert_allclose(results["proba"], model.predict_proba(images), atol=1e-6)


def test_train_steps_match_tensorflow(other):
    """Three SGD steps from the same file on the same batches: the same losses and weights."""
    results, tmp = other
    _, _, images, labels = _data()
    model = keras.saving.load_model(tmp / "model.keras")
    history = model.fit(images, labels, batch_size=len(labels), epochs=3, shuffle=False, verbose=0)
    assert set(results["history"]) == {"loss", "centroid_accuracy"}
    np.testing.assert_allclose(results["history"]["loss"], history.history["loss"], rtol=1e-4)
    assert results["history"]["centroid_accuracy"] == history.history["centroid_accuracy"]
    assert history.history["loss"][-1] < history.history["loss"][0]
    for got, expected in zip(results["trained_weights"], model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_a_model_trained_and_saved_there_classifies_alike_here(other):
    results, tmp = other
    _, _, images, _ = _data()
    model = keras.saving.load_model(tmp / "trained.keras")
    assert model.class_names == ["a", "b", "c"] and model.posterior_sigma is None  # refitted
    np.testing.assert_allclose(
        results["trained_embeddings"], model.predict(images, verbose=0), atol=1e-6
    )
    np.testing.assert_allclose(results["trained_proba"], model.predict_proba(images), atol=1e-6)


def test_a_non_finite_batch_stops_fit_there_untouched(other):
    results, _ = other
    assert results["non_finite"].startswith("Non-finite loss or gradients at epoch 1, batch 1")
    assert results["untouched"]


def test_tensorflow_only_parts_name_the_backend_and_the_part(other):
    results, _ = other
    refusals, backend = results["refusals"], results["backend"]
    assert refusals["strategy"].startswith(
        "strategy 'mirrored' (tf.distribute) needs KERAS_BACKEND=tensorflow"
    )
    assert f"runs Keras on {backend!r}" in refusals["strategy"]
    assert refusals["export"].startswith("keras_sgm.export (onnx) needs KERAS_BACKEND=tensorflow")
    assert (
        f"runs Keras on {backend!r}" in refusals["export"]
        and "--model model.keras" in refusals["export"]
    )
    # the class-balanced tf.data pipeline feeds this backend's fit (TensorFlow as its input
    # pipeline only), whose losses are finite
    assert "sampler" not in refusals
    assert len(results["sampler_fit"]["loss"]) == 2
    assert np.all(np.isfinite(results["sampler_fit"]["loss"]))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_scripts_train_runs_there_with_dgms_and_its_model_loads_here(backend, tmp_path):
    """`scripts/train.py` on that backend, SGM with one DGMS level: it trains, splits each
    class after epoch 1, evaluates, and the `.keras` file it writes classifies here."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    out = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [sys.executable, str(ROOT / "scripts" / "train.py"), "--epochs", "2"]
    argv += ["--max-train-samples", "160", "--image-size", "32", "--dgms-levels", "1"]
    argv += ["--samples-per-class", "4", "--output", str(out), "--verbose", "0"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["knn_accuracy"] <= 1.0 and 0.0 <= metrics["nmi"] <= 1.0
    assert metrics["epochs_run_in_this_session"] == 2
    level = metrics["dgms"]["levels"][0]
    assert level["epoch"] == 1 and 8 < metrics["dgms"]["subclasses"] <= 16  # classes split
    model = keras.saving.load_model(out / "model.keras")
    assert model.class_names == metrics["class_names"] and len(model.class_names) == 8
    images = np.random.default_rng(0).uniform(size=(4, 32, 32, 1)).astype("float32")
    assert np.all(np.isfinite(model.predict_proba(images)))
