"""The settings of a training run: `TrainConfig`, its DGMS group `DGMSConfig`, and their dict form.

A config has one dict form, flat (`TrainConfig.to_dict`, read back by
`TrainConfig.from_dict`): one key per setting, the DGMS group's as
`dgms_<name>` keys. It is what a run's `config.json` holds, what a YAML or
JSON config file holds (`read_settings_file`), and what `scripts/train.py`'s
flags name (`keras_sgm.runs.cli`). `TrainConfig.from_saved` reads a
`config.json` of any earlier run as it was meant.
"""

import dataclasses
import json
import typing
from pathlib import Path

import numpy as np
import yaml

from keras_sgm.backbones import available as available_archs
from keras_sgm.data.names import DATASETS, LOCAL_DATASETS
from keras_sgm.dgms.callback import check_settings
from keras_sgm.distribute.strategy import check_strategy

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

LR_SCHEDULES = ("constant", "cosine")
"""The learning-rate schedules a run can use (`keras_sgm.runs.recipe`)."""

PRECISIONS = (None, "mixed_float16", "mixed_bfloat16")
"""Keras dtype policies a run may train under (None: float32)."""


@dataclasses.dataclass(frozen=True)
class DGMSConfig:
    """DGMS sub-class splitting of a run: the settings of its `keras_sgm.dgms.SubclassSplitter`.

    Every field is the splitter's keyword argument of that name, checked as the
    splitter checks it (`keras_sgm.dgms.callback.check_settings`) when the
    group is made; `kwargs` builds the splitter. In a flat dict, a config file,
    `config.json` and on the command line each field is a `dgms_<name>` key
    (`DGMS_KEYS`; `covariance_type` is `dgms_covariance`), and `dgms_pca_dims`
    0 means None. What each setting does, and what was measured, is in
    docs/dgms.md.

    Attributes:
        levels: int, default 0; the number of splits (0: no DGMS).
        clusters: int >= 2, default 2; the groups each split asks per (sub-)class.
        every: int, default 1; epochs between splits.
        max_subclasses: optional int; the most sub-classes one class may reach.
        representation: str, default `"pixels"`; what is clustered:
            `"pixels"`, `"features"` or `"embedding"`.
        method: str, default `"kmeans"`, or `"em"` (a Gaussian mixture).
        schedule: str, default `"split"` (each sub-class again), or
            `"recluster"` (each class afresh, one more group per level).
        covariance_type: str, default `"spherical"`; the covariances of EM.
        pca_dims: optional int, default 64; the principal components a class
            is clustered in (None: every column).

    Examples:
        >>> DGMSConfig(levels=2, clusters=3).kwargs["clusters"]
        3
        >>> DGMSConfig(clusters=1)
        Traceback (most recent call last):
        ...
        ValueError: dgms_clusters must be an int >= 2; received 1.
    """

    levels: int = 0
    clusters: int = 2
    every: int = 1
    max_subclasses: int | None = None
    representation: str = "pixels"
    method: str = "kmeans"
    schedule: str = "split"
    covariance_type: str = "spherical"
    pca_dims: int | None = 64

    def __post_init__(self):
        check_settings(**self.kwargs, names=DGMS_KEYS)

    @property
    def kwargs(self):
        """The splitter's keyword arguments: `SubclassSplitter(sampler, **dgms.kwargs, ...)`."""
        return dataclasses.asdict(self)

    @property
    def enabled(self):
        """Whether the run splits at all (`levels` > 0)."""
        return self.levels > 0


