"""The losses and the Gaussian classifier under JAX give TensorFlow's numbers; the TensorFlow-only
parts say so at once. Skipped where jax is not installed."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_sgm
from keras_sgm.losses import sgm_loss, triplet_loss

pytest.importorskip("jax")

LOSSES = {
    "sgm": lambda y, x: sgm_loss(y, x, 0.7),
    "sgm_loo": lambda y, x: sgm_loss(y, x, 0.7, leave_one_out=True),
    "triplet_hard": lambda y, x: triplet_loss(y, x, margin=0.3, mining="batch_hard"),
    "triplet_semi": lambda y, x: triplet_loss(y, x, margin=0.3, mining="semi_hard"),
}

JAX_SIDE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import jax, jax.numpy as jnp, keras, keras_sgm
    from keras_sgm.losses import sgm_loss, triplet_loss
    from keras_sgm.distribute import make_strategy
    assert keras.backend.backend() == "jax"
    data = np.load(sys.argv[1])
    x, y = data["x"], data["y"]
    losses = {
        "sgm": lambda e: sgm_loss(y, e, 0.7),
        "sgm_loo": lambda e: sgm_loss(y, e, 0.7, leave_one_out=True),
        "triplet_hard": lambda e: triplet_loss(y, e, margin=0.3, mining="batch_hard"),
        "triplet_semi": lambda e: triplet_loss(y, e, margin=0.3, mining="semi_hard"),
    }
    out = {}
    for name, f in losses.items():
        mean = lambda e, f=f: jnp.mean(f(e))
        out[name] = {
            "values": np.asarray(f(jnp.asarray(x))).tolist(),
            "grad": np.asarray(jax.grad(mean)(jnp.asarray(x))).tolist(),
            "jit": float(jax.jit(mean)(jnp.asarray(x))),
        }
    out["class_loss"] = float(keras_sgm.SGMLoss(sigma=0.7)(y, x))
    model = keras.saving.load_model(sys.argv[2])
    out["proba"] = np.asarray(model.predict_proba(data["images"])).tolist()
    out["embeddings"] = np.asarray(model.predict(data["images"], verbose=0)).tolist()
    fit = lambda: model.fit(data["images"], data["labels"])
    for call in (fit, lambda: make_strategy("mirrored")):
        try:
            call()
        except RuntimeError as error:
            out.setdefault("refusals", []).append(str(error))
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """Values, gradients and a TF-saved model's outputs computed in a KERAS_BACKEND=jax process."""
    tmp = tmp_path_factory.mktemp("backends")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype("float32")
    y = np.repeat([3, 7, 40213, 8], 3)
    images = rng.uniform(size=(10, 6)).astype("float32")
    labels = np.arange(10) % 2
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    model = keras_sgm.SGMModel(encoder, sigma=0.8, class_names=["a", "b"])
    model.fit_gaussians(images, labels)
    model.calibrate(images, labels)
    model.save(tmp / "model.keras")
    np.savez(tmp / "data.npz", x=x, y=y, images=images, labels=labels)
    script = tmp / "jax_side.py"
    script.write_text(JAX_SIDE)
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp / "data.npz"), str(tmp / "model.keras")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), model, x, y, images


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_values_and_gradients_match_tensorflow(jax_run, name):
    results, _, x, y, _ = jax_run
    embeddings = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        values = LOSSES[name](y, embeddings)
        mean = tf.reduce_mean(values)
    grad = tape.gradient(mean, embeddings).numpy()
    np.testing.assert_allclose(results[name]["values"], values.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[name]["grad"], grad, rtol=1e-4, atol=1e-6)
    assert results[name]["jit"] == pytest.approx(float(mean), rel=1e-5, abs=1e-6)


def test_a_model_saved_under_tensorflow_classifies_alike_under_jax(jax_run):
    results, model, x, y, images = jax_run
    assert results["class_loss"] == pytest.approx(float(keras_sgm.SGMLoss(sigma=0.7)(y, x)))
    np.testing.assert_allclose(results["embeddings"], model.predict(images, verbose=0), atol=1e-6)
    np.testing.assert_allclose(results["proba"], model.predict_proba(images), atol=1e-6)


def test_tensorflow_only_parts_name_the_backend_and_the_part(jax_run):
    fit, strategy = jax_run[0]["refusals"]
    assert fit.startswith("SGMModel.fit (its train step) needs KERAS_BACKEND=tensorflow")
    assert "runs Keras on 'jax'" in fit and "model.compile(loss=keras_sgm.SGMLoss())" in fit
    assert strategy.startswith("strategy 'mirrored' (tf.distribute) needs KERAS_BACKEND=tensorflow")
