"""Evaluate a saved model again, with the paper's protocol, on its run's dataset or another."""

from pathlib import Path

import keras

from keras_sgm._files import write_json
from keras_sgm.evaluation.report import evaluate_model
from keras_sgm.model import SGMModel
from keras_sgm.runs.config import TrainConfig
from keras_sgm.runs.datasets import load_splits
from keras_sgm.runs.rundir import RunDir
from keras_sgm.runs.training import calibrate_on

_NOT_CARRIED = ("output", "resume", "overwrite")
"""Settings of the model's run that say nothing of how to evaluate it."""


def evaluate_saved_model(model_path, output, dataset=None, **settings):
    """Load an `SGMModel`, re-fit its Gaussians on a training split, evaluate it on the test split.

    The posteriors are calibrated again on the dataset's validation split, if it has one
    (`keras_sgm.runs.training.calibrate_on`, `metrics["calibration_fit"]`).

    The data settings are the run's (the `config.json` beside the model), unless
    `dataset` names another dataset, whose settings then start from the defaults.

    Args:
        model_path: a `.keras` file written by `keras_sgm.runs.train`.
        output: folder for `metrics.json` and `figures/`.
        dataset: optional dataset name (default: the run's).
        **settings: `TrainConfig` settings on top (`data_dir`, `tfds_dir`, `seed`,
            `knn_k`); None values are ignored.

    Returns:
        The metrics dict, also written to `output/metrics.json`.

    Raises:
        ValueError: no model file, a file that is not an `SGMModel`, or a bad setting.
    """
    path = Path(model_path)
    if not path.is_file():
        raise ValueError(f"No model file at {path}.")
    model = keras.saving.load_model(path)
    if not isinstance(model, SGMModel):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a keras_sgm SGMModel.")
    height, width, channels = model.encoder.input_shape[1:]
    run = RunDir(path.parent)
    values = run.read_config().to_dict() if run.config_path.is_file() else {}
    for key in _NOT_CARRIED:
        values.pop(key, None)
    if dataset and dataset != values.get("dataset"):
        values = {"dataset": dataset}  # another dataset: none of the run's data settings
    values.update({k: v for k, v in settings.items() if v is not None})
    values.update(image_size=height, channels=channels)
    config = TrainConfig.from_dict(values)
    train, val, test, names = load_splits(config)
    model.fit_gaussians(train[0], train[1])  # clears a sigma fitted to the old Gaussians
    calibration_fit = calibrate_on(model, val)
    out = Path(output)
    metrics = evaluate_model(model, train, test, names, out, seed=config.seed, knn_k=config.knn_k)
    metrics["calibration_fit"] = calibration_fit
    write_json(out / "metrics.json", metrics)
    return metrics
