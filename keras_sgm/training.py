"""End-to-end training runs: config, data, model, fit, evaluation and outputs.

`scripts/train.py` is a command line over `TrainConfig` and `train`;
`keras_sgm.benchmark` calls `train` once per method, backbone and seed.

A run directory holds:

- `config.json`: the resolved configuration;
- `model.keras`: an `SGMModel` (encoder + class Gaussians of the training set),
  for every method; `classifier.keras` too for the softmax CNN (`ce`);
- `metrics.json`: the paper's protocol on the test split (written last, and
  only when the run completed);
- `figures/*.png`, `logs/` (TensorBoard), `history.csv`,
  `checkpoints/last.keras` (every epoch), and `backup/` while a run is
  unfinished (Keras `BackupAndRestore`; `resume=True` continues from it).
"""

import contextlib
import dataclasses
import json
import os
import shutil
import time
import typing
import warnings
from pathlib import Path

import keras
import numpy as np

from keras_sgm.data import digits

METHODS = ("sgm", "triplet", "ce")
DATASETS = (
    "synthetic_faces",
    "ferplus",
    "affectnet",
    "ckplus",
    "jaffe",
    "bu3dfe",
    "image_folder",
    "digits",
    "digit_pairs",
    "mnist",
    "mnist_pairs",
)


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

_DIGIT_DATASETS = {
    "digits": ("digits", False),
    "digit_pairs": ("digits", True),
    "mnist": ("mnist", False),
    "mnist_pairs": ("mnist", True),
}
"""Dataset name -> (`keras_sgm.data.digits` set, merged in pairs)."""

_LOCAL_DATASETS = ("image_folder", *_DIGIT_DATASETS)
"""Datasets read without TFDS."""


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
    `scripts/dgms_study.py`), clustered in its top `dgms_pca_dims`
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
    def resumed(cls, output, **changes):
        """The config of the interrupted run in `output`, with `changes` on top and `resume=True`.

        Only `epochs`, `verbose` (and `overwrite`) may change; `train` refuses others.
        """
        path = Path(output) / "config.json"
        if not path.is_file():
            raise ValueError(f"Nothing to resume in {output}: no config.json of an earlier run.")
        saved = read_saved_config(path.parent)
        return cls.from_dict({**saved, **changes, "output": str(output), "resume": True})

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
        if self.dataset not in (*_LOCAL_DATASETS, "synthetic_faces") and not self.data_dir:
            raise ValueError(
                f"dataset {self.dataset!r} is read from its manual download: pass data_dir "
                "(--data-dir) with the files as distributed (see the builder's instructions)."
            )
        for name in ("epochs", "embedding_dim", "samples_per_class", "image_size", "knn_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; received {getattr(self, name)}.")
        if self.max_train_samples is not None and self.max_train_samples < 2:
            raise ValueError(f"max_train_samples must be >= 2; received {self.max_train_samples}.")
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
        if self.dataset_config and self.dataset in _LOCAL_DATASETS:
            raise ValueError(f"dataset_config applies to TFDS datasets, not {self.dataset!r}.")
        if self.soft_labels and self.dgms_levels:
            raise ValueError(
                f"dataset_config {self.dataset_config!r} trains on vote distributions (soft "
                "labels); DGMS splits need hard labels: use the majority config (e.g. '48px') "
                "with dgms_levels > 0."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); received {self.dropout}.")
        from keras_sgm.distribute import check_strategy

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


DIGIT_PAIR_NAMES = digits.PAIR_NAMES
"""The classes of `digit_pairs` and `mnist_pairs` (`keras_sgm.data.digits.PAIR_NAMES`)."""


