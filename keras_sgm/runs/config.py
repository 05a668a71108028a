"""The settings of a training run: `TrainConfig`, the names it accepts, and config files.

`TrainConfig` holds every setting of `keras_sgm.runs.train`; it is built from
keyword arguments, a dict (`from_dict`, unknown keys refused by name) or a YAML
or JSON file (`from_file`, strictly typed). `scripts/train.py` turns each field
into a flag (`keras_sgm.runs.cli`).
"""

import dataclasses
import json
import typing
from pathlib import Path

import numpy as np

from keras_sgm.data.names import DATASETS, LOCAL_DATASETS

METHODS = {
    "sgm": "SGMLoss",
    "triplet": "TripletLoss",
    "ce": "CNN",
}
"""Training methods -> the paper's names for them (its tables' row labels)."""

METHOD_TITLES = {
    "sgm": "SGMLoss (the paper's Gaussian-structure loss)",
    "triplet": "the triplet loss (the paper's baseline)",
    "ce": "softmax cross-entropy (a CNN classifier; the embedding is its penultimate layer)",
}
"""Training methods -> how a model card describes them."""

DGMS_LOSSES = ("mixture", "subclass", "both")
"""How SGMLoss trains on DGMS sub-classes: classes as mixtures of their sub-classes'
Gaussians (compared on class posteriors), every sub-class as a class of its own, or
both terms summed (the mixture keeps classes apart, the sub-class term keeps each
class's modes)."""

DEFAULT_EMBEDDING_RADIUS = {"sgm": 2.0, "triplet": 0.0, "ce": 0.0}
"""Each method's embedding when `embedding_radius` is None: SGMLoss on a sphere of
radius 2 (its fixed sigma needs a fixed scale: see docs/sgm_on_real_images.md),
triplet loss and the softmax CNN unnormalised (0)."""

