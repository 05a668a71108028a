"""`RunDir`: the one place that knows what a training run's folder holds.

A run folder holds:

- `config.json`: the resolved configuration (`TrainConfig.to_dict`; read
  back by `TrainConfig.from_saved`);
- `model.keras`: an `SGMModel` (encoder + class Gaussians of the training set),
  for every method; `classifier.keras` too for the softmax CNN (`ce`);
- `metrics.json`: the paper's protocol on the test split (written last, and
  only when the run completed);
- `figures/*.png`, `logs/` (TensorBoard), `history.csv`,
  `checkpoints/last.keras` (every epoch), `dgms_state.json` (DGMS runs), and
  `backup/` until the metrics are written (Keras `BackupAndRestore`;
  `resume=True` continues from it).

`config.json`, `metrics.json` and the models are written whole or not at all
(`keras_sgm._files`); figures and logs are not, and nothing reads them back.
"""

import contextlib
import dataclasses
import json
import shutil
from pathlib import Path

from keras_sgm._files import save_model, write_json
from keras_sgm.runs.config import TrainConfig

RESUMABLE_CHANGES = (
    "epochs",
    "verbose",
    "resume",
    "overwrite",
    "output",
    "strategy",
    "replicas",
)
"""Settings a resumed run may change; any other difference is refused."""