def class_names_of(config):
    """The class names a run on `config` trains on, read without loading any image.

    Catalog datasets use FER+'s eight expressions; an image folder the
    sub-folders of `DATA_DIR/train` that hold images.
    """
    if config.dataset in _DIGIT_DATASETS:
        paired = _DIGIT_DATASETS[config.dataset][1]
        return list(digits.PAIR_NAMES if paired else digits.DIGIT_NAMES)
    if config.dataset == "image_folder":
        from keras_sgm.data.image_folder import list_image_folder

        return list(list_image_folder(Path(config.data_dir) / "train"))
    from keras_sgm.data import catalog

    return catalog.class_names(config.dataset)


def load_splits(config, with_extras=False):
    """`(train, val_or_None, test, class_names)`, each split `(images, labels)`.

    With `with_extras=True` a fifth item is added: a dict of the training
    split's other per-example columns (e.g. the synthetic faces' hidden
    `subgroup`), empty for datasets without any.
    """
    extras = {}
    if config.dataset in _DIGIT_DATASETS:
        # The split is fixed (seed 0) whatever the training seed, so that runs with
        # different seeds, and scripts/evaluate.py, all test on the same images.
        # The pair sets hide two known sub-groups per class: 0|1, 2|3, ...
        name, pairs = _DIGIT_DATASETS[config.dataset]
        train, test, names, extras = digits.load(
            name, config.image_size, config.channels, pairs=pairs
        )
        val = None
    elif config.dataset == "image_folder":
        from keras_sgm.data.image_folder import load_image_folder

        root = Path(config.data_dir)
        size, channels, skip = config.image_size, config.channels, config.skip_unreadable
        x, y, names = load_image_folder(
            root / "train", size, channels, min_per_class=2, skip_unreadable=skip
        )
        train = (x, y)
        x, y, _ = load_image_folder(root / "test", size, channels, names, skip_unreadable=skip)
        test = (x, y)
        val = None
        if (root / "val").is_dir():
            x, y, _ = load_image_folder(root / "val", size, channels, names, skip_unreadable=skip)
            val = (x, y)
    else:
        train, val, test, names, extras = _load_named(config)
    if config.max_train_samples is not None and config.max_train_samples < len(train[1]):
        keep = np.random.default_rng(config.seed).permutation(len(train[1]))
        keep = np.sort(keep[: config.max_train_samples])
        train = (train[0][keep], train[1][keep])
        extras = {key: value[keep] for key, value in extras.items()}
    _check_counts(train[1], names)
    if with_extras:
        return train, val, test, names, extras
    return train, val, test, names


def load_test_split(config):
    """`(images, labels, class_names)` of a dataset's test split, without its other splits.

    An image folder needs only `DATA_DIR/test/`, its classes being its
    sub-folders; named datasets read only their prepared `test` split.
    """
    if config.dataset == "image_folder":
        from keras_sgm.data.image_folder import load_image_folder

        return load_image_folder(
            Path(config.data_dir) / "test",
            config.image_size,
            config.channels,
            skip_unreadable=config.skip_unreadable,
        )
    if config.dataset in _LOCAL_DATASETS:
        _, _, test, names = load_splits(config)
        return test[0], test[1], names
    from keras_sgm.data import catalog

    built = _named_builder(config)
    images, labels = _named_split(config, built, "test")[:2]
    return images, labels, catalog.class_names(config.dataset)


def _named_builder(config):
    from keras_sgm.data import catalog

    stored = next((size for size in (48, 64, 96) if size >= config.image_size), 96)
    return catalog.builder(
        config.dataset,
        stored,
        manual_dir=config.data_dir,
        data_dir=config.tfds_dir,
        config=config.dataset_config,
    )


def _named_split(config, built, name):
    """`(images, labels, extras)` of one split, resized and channel-converted to the config's."""
    from keras_sgm.data import catalog

    images, labels, columns = catalog.split_arrays(built, name)
    if built.builder_config.image_size != config.image_size:
        import tensorflow as tf

        size = (config.image_size, config.image_size)
        images = tf.image.resize(images, size, antialias=True).numpy()
    if config.channels == 3:
        images = np.repeat(images, 3, axis=-1)
    return images, labels, columns