PRECISIONS = (None, "mixed_float16", "mixed_bfloat16")
"""Keras dtype policies a run may train under (None: float32)."""


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are a short CPU example on synthetic faces.

    The paper's settings are Adam at 1e-4, 30 samples per class, 64-d
    embeddings, 48x48 gray faces (see `configs/`).

    `dropout` (fully connected layers of fmpnet, cvgg13 and alexnet; the
    ResNets have none) defaults to 0: SGMLoss's class means include each
    sample, which rewards sample-specific noise, and with dropout 0.5 the
    example learned nothing (measured on the synthetic faces; see the
    `sgm_loss` docstring and `leave_one_out`).

    `dgms_levels` > 0 turns on DGMS sub-class splitting
    (`keras_sgm.dgms.SubclassSplitter`): every `dgms_every` epochs, up to
    `dgms_levels` times, each (sub-)class is split into `dgms_clusters`
    groups of its `dgms_representation` (default `"pixels"`, which matched
    hidden sub-groups best: SGMLoss collapses them in the embedding; see
    `keras_sgm.runs.dgms_study`), clustered in its top `dgms_pca_dims`
    principal components per class (default 64; 0 or None: every column).
    `dgms_schedule="recluster"` instead re-clusters every original class
    into `dgms_clusters`, then one more, ... groups per level (2, 3, 4 with
    the defaults and 3 levels), as the paper's authors did;
    `dgms_method="em"` with `dgms_covariance="full"` is their
    full-covariance Gaussian mixture (`configs/paper_dgms.yaml` runs all of
    it on the embedding with `dgms_loss="subclass"`).
    `dgms_loss="subclass"` (default) treats every sub-class as a class
    (triplet runs always do): the only loss whose final embedding keeps the
    sub-classes (mnist_pairs, 3 seeds: NMI against the hidden digits 0.67 with
    pixels, 0.80 with features, against 0.006 for `"mixture"`;
    docs/sgm_on_real_images.md). `"mixture"` (SGMLoss only) trains each class
    as the mixture of its sub-classes' Gaussians, which lets the sub-classes
    collapse into one; `"both"` sums the two (SGMLoss's `subclass_weight=1`).
    An epoch keeps the number of batches of the first labelling; with the
    default `classes_per_batch=None` every batch holds every sub-class, so
    batches (and epochs) grow `dgms_clusters` times per level, and every
    batch still holds every class.

    `augment` passes every method's training batches through the same
    random horizontal flips, small shifts, zooms (crops) and rotations
    (`keras_sgm.data.augmenter`, Keras preprocessing layers in `tf.data`).
    Off by default: the paper trains without it.

    `embedding_radius` puts the embedding on a sphere of that radius
    (`keras_sgm.backbones.on_sphere`); 0 leaves it unnormalised; None (default)
    takes the method's default (`DEFAULT_EMBEDDING_RADIUS`): 2 for SGMLoss, whose
    fixed sigma otherwise meets whatever scale the backbone starts at (uniform
    posteriors for FMPNet, saturated ones for ResNet18), 0 for triplet loss and
    the softmax CNN. config.json records the value used.

    A validation split (the dataset's own, or `val_fraction` of each training
    class when it has none) calibrates the model's posteriors
    (`SGMModel.calibrate`, a test-time sigma) and chooses the threshold below
    which an input is "unknown" (`SGMModel.fit_reject_threshold`, 95% of the
    validation inputs kept). `holdout_classes` (comma-separated class names or
    ids) leaves those classes out of training, validation and the closed-set
    test metrics; their test images are the held-out unknowns of
    `metrics["open_set"]`.

    An image folder with unreadable files is refused, every bad file named;
    `skip_unreadable` trains without them (warning with their count and names).

    A `dataset_config` ending in `_probability` (FER+'s vote distributions)
    trains SGMLoss and the softmax CNN on the distributions as soft labels,
    batches balanced on their majority; triplet loss trains on the majority.

    `strategy` trains on several replicas with `tf.distribute`
    (`keras_sgm.distribute`): `"mirrored"` (the GPUs of this machine, or
    `replicas` logical CPU devices) or `"multiworker"` (`TF_CONFIG`), with
    `SGMModel(cross_replica=True)`; `samples_per_class` must divide among the
    replicas. On a multi-worker run the chief writes `output`, and worker `i`
    its own `output/workers/worker_i/`. `mixed_precision` (`"mixed_float16"`
    or `"mixed_bfloat16"`) computes the backbone in 16 bits; the embedding
    head and SGMLoss stay in float32.
    """

    dataset: str = "synthetic_faces"
    data_dir: str | None = None
    tfds_dir: str | None = None
    dataset_config: str | None = None
    method: str = "sgm"
    arch: str = "fmpnet"
    epochs: int = 3
    embedding_dim: int = 64
    embedding_radius: float | None = None
    dropout: float = 0.0
    sigma: float = 1.0
    leave_one_out: bool = False
    margin: float = 0.2
    mining: str = "batch_hard"
    samples_per_class: int = 8
    classes_per_batch: int | None = None
    image_size: int = 48
    channels: int = 1
    learning_rate: float = 1e-4
    augment: bool = False
    max_train_samples: int | None = None
    skip_unreadable: bool = False
    val_fraction: float = 0.0
    holdout_classes: str | None = None
    knn_k: int = 11
    dgms_levels: int = 0
    dgms_clusters: int = 2
    dgms_every: int = 1
    dgms_max_subclasses: int | None = None
    dgms_representation: str = "pixels"
    dgms_method: str = "kmeans"
    dgms_schedule: str = "split"
    dgms_covariance: str = "spherical"
    dgms_pca_dims: int | None = 64
    dgms_loss: str = "subclass"
    strategy: str = "none"
    replicas: int | None = None
    mixed_precision: str | None = None
    seed: int = 0
    output: str = "runs/train"
    resume: bool = False
    overwrite: bool = False
    verbose: int = 1

    @classmethod
    def from_dict(cls, values):
        """Build a config from a mapping, refusing unknown keys by name."""
        fields = {f.name: field_type(f) for f in dataclasses.fields(cls)}
        _check_known_keys(values)
        typed = {}
        for key, value in values.items():
            kind = fields[key]
            if value is None or isinstance(value, kind):
                typed[key] = value
            elif kind is bool or (
                kind is int and isinstance(value, float) and not value.is_integer()
            ):
                raise ValueError(f"Config key {key!r} needs a {kind.__name__}; received {value!r}.")
            else:
                try:
                    typed[key] = kind(value)
                except (TypeError, ValueError) as error:
                    raise ValueError(
                        f"Config key {key!r} needs a {kind.__name__}; received {value!r}."
                    ) from error
        return cls(**typed).validated()

    @classmethod
    def from_file(cls, path, **overrides):
        """The config of a YAML or JSON file (`read_settings_file`), `overrides` on top."""
        return cls.from_dict({**read_settings_file(path), **overrides})

    @classmethod
    def resumed(cls, output, **changes):
        """The config of the interrupted run in `output`, with `changes` on top and `resume=True`.

        Only `epochs`, `verbose` (and `overwrite`) may change; `train` refuses others.
        """
        from keras_sgm.runs.rundir import RunDir

        run = RunDir(output)
        if not run.config_path.is_file():
            raise ValueError(f"Nothing to resume in {output}: no config.json of an earlier run.")
        return cls.from_dict(
            {**run.read_config(), **changes, "output": str(output), "resume": True}
        )

    @property
    def radius(self):
        """The embedding's radius this run uses: `embedding_radius`, else the method's
        default (`DEFAULT_EMBEDDING_RADIUS`); 0 means unnormalised."""
        if self.embedding_radius is not None:
            return float(self.embedding_radius)
        return DEFAULT_EMBEDDING_RADIUS.get(self.method, 0.0)

    def resolved(self):
        """This config with every default that depends on another setting made explicit
        (what config.json records, so a saved run says what it trained)."""
        return dataclasses.replace(self, embedding_radius=self.radius)

    @property
    def soft_labels(self):
        """Whether the dataset config trains on label distributions (FER+ `*_probability`)."""
        return bool(self.dataset_config) and self.dataset_config.endswith("_probability")

    def validated(self):
        from keras_sgm import backbones

        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}; choose one of {list(METHODS)}.")
        if self.dataset not in DATASETS:
            raise ValueError(f"Unknown dataset {self.dataset!r}; choose one of {list(DATASETS)}.")
        if self.arch not in backbones.available():
            raise ValueError(
                f"Unknown arch {self.arch!r}; choose one of {list(backbones.available())}."
            )
        if self.dataset == "image_folder" and not self.data_dir:
            raise ValueError("dataset 'image_folder' needs data_dir (DATA_DIR/train/<class>/*).")
        if self.dataset not in (*LOCAL_DATASETS, "synthetic_faces") and not self.data_dir:
            raise ValueError(
                f"dataset {self.dataset!r} is read from its manual download: pass data_dir "
                "(--data-dir) with the files as distributed (see the builder's instructions)."
            )
        for name in ("epochs", "embedding_dim", "samples_per_class", "image_size", "knn_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; received {getattr(self, name)}.")
        if self.max_train_samples is not None and self.max_train_samples < 2:
            raise ValueError(f"max_train_samples must be >= 2; received {self.max_train_samples}.")
        if self.soft_labels and self.holdout_classes:
            raise ValueError(
                f"dataset_config {self.dataset_config!r} trains on vote distributions, which "
                "keep weight on every class: holdout_classes needs the majority config."
            )
        if not 0.0 <= self.val_fraction <= 0.5:
            raise ValueError(
                f"val_fraction is the share of each training class held out for validation, "
                f"in [0, 0.5]; received {self.val_fraction}."
            )
        for name in ("learning_rate", "sigma"):
            value = getattr(self, name)
            if not 0 < value < np.inf:
                raise ValueError(f"{name} must be a positive number; received {value}.")
        if not 0 <= self.margin < np.inf:
            raise ValueError(f"margin must be a number >= 0; received {self.margin}.")
        if self.embedding_radius is not None and not 0 <= self.embedding_radius < np.inf:
            raise ValueError(
                "embedding_radius must be a number >= 0 (0: unnormalised embeddings; None: "
                f"the method's default); received {self.embedding_radius}."
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (RGB); received {self.channels}.")
        if self.dataset_config and self.dataset in LOCAL_DATASETS:
            raise ValueError(f"dataset_config applies to TFDS datasets, not {self.dataset!r}.")
        if self.soft_labels and self.dgms_levels:
            raise ValueError(
                f"dataset_config {self.dataset_config!r} trains on vote distributions (soft "
                "labels); DGMS splits need hard labels: use the majority config (e.g. '48px') "
                "with dgms_levels > 0."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); received {self.dropout}.")
        from keras_sgm.distribute.strategy import check_strategy

        check_strategy(self.strategy, self.replicas)
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(
                f"Unknown mixed_precision {self.mixed_precision!r}; choose one of "
                f"{[p for p in PRECISIONS if p]} (or leave it unset for float32)."
            )
        self._validate_dgms()
        return self

    def _validate_dgms(self):
        from keras_sgm.dgms import REPRESENTATIONS, SCHEDULES
        from keras_sgm.dgms.split import METHODS as CLUSTERING
        from keras_sgm.dgms.split import check_covariance_type, check_pca_dims

        if self.dgms_levels < 0:
            raise ValueError(f"dgms_levels must be >= 0; received {self.dgms_levels}.")
        if self.dgms_levels == 0:
            return
        if self.method == "ce":
            raise ValueError("DGMS (dgms_levels > 0) needs a metric loss: method sgm or triplet.")
        if self.dgms_clusters < 2 or self.dgms_every < 1:
            raise ValueError(
                f"dgms_clusters must be >= 2 and dgms_every >= 1; received "
                f"{self.dgms_clusters} and {self.dgms_every}."
            )
        if self.dgms_every * self.dgms_levels >= self.epochs:
            raise ValueError(
                f"DGMS splits at the end of epochs {self.dgms_every}, {2 * self.dgms_every}, ... "
                f"({self.dgms_levels} levels), so epochs must exceed "
                f"{self.dgms_every * self.dgms_levels} for the last level to be trained on; "
                f"received epochs={self.epochs}."
            )
        if self.dgms_max_subclasses is not None and self.dgms_max_subclasses < 2:
            raise ValueError(
                f"dgms_max_subclasses must be >= 2; received {self.dgms_max_subclasses}."
            )
        if self.dgms_representation not in REPRESENTATIONS:
            raise ValueError(
                f"Unknown dgms_representation {self.dgms_representation!r}; choose one of "
                f"{list(REPRESENTATIONS)}."
            )
        if self.dgms_loss not in DGMS_LOSSES:
            raise ValueError(
                f"Unknown dgms_loss {self.dgms_loss!r}; choose one of {list(DGMS_LOSSES)}."
            )
        if self.dgms_pca_dims != 0:  # 0: every column, as None (a value the flag can take)
            check_pca_dims(self.dgms_pca_dims, "dgms_pca_dims (or 0: every column)")
        if self.dgms_method not in CLUSTERING:
            raise ValueError(
                f"Unknown dgms_method {self.dgms_method!r}; choose one of {list(CLUSTERING)}."
            )
        if self.dgms_schedule not in SCHEDULES:
            raise ValueError(
                f"Unknown dgms_schedule {self.dgms_schedule!r}; choose one of {list(SCHEDULES)}."
            )
        check_covariance_type(self.dgms_covariance, "dgms_covariance")


def field_type(field):
    """The Python type of a `TrainConfig` field (`int` for `int | None`)."""
    options = [t for t in typing.get_args(field.type) if t is not type(None)]
    return options[0] if options else field.type


def _check_known_keys(values, where=""):
    """Refuse keys that are not `TrainConfig` fields, naming them and the known ones."""
    known = sorted(f.name for f in dataclasses.fields(TrainConfig))
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}Unknown config keys {unknown}; known keys: {known}.")


def read_settings_file(path):
    """The settings of a YAML or JSON config file, keys with '-' or '_', strictly typed.

    A file says what it means: booleans are `true`/`false` (not `"no"`), numbers
    are numbers, and `null` only where a setting may be unset. Every problem is a
    `ValueError` naming the file (and the key).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"Config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot read config file {path}: {error}") from error
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
            values = {} if values is None else values
        else:
            values = json.loads(text)
    except Exception as error:  # noqa: BLE001 - yaml's and json's errors, reported alike
        detail = " ".join(str(error).split())
        raise ValueError(f"Config file {path} is not valid YAML/JSON: {detail}") from error
    if not isinstance(values, dict):
        raise ValueError(
            f"Config file {path} must hold a mapping of settings (key: value), not a "
            f"{type(values).__name__}."
        )
    values = {str(key).replace("-", "_"): value for key, value in values.items()}
    _check_known_keys(values, where=f"Config file {path}: ")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in values.items():
        field = fields[key]
        kind = field_type(field)
        optional = type(None) in typing.get_args(field.type)
        if value is None:
            ok = optional
        elif kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            wanted = {bool: "true or false", int: "an integer", float: "a number"}
            need = wanted.get(kind, f"a {kind.__name__}") + (" or null" if optional else "")
            raise ValueError(f"Config file {path}: {key!r} must be {need}; received {value!r}.")
    return values