class RunDir:
    """A training run's folder: its files' paths, its state, and the checks made before training.

    Args:
        path: str or `Path` of the folder (it need not exist yet).

    Examples:
        >>> run = RunDir("runs/example")
        >>> run.metrics_path.name, run.finished
        ('metrics.json', False)
    """

    CONFIG = "config.json"
    MODEL = "model.keras"
    CLASSIFIER = "classifier.keras"
    METRICS = "metrics.json"
    HISTORY = "history.csv"
    DGMS_STATE = "dgms_state.json"
    BACKUP = "backup"
    FIGURES = "figures"
    CHECKPOINTS = "checkpoints"
    LOGS = "logs"
    WORKERS = "workers"

    REPLACED_BY_OVERWRITE = (METRICS, MODEL, CLASSIFIER, HISTORY, DGMS_STATE)
    """The files `overwrite=True` removes (with `figures/`) before training again."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name):
        return self.path / name

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self):
        return self.path / self.CONFIG

    @property
    def model_path(self):
        return self.path / self.MODEL

    @property
    def classifier_path(self):
        return self.path / self.CLASSIFIER

    @property
    def metrics_path(self):
        return self.path / self.METRICS

    @property
    def history_path(self):
        return self.path / self.HISTORY

    @property
    def dgms_state_path(self):
        return self.path / self.DGMS_STATE

    @property
    def backup(self):
        return self.path / self.BACKUP

    @property
    def figures(self):
        return self.path / self.FIGURES

    @property
    def checkpoint_path(self):
        return self.path / self.CHECKPOINTS / "last.keras"

    @property
    def logs(self):
        return self.path / self.LOGS

    def worker(self, kind, index):
        """The folder of another worker of a multi-worker run: `workers/<kind>_<index>`."""
        return RunDir(self.path / self.WORKERS / f"{kind}_{index}")

    # ------------------------------------------------------------------ state
    @property
    def finished(self):
        """Whether the run completed: its `metrics.json` exists."""
        return self.metrics_path.exists()

    def finished_epochs(self):
        """Epochs an interrupted run completed (Keras `BackupAndRestore`'s record), else 0."""
        record = self.backup / "training_metadata.json"
        return int(json.loads(record.read_text()).get("epoch", 0)) if record.is_file() else 0

    def dgms_level(self):
        """The DGMS level an interrupted run reached (its `dgms_state.json`), else 0."""
        state = self.dgms_state_path
        return json.loads(state.read_text())["level"] if state.is_file() else 0

    def read_config(self, **changes):
        """The `TrainConfig` of the run's `config.json`, flat `changes` on top.

        A file written by any earlier run reads as it was meant (`TrainConfig.from_saved`).
        """
        return TrainConfig.from_saved(json.loads(self.config_path.read_text()), **changes)

    def train_config(self, **changes):
        """The run's `TrainConfig` (`changes` on top, never resuming); a named error when the
        folder is not a training run."""
        if not self.config_path.is_file() or not self.model_path.is_file():
            raise ValueError(
                f"{self.path} is not a training run: it lacks config.json or model.keras."
            )
        try:
            return self.read_config(**{"resume": False, **changes})
        except (OSError, ValueError) as error:
            raise ValueError(f"Cannot read {self.config_path}: {error}") from None

    def resumed_config(self, **changes):
        """The config that continues the run in this folder: its saved settings, flat `changes`
        on top, `output` this folder and `resume=True`.

        `prepare` refuses changes beyond `RESUMABLE_CHANGES`.
        """
        if not self.config_path.is_file():
            raise ValueError(f"Nothing to resume in {self.path}: no config.json of an earlier run.")
        return self.read_config(**{**changes, "output": str(self.path), "resume": True})

    def read_metrics(self):
        """The run's `metrics.json` as a dict."""
        return json.loads(self.metrics_path.read_text())

    def changed_settings(self, config, may_differ=RESUMABLE_CHANGES):
        """`"key: saved -> current, ..."` for the settings of `config` that differ from the
        saved run's, leaving out `may_differ`; `""` when none do."""
        saved = self.read_config().resolved().to_dict()
        current = config.resolved().to_dict()
        changed = sorted(
            key for key in current if key not in may_differ and saved.get(key) != current[key]
        )
        return ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)

    # ---------------------------------------------------------------- writing
    def write_config(self, config):
        """Write `config.json`: the config's flat dict (`TrainConfig.to_dict`)."""
        write_json(self.config_path, config.to_dict())

    def write_metrics(self, metrics):
        """Write `metrics.json` (the mark of a finished run), then drop the backup."""
        write_json(self.metrics_path, metrics)
        self.discard_backup()

    def discard_backup(self):
        """Remove `backup/`: nothing is left to resume."""
        shutil.rmtree(self.backup, ignore_errors=True)

    def save_model(self, model, name=MODEL):
        """Save a Keras model as `name` in the folder, never half written."""
        return save_model(model, self.path / name)  # keras_sgm._files.save_model

    @contextlib.contextmanager
    def removed_on_failure(self):
        """Remove the folder if the block fails and the folder did not exist before it."""
        existed = self.path.exists()
        try:
            yield self
        except BaseException:
            if not existed:
                shutil.rmtree(self.path, ignore_errors=True)
            raise

    # --------------------------------------------------------- before training
    def prepare(self, config):
        """Make the folder ready for `config`; returns the config to train it with.

        A folder whose `backup/` records every epoch of `config.epochs` holds a run
        whose training finished but whose evaluation did not (the backup is kept
        until `metrics.json` is written): it is resumed whether or not `--resume` was
        given, so fit runs no epoch and only the evaluation is redone. Nothing
        trained is ever replaced without `overwrite`; a resumed run must keep its
        saved settings (`RESUMABLE_CHANGES` aside).
        """
        out, backup, finished = self.path, self.backup, self.finished
        if finished and backup.is_dir():
            shutil.rmtree(backup)  # left by a run stopped after its metrics were written
        if finished and config.resume:
            raise ValueError(
                f"Nothing to resume in {out}: it holds a finished run (metrics.json); pass "
                "--overwrite (without --resume) to train it again."
            )
        trained = backup.is_dir() and self.finished_epochs() >= config.epochs
        if trained and not config.resume and not config.overwrite:
            print(f"{out}: training finished before its evaluation did; evaluating it again.")
            config = dataclasses.replace(config, resume=True)
        if config.resume:
            if not backup.is_dir() or not self.config_path.is_file():
                raise ValueError(f"Nothing to resume in {out}: no backup/ of an interrupted run.")
            details = self.changed_settings(config)
            if details:
                raise ValueError(
                    f"Resuming {out} with different settings ({details}); a resumed run keeps "
                    "its saved config (only epochs and verbose may change)."
                )
        else:
            if backup.is_dir():
                raise ValueError(
                    f"{out} holds an interrupted run; pass --resume to continue it, or choose "
                    "another --output."
                )
            if finished or self.model_path.exists():
                if not config.overwrite:
                    what = "a finished run" if finished else "a trained model"
                    raise ValueError(f"{out} already holds {what}; pass --overwrite to replace it.")
                for name in self.REPLACED_BY_OVERWRITE:
                    (out / name).unlink(missing_ok=True)
                shutil.rmtree(self.figures, ignore_errors=True)
            # a state left by a run that died after its backup went
            self.dgms_state_path.unlink(missing_ok=True)
        self.figures.mkdir(parents=True, exist_ok=True)
        (out / self.CHECKPOINTS).mkdir(exist_ok=True)
        return config
