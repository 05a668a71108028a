"""Deprecated: moved to `keras_sgm.runs` (keras_sgm 0.2); this alias goes in 0.3."""

from keras_sgm._deprecated import moved

__getattr__ = moved(
    "keras_sgm.training",
    [
        "keras_sgm.runs.config",
        "keras_sgm.runs.datasets",
        "keras_sgm.runs.rundir",
        "keras_sgm.evaluation.report",
        "keras_sgm.runs.dgms",
        "keras_sgm.runs.training",
        "keras_sgm.runs.benchmark",
        "keras_sgm._files",
    ],
)