def _load_named(config):
    """A TFDS-built dataset, resized and channel-converted to the config's input.

    A `*_probability` dataset config (`TrainConfig.soft_labels`, FER+'s) adds
    the training split's vote distributions to the extras as `"soft_labels"`.
    """
    from keras_sgm.data import catalog

    built = _named_builder(config)
    extras = {}

    def split(name):
        images, labels, columns = _named_split(config, built, name)
        if name == "train":
            extras.update(columns)
        return images, labels

    val = split("validation") if "validation" in built.info.splits else None
    train = split("train")
    if config.soft_labels:
        if "votes" not in extras:
            raise ValueError(
                f"dataset_config {config.dataset_config!r} of {config.dataset!r} holds no vote "
                "distributions to train on; the *_probability configs are FER+'s."
            )
        extras["soft_labels"] = extras["votes"].astype("float32")
    return train, val, split("test"), catalog.class_names(config.dataset), extras


def _check_counts(labels, names):
    counts = np.bincount(labels, minlength=len(names))
    single = [names[c] for c in np.flatnonzero(counts == 1)]
    if single:
        raise ValueError(
            f"Training classes with a single image: {single}; metric learning needs at least "
            "two examples of a class (raise max_train_samples or add images)."
        )
    if np.count_nonzero(counts) < 2:
        raise ValueError("The training split holds fewer than two classes.")


