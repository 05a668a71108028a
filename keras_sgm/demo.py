"""Deprecated: moved to `keras_sgm.serving` (keras_sgm 0.2); this alias goes in 0.3."""

from keras_sgm._deprecated import moved

__getattr__ = moved(
    "keras_sgm.demo",
    [
        "keras_sgm.serving.engine",
        "keras_sgm.serving.default_model",
        "keras_sgm.serving.examples",
    ],
)
