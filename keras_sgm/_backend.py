"""Which parts of keras_sgm need which Keras backend, said at once and by name.

The losses, the metric and `SGMModel` (its train and test steps, one per
backend in `keras_sgm.steps`; `fit_gaussians`, `predict_proba`, `calibrate`,
saving and loading) run on TensorFlow, JAX and PyTorch. `tf.distribute`
strategies and the TFDS builders are TensorFlow's: under another backend they
fail here, before anything runs, instead of deep inside a traced function.
"""

import sys

import keras

TRAINING_BACKENDS = ("tensorflow", "jax", "torch")
"""The Keras backends `SGMModel.fit` and `evaluate` run on."""


def require_tensorflow(part):
    """Raise a `RuntimeError` naming `part` and the backend unless Keras runs on TensorFlow."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{part} needs KERAS_BACKEND=tensorflow; this process runs Keras on {backend!r}. "
            "On JAX and PyTorch, keras_sgm trains on one device: SGMModel.fit, "
            "model.compile(loss=keras_sgm.SGMLoss()) and the class-balanced sampler's "
            "tf.data pipeline all work there; use strategy 'none'."
        )


def require_training_backend(part):
    """Raise a `RuntimeError` naming `part` unless Keras can train on this backend."""
    backend = keras.backend.backend()
    if backend not in TRAINING_BACKENDS:
        raise RuntimeError(
            f"{part} needs a backend Keras trains on (KERAS_BACKEND=tensorflow, jax or torch); "
            f"this process runs Keras on {backend!r}, where SGMModel only predicts and "
            "classifies (predict, predict_proba)."
        )


def is_tf_dataset(value):
    """Whether `value` is a `tf.data.Dataset`, without importing TensorFlow to find out."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, tf.data.Dataset)
