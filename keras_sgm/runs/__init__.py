"""Training runs: one owner of "a run", from its settings to its folder of results.

- `config`: `TrainConfig` (every setting; its DGMS group `DGMSConfig`; one flat
  dict form for config.json, config files and flags);
- `datasets`: a config's splits as arrays, and its class names;
- `rundir`: `RunDir`, the one place that knows a run folder's files, resume and
  overwrite checks; every file written atomically;
- `train`: `train(config)`, the models it builds and the batches they train on;
- `dgms`: a run's sub-class splitter and its DGMS report;
- `benchmark`, `dgms_study`, `evaluate`: the studies behind `scripts/`;
- `cli`: the flags every script shares.

Imports point one way: the core (losses, model, data, dgms, evaluation) <- runs
<- hub <- serving.
"""

from keras_sgm.runs.config import (
    DATASETS,
    DEFAULT_EMBEDDING_RADIUS,
    DGMS_LOSSES,
    METHODS,
    DGMSConfig,
    TrainConfig,
    read_settings_file,
)
from keras_sgm.runs.datasets import class_names_of, load_splits, load_test_split
from keras_sgm.runs.rundir import RunDir
from keras_sgm.runs.training import build_models, train, training_data

__all__ = [
    "DATASETS",
    "DEFAULT_EMBEDDING_RADIUS",
    "DGMS_LOSSES",
    "DGMSConfig",
    "METHODS",
    "RunDir",
    "TrainConfig",
    "build_models",
    "class_names_of",
    "load_splits",
    "load_test_split",
    "read_settings_file",
    "train",
    "training_data",
]
