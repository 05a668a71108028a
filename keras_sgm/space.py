"""Deprecated: moved to `keras_sgm.serving.space` (keras_sgm 0.2); this alias goes in 0.3."""

from keras_sgm._deprecated import moved

__getattr__ = moved(
    "keras_sgm.space",
    [
        "keras_sgm.serving.space",
    ],
)