DGMS_KEYS = {field.name: f"dgms_{field.name}" for field in dataclasses.fields(DGMSConfig)} | {
    "covariance_type": "dgms_covariance"
}
"""`DGMSConfig` field -> its key in a flat dict, a config file and `config.json` (and its flag)."""


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run (`keras_sgm.runs.train`).

    The defaults are a short CPU example on the synthetic faces;
    `configs/paper.yaml` holds the paper's settings. A config is built from
    keyword arguments, a flat dict (`from_dict`), a YAML or JSON file
    (`from_file`) or a run's `config.json` (`from_saved`); `to_dict` gives its
    flat dict. Every flag is in docs/training.md; the studies behind the
    defaults are docs/sgm_on_real_images.md (the embedding's sphere, the DGMS
    losses, calibration) and docs/dgms.md (what DGMS clusters).

    Attributes:
        dataset: str, default `"synthetic_faces"`; a name of `DATASETS`.
        data_dir: optional str; an image folder's root (`DATA_DIR/train/<class>/*`)
            or a named dataset's manual download.
        tfds_dir: optional str; where TFDS keeps prepared data.
        dataset_config: optional str; the TFDS builder config (`"48px_fold3of10"`);
            a `*_probability` one trains on FER+'s vote distributions (`soft_labels`).
        method: str, default `"sgm"`; one of `METHODS`.
        arch: str, default `"fmpnet"`; one of `keras_sgm.backbones.available()`.
        epochs: int, default 3.
        embedding_dim: int, default 64.
        embedding_radius: optional float; the radius of the embedding's sphere, 0
            for none, None for the method's (`DEFAULT_EMBEDDING_RADIUS`, `radius`).
        dropout: float in [0, 1), default 0; of `fmpnet`'s, `cvgg13`'s and `alexnet`'s
            fully connected layers.
        sigma: float, default 1; SGMLoss's and the Gaussians' sigma.
        leave_one_out: bool, default False; SGMLoss's class means leave the sample out.
        margin: float, default 0.2; the triplet loss's margin.
        mining: str, default `"batch_hard"`; the triplet loss's mining.
        samples_per_class: int, default 8; examples of each class in a balanced batch.
        classes_per_batch: optional int; the classes of a batch (None: all).
        image_size: int, default 48; the side of the square input images.
        channels: int, default 1 (gray), or 3 (RGB).
        learning_rate: float, default 1e-4; Adam's.
        weight_decay: float >= 0, default 0; AdamW's decoupled weight decay (0: Adam).
        lr_schedule: str, default `"constant"`; or `"cosine"` (`keras_sgm.runs.recipe`).
        warmup_epochs: int >= 0, default 0; epochs of linear warm-up of the learning rate.
        augment: bool, default False; augment every method's training batches
            (`keras_sgm.data.augmenter`).
        max_train_samples: optional int; train on a random subset this large.
        train_per_class: optional int >= 2; train on at most this many images of each
            class, drawn by the run's seed (`keras_sgm.data.harder`).
        label_noise: float in [0, 1), default 0; the share of training labels moved to
            another class, drawn by the run's seed (validation and test stay clean).
        skip_unreadable: bool, default False; skip an image folder's unreadable files.
        val_fraction: float in [0, 0.5], default 0; the share of each class held out
            for validation (which calibrates the posteriors) when the dataset has none.
        holdout_classes: optional str; comma-separated classes left out of training,
            scored as unknown inputs (`metrics["open_set"]`).
        knn_k: int, default 11; the K of the kNN metrics.
        dgms: `DGMSConfig`; DGMS sub-class splitting (none by default).
        dgms_loss: str, default `"subclass"`; how SGMLoss trains on DGMS sub-classes,
            one of `DGMS_LOSSES`.
        strategy: str, default `"none"`, `"mirrored"` or `"multiworker"`
            (`keras_sgm.distribute`).
        replicas: optional int >= 2; logical CPU devices of `"mirrored"`.
        mixed_precision: optional str; the backbone's Keras dtype policy (`PRECISIONS`).
        seed: int, default 0.
        output: str, default `"runs/train"`; the run's folder (`RunDir`).
        resume: bool, default False; continue the interrupted run in `output`.
        overwrite: bool, default False; replace the run in `output`.
        verbose: int, default 1; Keras' verbosity.

    Examples:
        >>> config = TrainConfig.from_dict({"method": "triplet", "dgms_levels": 1})
        >>> config.dgms.levels, config.radius, config.to_dict()["dgms_levels"]
        (1, 0.0, 1)
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
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    augment: bool = False
    max_train_samples: int | None = None
    train_per_class: int | None = None
    label_noise: float = 0.0
    skip_unreadable: bool = False
    val_fraction: float = 0.0
    holdout_classes: str | None = None
    knn_k: int = 11
    dgms: DGMSConfig = dataclasses.field(default_factory=DGMSConfig)
    dgms_loss: str = "subclass"
    strategy: str = "none"
    replicas: int | None = None
    mixed_precision: str | None = None
    seed: int = 0
    output: str = "runs/train"
    resume: bool = False
    overwrite: bool = False
    verbose: int = 1

    # ------------------------------------------------------------ dict form
    @classmethod
    def from_dict(cls, values):
        """The config of a mapping of settings, typed and validated; unknown keys refused by name.

        `values` is flat, as `to_dict` writes it; a `dgms` entry (a `DGMSConfig`
        or a mapping of its fields, as `dataclasses.asdict` gives) is read
        too, flat `dgms_*` keys on top of it.
        """
        values = _flat(values)
        _check_known_keys(values)
        typed = {key: _typed(key, value) for key, value in values.items()}
        dgms = {field: typed.pop(key) for field, key in DGMS_KEYS.items() if key in typed}
        if dgms.get("pca_dims") == 0:  # what a flag can say for None: every column
            dgms["pca_dims"] = None
        return cls(**typed, dgms=DGMSConfig(**dgms)).validated()

    def to_dict(self):
        """Every setting in a flat dict, in field order, the DGMS group's as `DGMS_KEYS`.

        It is what `config.json` holds; `from_dict` (and `from_saved`) read it back.
        """
        values = {}
        for field in dataclasses.fields(self):
            if field.name == "dgms":
                values.update({DGMS_KEYS[k]: v for k, v in self.dgms.kwargs.items()})
            else:
                values[field.name] = getattr(self, field.name)
        return values

    @classmethod
    def from_saved(cls, values, **changes):
        """The config a run's `config.json` holds (`values`), flat `changes` on top.

        A file of any earlier run reads as it was meant: a setting it lacks takes
        the value it had before the setting was added (`_BEFORE_ADDED`), and an
        `embedding_radius` of null, written before each method had its own
        default, means unnormalised (0).
        """
        saved = {**_BEFORE_ADDED, **_flat(values)}
        if saved.get("embedding_radius") is None:
            saved["embedding_radius"] = 0.0
        return cls.from_dict({**saved, **changes})

    @classmethod
    def from_file(cls, path, **overrides):
        """The config of a YAML or JSON file (`read_settings_file`), `overrides` on top."""
        return cls.from_dict({**read_settings_file(path), **overrides})

    def updated(self, **settings):
        """This config with `settings` (flat keys, as `to_dict` names them) on top, typed and
        validated by `from_dict`."""
        return type(self).from_dict({**self.to_dict(), **settings})

    # ----------------------------------------------------- derived settings
    @property
    def radius(self):
        """The embedding's radius this run uses: `embedding_radius`, else the method's
        default (`DEFAULT_EMBEDDING_RADIUS`); 0 means unnormalised."""
        if self.embedding_radius is not None:
            return float(self.embedding_radius)
        return DEFAULT_EMBEDDING_RADIUS.get(self.method, 0.0)

    @property
    def soft_labels(self):
        """Whether the dataset config holds label distributions (FER+ `*_probability`)."""
        return bool(self.dataset_config) and self.dataset_config.endswith("_probability")

    @property
    def trains_on_soft_labels(self):
        """Whether the model trains on the label distributions (triplet loss needs the majority)."""
        return self.soft_labels and self.method != "triplet"

    @property
    def trains_mixture(self):
        """Whether SGMLoss trains each class as the mixture of its DGMS sub-classes, on
        (sub-class, class) pairs (`dgms_loss` `"mixture"` or `"both"`)."""
        return self.dgms.enabled and self.method == "sgm" and self.dgms_loss in ("mixture", "both")

    @property
    def subclass_weight(self):
        """SGMLoss's `subclass_weight`: 1 where `dgms_loss="both"` adds the sub-class term to the
        mixture, else 0."""
        return 1.0 if self.trains_mixture and self.dgms_loss == "both" else 0.0

    @property
    def trained_dgms_loss(self):
        """The DGMS loss the run trains with: `dgms_loss` for SGMLoss, `"subclass"` for triplet
        loss (every sub-class a class of its own)."""
        return self.dgms_loss if self.trains_mixture else "subclass"

    @property
    def distributed(self):
        """Whether the run trains under a `tf.distribute` strategy."""
        return self.strategy != "none"

    def resolved(self):
        """This config with every default that depends on another setting made explicit
        (what config.json records, so a saved run says what it trained)."""
        return dataclasses.replace(self, embedding_radius=self.radius)

    # ----------------------------------------------------------- validation
    def validated(self):
        """This config, or a `ValueError` naming the first setting it cannot train with."""
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}; choose one of {list(METHODS)}.")
        if self.dataset not in DATASETS:
            raise ValueError(f"Unknown dataset {self.dataset!r}; choose one of {list(DATASETS)}.")
        if self.arch not in available_archs():
            raise ValueError(
                f"Unknown arch {self.arch!r}; choose one of {list(available_archs())}."
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
        if self.train_per_class is not None and self.train_per_class < 2:
            raise ValueError(
                "train_per_class must be >= 2 (metric learning needs two images of a class); "
                f"received {self.train_per_class}."
            )
        if not 0.0 <= self.label_noise < 1.0:
            raise ValueError(
                "label_noise is the share of training labels moved to another class, in [0, 1); "
                f"received {self.label_noise}."
            )
        if self.soft_labels and self.label_noise:
            raise ValueError(
                f"dataset_config {self.dataset_config!r} trains on vote distributions: "
                "label_noise needs the majority config."
            )
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
        if not 0 <= self.weight_decay < np.inf:
            raise ValueError(f"weight_decay must be a number >= 0; received {self.weight_decay}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"Unknown lr_schedule {self.lr_schedule!r}; choose one of {list(LR_SCHEDULES)}."
            )
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(
                f"warmup_epochs must be >= 0 and below epochs ({self.epochs}); "
                f"received {self.warmup_epochs}."
            )
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
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); received {self.dropout}.")
        check_strategy(self.strategy, self.replicas)
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(
                f"Unknown mixed_precision {self.mixed_precision!r}; choose one of "
                f"{[p for p in PRECISIONS if p]} (or leave it unset for float32)."
            )
        self._validate_dgms()
        return self

    def _validate_dgms(self):
        """What the DGMS group (checked when it was made) needs of the rest of the run."""
        if not isinstance(self.dgms, DGMSConfig):
            raise ValueError(f"dgms must be a DGMSConfig; received {self.dgms!r}.")
        if self.dgms_loss not in DGMS_LOSSES:
            raise ValueError(
                f"Unknown dgms_loss {self.dgms_loss!r}; choose one of {list(DGMS_LOSSES)}."
            )
        if not self.dgms.enabled:
            return
        if self.method == "ce":
            raise ValueError("DGMS (dgms_levels > 0) needs a metric loss: method sgm or triplet.")
        if self.soft_labels:
            raise ValueError(
                f"dataset_config {self.dataset_config!r} trains on vote distributions (soft "
                "labels); DGMS splits need hard labels: use the majority config (e.g. '48px') "
                "with dgms_levels > 0."
            )
        every, levels = self.dgms.every, self.dgms.levels
        if every * levels >= self.epochs:
            raise ValueError(
                f"DGMS splits at the end of epochs {every}, {2 * every}, ... ({levels} levels), "
                f"so epochs must exceed {every * levels} for the last level to be trained on; "
                f"received epochs={self.epochs}."
            )