class _EpochTimer(keras.callbacks.Callback):
    """Records the wall-clock seconds of each training epoch in `seconds`."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


# Settings added after runs were first saved: what a config.json without them meant.
_BEFORE_ADDED = {  # dgms_pca_dims None: every column
    "dgms_pca_dims": None,
    "augment": False,
    "dgms_schedule": "split",
    "dgms_covariance": "spherical",
    "embedding_radius": 0.0,
    "skip_unreadable": False,
    "dgms_loss": "subclass",  # before the mixture loss, every sub-class was a class
}

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


def read_saved_config(out):
    """The settings in `out/config.json`, as they were meant when it was written.

    Settings added since read as `_BEFORE_ADDED`; an `embedding_radius` of null,
    written before the methods had their own defaults, meant unnormalised (0).
    """
    saved = {**_BEFORE_ADDED, **json.loads((Path(out) / "config.json").read_text())}
    if saved.get("embedding_radius") is None:
        saved["embedding_radius"] = 0.0
    return saved


def changed_settings(config, out, may_differ=RESUMABLE_CHANGES):
    """`"key: saved -> current, ..."` for the settings of `config` that differ from the run
    saved in `out` (its config.json, settings added since read as they then were), leaving
    out `may_differ`; `""` when none do."""
    saved = read_saved_config(out)
    current = dataclasses.asdict(config.resolved())
    changed = sorted(
        key for key in current if key not in may_differ and saved.get(key) != current[key]
    )
    return ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)


def _check_resume_matches(config, out):
    details = changed_settings(config, out)
    if details:
        raise ValueError(
            f"Resuming {out} with different settings ({details}); a resumed run keeps its "
            "saved config (only epochs and verbose may change)."
        )


def _prepare_output(config):
    """`(out, config)`: the run's folder made ready, and the config to train it with.

    A folder whose `backup/` records every epoch of `config.epochs` holds a run
    whose training finished but whose evaluation did not (the backup is kept
    until `metrics.json` is written): it is resumed whether or not `--resume` was
    given, so fit runs no epoch and only the evaluation is redone. Nothing
    trained is ever replaced without `overwrite`.
    """
    out = Path(config.output)
    backup = out / "backup"
    finished = (out / "metrics.json").exists()
    if finished and backup.is_dir():
        shutil.rmtree(backup)  # left by a run stopped after its metrics were written
    if finished and config.resume:
        raise ValueError(
            f"Nothing to resume in {out}: it holds a finished run (metrics.json); pass "
            "--overwrite (without --resume) to train it again."
        )
    trained = backup.is_dir() and finished_epochs(out) >= config.epochs
    if trained and not config.resume and not config.overwrite:
        print(f"{out}: training finished before its evaluation did; evaluating it again.")
        config = dataclasses.replace(config, resume=True)
    if config.resume:
        if not backup.is_dir() or not (out / "config.json").is_file():
            raise ValueError(f"Nothing to resume in {out}: no backup/ of an interrupted run.")
    else:
        if backup.is_dir():
            raise ValueError(
                f"{out} holds an interrupted run; pass --resume to continue it, or choose "
                "another --output."
            )
        if finished or (out / "model.keras").exists():
            if not config.overwrite:
                what = "a finished run" if finished else "a trained model"
                raise ValueError(f"{out} already holds {what}; pass --overwrite to replace it.")
            for name in (
                "metrics.json",
                "model.keras",
                "classifier.keras",
                "history.csv",
                "dgms_state.json",
            ):
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / "figures", ignore_errors=True)
    if not config.resume:  # a state left by a run that died after its backup went
        (out / "dgms_state.json").unlink(missing_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    return out, config


def build_models(config, input_shape, class_names):
    """`(trained_model, embedding_model)`: the model `fit` trains and the `SGMModel` saved."""
    import keras_sgm
    from keras_sgm import backbones

    options = {"dropout": config.dropout} if config.arch in ("fmpnet", "cvgg13", "alexnet") else {}
    encoder = backbones.get(
        config.arch, input_shape=input_shape, embedding_dim=config.embedding_dim, **options
    )
    if config.radius:
        encoder = backbones.on_sphere(encoder, config.radius)
    embedder = keras_sgm.SGMModel(
        encoder,
        sigma=config.sigma,
        class_names=class_names,
        cross_replica=config.strategy != "none",
    )
    optimizer = keras.optimizers.Adam(config.learning_rate)
    if config.method == "ce":
        logits = keras.layers.Dense(len(class_names), name="classifier", dtype="float32")(
            encoder.output
        )
        classifier = keras_sgm.SoftmaxClassifier(
            encoder.input, logits, name=f"{config.arch}_softmax_cnn"
        )
        if config.soft_labels:  # vote distributions: Barsoum et al.'s "probability" mode
            loss = keras.losses.CategoricalCrossentropy(from_logits=True)
            metrics = ["categorical_accuracy"]
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            metrics = ["accuracy"]
        classifier.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        return classifier, embedder
    if config.method == "sgm":
        loss = keras_sgm.SGMLoss(
            sigma=config.sigma,
            leave_one_out=config.leave_one_out,
            mixture=_mixture(config),
            subclass_weight=1.0 if _mixture(config) and config.dgms_loss == "both" else 0.0,
        )
    else:
        loss = keras_sgm.TripletLoss(margin=config.margin, mining=config.mining)
    embedder.compile(optimizer=optimizer, loss=loss)
    return embedder, embedder


def _mixture(config):
    """Whether the run trains SGMLoss on (sub-class, class) pairs (DGMS mixture)."""
    return (
        bool(config.dgms_levels)
        and config.method == "sgm"
        and config.dgms_loss in ("mixture", "both")
    )


def finished_epochs(out):
    """Epochs an interrupted run in `out` completed (Keras `BackupAndRestore`'s record), else 0."""
    record = Path(out) / "backup" / "training_metadata.json"
    return int(json.loads(record.read_text()).get("epoch", 0)) if record.is_file() else 0


def training_data(config, train, val, start_epoch=0, soft_labels=None):
    """`(train_dataset, val_dataset_or_None, sampler)`: balanced batches, or shuffled ones for `ce`.

    `start_epoch` > 0 (a resumed run) derives a fresh seed, so the resumed
    epochs do not replay the batch order of the run's first epochs. With
    DGMS, epochs keep the length of the first labelling (sub-classes change
    the natural length).

    `soft_labels` (`[n, classes]`, e.g. FER+ vote distributions) are what
    SGMLoss and the softmax CNN train on, batches still balanced on the hard
    labels `train[1]` (the distributions' majority); triplet loss, which
    needs hard labels, trains on `train[1]`. With `config.augment` every
    method's batches pass through the same `keras_sgm.data.augmenter`.
    """
    import tensorflow as tf

    from keras_sgm.data import ClassBalancedSampler

    seed = config.seed
    if start_epoch:
        seed = int(np.random.SeedSequence([config.seed, start_epoch]).generate_state(1)[0])
    targets = None if config.method == "triplet" else soft_labels  # triplet needs hard labels
    sampler = ClassBalancedSampler(
        train[0],
        train[1],
        config.samples_per_class,
        config.classes_per_batch,
        seed=seed,
        targets=targets,
    )
    batch_size = sampler.batch_size
    if config.method == "ce":
        pairs = train if targets is None else (train[0], targets)
        data = (
            tf.data.Dataset.from_tensor_slices(pairs)
            .shuffle(len(train[1]), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
    elif config.dgms_levels:
        data = sampler.dataset(steps=sampler.steps_per_epoch, with_classes=_mixture(config))
    else:
        data = sampler.dataset()
    if config.augment:
        from keras_sgm.data import augment, augmenter

        data = augment(data, augmenter(seed=seed))
    if val is not None and targets is not None:  # validation is labelled by majority
        val = (val[0], np.eye(soft_labels.shape[1], dtype="float32")[val[1]])
    val_data = None if val is None else tf.data.Dataset.from_tensor_slices(val).batch(batch_size)
    return data, val_data, sampler


def train(config, callbacks=()):
    """Run one training job and write its outputs; returns the metrics dict.

    On a multi-worker run (`strategy="multiworker"`) every worker calls
    `train` with the same config; the chief evaluates and writes `output`,
    the others save their model in `output/workers/<task>_<index>/` and
    return `{"worker": ..., "epochs_run_in_this_session": ...}`.

    Args:
        config: a `TrainConfig` (or a dict of its fields).
        callbacks: extra Keras callbacks for `fit`.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    config = config.validated().resolved()
    from keras_sgm import distribute

    strategy = distribute.make_strategy(config.strategy, config.replicas)  # before any TF op
    # TF_CONFIG names the chief of a multi-worker run only; any other run writes its output.
    chief = config.strategy != "multiworker" or distribute.is_chief()
    if not chief:  # another worker of a multi-worker run: its own directory
        kind, index = distribute.task()
        worker_dir = Path(config.output) / "workers" / f"{kind}_{index}"
        config = dataclasses.replace(config, output=str(worker_dir))
    with _precision(config.mixed_precision):
        return _train(config, strategy, chief, callbacks)


@contextlib.contextmanager
def _precision(policy):
    """Train under a Keras dtype policy (None: leave it), restoring the previous one after."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def _removed_on_failure(folder):
    """Remove `folder` if the block fails and the folder did not exist before it."""
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def describe_splits(train, val, test, names):
    """`"3 classes; train 24 images (bars 8, ...); test 12"`: what a run found, printed first."""
    counts = np.bincount(train[1], minlength=len(names))
    per_class = ", ".join(f"{name} {int(n)}" for name, n in zip(names, counts, strict=True))
    text = f"{len(names)} classes; train {len(train[1])} images ({per_class})"
    if val is not None:
        text += f"; val {len(val[1])}"
    return text + f"; test {len(test[1])}"


def _train(config, strategy, chief, callbacks):
    from keras_sgm import distribute

    # A run that fails before it trains leaves no folder it created behind.
    with _removed_on_failure(Path(config.output)):
        out, config = _prepare_output(config)
        if config.resume:
            _check_resume_matches(config, out)
        keras.utils.set_random_seed(config.seed)
        train_split, val, test, names, extras = load_splits(config, with_extras=True)
        if config.verbose and chief:
            print(describe_splits(train_split, val, test, names))
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))

        with strategy.scope() if strategy else contextlib.nullcontext():
            model, embedder = build_models(config, train_split[0].shape[1:], names)
        if strategy is not None and config.method != "ce":
            distribute.check_balanced_slices(
                config.samples_per_class, strategy.num_replicas_in_sync
            )
        start = finished_epochs(out) if config.resume else 0
        if distribute.in_multiworker(strategy):
            distribute.check_same_everywhere(start, strategy, "epochs finished before --resume")
            state = out / "dgms_state.json"
            level = json.loads(state.read_text())["level"] if state.is_file() else 0
            distribute.check_same_everywhere(level, strategy, "DGMS levels reached before --resume")
        data, val_data, sampler = training_data(
            config, train_split, val, start_epoch=start, soft_labels=extras.get("soft_labels")
        )
    timer = _EpochTimer()
    splitter = None
    if config.dgms_levels:
        splitter = _splitter(config, sampler, out, train_split, test, extras.get("subgroup"))
    fit_callbacks = [
        # The splitter saves its state before the backup of the same epoch is written.
        *([splitter] if splitter else []),
        # Kept until metrics.json is written: a run stopped while it evaluates is
        # recognised as trained and only evaluated again.
        keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(out / "checkpoints" / "last.keras")),
        keras.callbacks.TensorBoard(str(out / "logs")),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=config.resume),
        timer,
        *callbacks,
    ]
    history = model.fit(
        data,
        validation_data=val_data,
        epochs=config.epochs,
        verbose=config.verbose,
        shuffle=False,
        callbacks=fit_callbacks,
    )
    if strategy is not None:
        # Inference from here on runs on this process alone, in the order of its inputs.
        embedder = distribute.local_copy(embedder)
        if not chief:
            _save_atomically(embedder, out / "model.keras")
            shutil.rmtree(out / "backup", ignore_errors=True)
            return {"worker": out.name, "epochs_run_in_this_session": len(history.epoch)}

    if splitter:
        embedder.fit_gaussians(train_split[0], splitter.labels, class_map=splitter.class_map)
    else:
        embedder.fit_gaussians(train_split[0], train_split[1])
    if config.method == "ce":
        _save_atomically(model, out / "classifier.keras")
    _save_atomically(embedder, out / "model.keras")
    classifier_scores = {}
    if config.method == "ce":
        # Under a strategy, score an undistributed copy: predict would wait on other workers.
        head = model if strategy is None else keras.saving.load_model(out / "classifier.keras")
        classifier_scores = classifier_metrics(head, test, len(names))
    train_emb = embedder.predict(train_split[0], verbose=0)
    metrics = evaluate_model(
        embedder,
        train_split,
        test,
        names,
        out,
        seed=config.seed,
        knn_k=config.knn_k,
        train_emb=train_emb,
    )
    metrics.update(classifier_scores)
    if "subgroup" in extras:  # classes hiding known groups: does the embedding keep them?
        from keras_sgm import evaluation

        metrics["hidden_group_nmi"] = evaluation.hidden_group_nmi(
            train_emb, train_split[1], extras["subgroup"], seed=config.seed
        )
    metrics["soft_labels"] = config.soft_labels and config.method != "triplet"
    metrics["augment"] = config.augment
    metrics["seed"] = config.seed
    metrics["train_seconds_per_epoch"] = float(np.mean(timer.seconds)) if timer.seconds else None
    metrics["epochs_run_in_this_session"] = len(history.epoch)
    metrics.update(method=config.method, arch=config.arch, dataset=config.dataset)
    metrics["replicas"] = strategy.num_replicas_in_sync if strategy is not None else 1
    if splitter:
        metrics["dgms"] = dgms_outputs(
            train_emb, splitter, train_split, names, out, extras.get("subgroup"), config.seed
        )
        metrics["dgms"]["loss"] = config.dgms_loss if _mixture(config) else "subclass"
    write_json(out / "metrics.json", metrics)
    shutil.rmtree(out / "backup", ignore_errors=True)  # the run is complete
    return metrics


