"""Deprecated: moved to `keras_sgm.runs.benchmark` (keras_sgm 0.2); this alias goes in 0.3."""

from keras_sgm._deprecated import moved

__getattr__ = moved(
    "keras_sgm.benchmark",
    [
        "keras_sgm.runs.benchmark",
    ],
)