_BEFORE_ADDED = {
    "dgms_pca_dims": None,  # every column
    "augment": False,
    "dgms_schedule": "split",
    "dgms_covariance": "spherical",
    "embedding_radius": 0.0,
    "skip_unreadable": False,
    "dgms_loss": "subclass",
    "val_fraction": 0.0,
    "holdout_classes": None,
}
"""Settings added after runs were first saved -> what a `config.json` without them meant."""


def _settings():
    fields = {}
    for field in dataclasses.fields(TrainConfig):
        if field.name == "dgms":
            fields.update({DGMS_KEYS[f.name]: f for f in dataclasses.fields(DGMSConfig)})
        else:
            fields[field.name] = field
    return fields


SETTINGS = _settings()
"""Every setting's flat key -> its dataclass field (type, default), in `to_dict`'s order."""


def field_type(field):
    """The Python type of a setting's field (`int` for `int | None`)."""
    options = [t for t in typing.get_args(field.type) if t is not type(None)]
    return options[0] if options else field.type


def _check_known_keys(values, where=""):
    """Refuse keys that are not settings (`SETTINGS`), naming them and the known ones."""
    known = sorted(SETTINGS)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}Unknown config keys {unknown}; known keys: {known}.")


def _flat(values):
    """`values` with a `dgms` entry (a `DGMSConfig`, or a mapping of its fields) as flat
    `dgms_*` keys (`DGMS_KEYS`), the flat keys given on top."""
    values = dict(values)
    nested = values.pop("dgms", None)
    if nested is None:
        return values
    if isinstance(nested, DGMSConfig):
        nested = nested.kwargs
    if not isinstance(nested, dict):
        raise ValueError(
            f"Config key 'dgms' needs a mapping of DGMSConfig fields; received {nested!r}."
        )
    return {**{DGMS_KEYS.get(k, f"dgms.{k}"): v for k, v in nested.items()}, **values}


def _typed(key, value):
    """`value` as the type of setting `key` (`"3"` -> 3 for an int); a `ValueError` naming it."""
    kind = field_type(SETTINGS[key])
    if value is None or isinstance(value, kind):
        return value
    if kind is bool or (kind is int and isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"Config key {key!r} needs a {kind.__name__}; received {value!r}.")
    try:
        return kind(value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Config key {key!r} needs a {kind.__name__}; received {value!r}."
        ) from error


def read_settings_file(path):
    """The flat settings of a YAML or JSON config file, keys with '-' or '_', strictly typed.

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
    try:
        values = _flat(values)
    except ValueError as error:
        raise ValueError(f"Config file {path}: {error}") from None
    _check_known_keys(values, where=f"Config file {path}: ")
    for key, value in values.items():
        field = SETTINGS[key]
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