def _save_atomically(model, path):
    """`model.save(path)` through a temporary file: `path` is never half written."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    model.save(tmp)
    os.replace(tmp, path)


def classifier_metrics(classifier, test, num_classes):
    """The softmax CNN's own predictions on `test`, scored as the paper's CNN rows of Table 2.

    Returns `classifier_accuracy`, `classifier_precision`, `classifier_recall`,
    `classifier_f1` (the paper's `2PR / (P + R)`), `classifier_macro_f1` and
    `classifier_confusion_matrix` (rows true, columns predicted, every class).
    """
    from keras_sgm import evaluation

    logits = classifier.predict(test[0], verbose=0)
    predicted = np.argmax(logits, axis=1)
    scores = evaluation.knn_scores(test[1], predicted, classes=np.arange(num_classes))
    keys = ("accuracy", "precision", "recall", "f1", "macro_f1")
    values = {f"classifier_{key}": scores[key] for key in keys}
    values["classifier_confusion_matrix"] = scores["confusion_matrix"].tolist()
    return values


def _splitter(config, sampler, out, train, test, hidden):
    """The DGMS callback of a run, reporting test kNN accuracy (and hidden-group NMI) per level."""
    from keras_sgm import evaluation
    from keras_sgm.dgms import SubclassSplitter

    def report(splitter):
        # The model is the one trained on the previous level's labels.
        train_emb = splitter.model.predict(train[0], verbose=0)
        test_emb = splitter.model.predict(test[0], verbose=0)
        predicted = evaluation.knn_predict(train_emb, train[1], test_emb, k=config.knn_k)
        values = {"knn_accuracy_before_split": float(np.mean(predicted == test[1]))}
        if hidden is not None:
            values["subclass_nmi_vs_hidden"] = evaluation.subclass_nmi(
                train[1], hidden, splitter.labels
            )
        return values

    return SubclassSplitter(
        sampler,
        every=config.dgms_every,
        clusters=config.dgms_clusters,
        levels=config.dgms_levels,
        max_subclasses=config.dgms_max_subclasses,
        representation=config.dgms_representation,
        method=config.dgms_method,
        schedule=config.dgms_schedule,
        covariance_type=config.dgms_covariance,
        pca_dims=config.dgms_pca_dims or None,
        seed=config.seed,
        state_path=out / "dgms_state.json",
        resume=config.resume,
        fit_gaussians=False,  # train() fits them once, after training
        report=report,
        verbose=config.verbose,
    )


def dgms_outputs(embeddings, splitter, train, class_names, out, hidden=None, seed=0):
    """The `metrics.json["dgms"]` summary of a DGMS run, and its figures.

    `embeddings` are the trained model's embeddings of the training images
    `train[0]`, whose labels are `train[1]`.

    Writes `figures/tsne_subclasses.png` (the training embedding coloured by
    sub-class, paper Fig. 7) and `figures/subclass_groups.png` (the Top-16 of
    every sub-class of the class split the most, paper Fig. 8).
    """
    from keras_sgm import evaluation, viz
    from keras_sgm.dgms import groups_of_labels

    class_map = splitter.class_map
    names = {s: f"{class_names[c]}/{s}" for s, c in class_map.items()}
    figures = Path(out) / "figures"
    counts = np.bincount(list(class_map.values()), minlength=len(class_names))
    shown = int(np.argmax(counts))
    rows = np.flatnonzero(train[1] == shown)
    groups = groups_of_labels(embeddings[rows], splitter.labels[rows], 16, class_map)
    failed = _draw_all(
        {
            figures / "tsne_subclasses.png": lambda path: viz.plot_tsne(
                embeddings, splitter.labels, path, names, seed=seed
            ),
            figures / "subclass_groups.png": lambda path: viz.plot_group_grid(
                train[0][rows], groups, path, 16, class_names
            ),
        }
    )
    summary = {
        "representation": splitter.representation,
        "method": splitter.method,
        "schedule": splitter.schedule,
        "covariance_type": splitter.covariance_type,
        "pca_dims": splitter.pca_dims,
        "levels": splitter.history,
        "subclasses": splitter.num_subclasses,
        "subclasses_per_class": {class_names[c]: int(n) for c, n in enumerate(counts) if n},
        "figure_class": class_names[shown],
    }
    if failed:
        summary["figures_not_drawn"] = failed
    if hidden is not None:
        summary["subclass_nmi_vs_hidden"] = evaluation.subclass_nmi(
            train[1], hidden, splitter.labels
        )
    return summary


def evaluate_model(model, train, test, class_names, out, seed=0, knn_k=11, train_emb=None):
    """The paper's protocol for an `SGMModel` on `(images, labels)` splits, with figures.

    Writes `out/figures/*.png`; returns the metrics dict (see
    `keras_sgm.evaluation.evaluate_embeddings`) plus `bayes_accuracy` (the
    model's Gaussians) and `class_names`. `train_emb` may pass the training
    images' embeddings when the caller has them already.
    """
    from keras_sgm import evaluation, viz

    if train_emb is None:
        train_emb = model.predict(train[0], verbose=0)
    test_emb = model.predict(test[0], verbose=0)
    metrics = evaluation.evaluate_embeddings(
        train_emb, train[1], test_emb, test[1], knn_k=knn_k, seed=seed
    )
    if len(model.gaussian_ids):
        predicted = model.classes_[np.argmax(model.posterior_from_embeddings(test_emb), axis=1)]
        metrics["bayes_accuracy"] = float(np.mean(predicted == test[1]))
    metrics["class_names"] = list(class_names)
    figures = Path(out) / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    shown = [class_names[c] for c in metrics["classes"]]
    failed = _draw_all(
        {
            figures / "tsne.png": lambda path: viz.plot_tsne(
                test_emb, test[1], path, class_names=class_names, seed=seed
            ),
            figures / "retrieval.png": lambda path: viz.plot_retrieval_curves(
                metrics["recall_at_k"], metrics["acc_at_k"], path
            ),
            figures / "f1_vs_k.png": lambda path: viz.plot_f1_vs_k(metrics["f1_vs_k"], path),
            figures / "confusion.png": lambda path: viz.plot_confusion_matrix(
                metrics["confusion_matrix"], shown, path
            ),
        }
    )
    if failed:
        metrics["figures_not_drawn"] = failed
    return metrics


def _draw_all(figures):
    """Draw `{path: draw(path)}`; `{file name: reason}` of those that failed, each logged.

    A figure is never a reason to lose the metrics of a finished run.
    """
    failed = {}
    for path, draw in figures.items():
        try:
            draw(path)
        except Exception as error:  # noqa: BLE001 - any drawing failure is reported alike
            failed[path.name] = f"{type(error).__name__}: {error}"
            warnings.warn(f"Figure {path} not drawn: {failed[path.name]}", stacklevel=2)
    return failed


def write_json(path, payload):
    """Write JSON to `path` atomically: a reader never sees a half-written file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def run_benchmark(*args, **kwargs):
    """Moved to `keras_sgm.benchmark.run_benchmark`; kept here for code that imports it."""
    from keras_sgm import benchmark

    return benchmark.run_benchmark(*args, **kwargs)


def benchmark_markdown(*args, **kwargs):
    """Moved to `keras_sgm.benchmark.benchmark_markdown`; kept here for code that imports it."""
    from keras_sgm import benchmark

    return benchmark.benchmark_markdown(*args, **kwargs)
