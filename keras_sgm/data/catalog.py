"""Named datasets: the TFDS builders of the paper's datasets and the synthetic faces.

`load_split(name, split, ...)` prepares a builder (offline, from its manual
directory where the dataset needs one) and returns the split as NumPy arrays,
which is what `scripts/train.py --dataset NAME --data-dir DIR` uses.
"""

import importlib

import numpy as np

from keras_sgm.data.expressions import FERPLUS_CLASSES

BUILDERS = {
    "synthetic_faces": "keras_sgm.data.synthetic_faces",
    "ferplus": "keras_sgm.data.ferplus",
    "affectnet": "keras_sgm.data.affectnet",
    "ckplus": "keras_sgm.data.ckplus",
    "jaffe": "keras_sgm.data.jaffe",
    "bu3dfe": "keras_sgm.data.bu3dfe",
}
"""Dataset name -> the module whose import registers its TFDS builder."""

MANUAL = frozenset(BUILDERS) - {"synthetic_faces"}
"""Datasets whose files must be downloaded by hand (licences) into a manual directory."""


def builder(name, image_size=48, manual_dir=None, data_dir=None, config=None):
    """The prepared TFDS builder of a named dataset.

    Args:
        name: one of `BUILDERS`.
        image_size: int, default 48; selects the `{image_size}px` config.
        manual_dir: folder holding the files as their owners distribute them
            (see the builder's `MANUAL_DOWNLOAD_INSTRUCTIONS`); required for
            every dataset but `synthetic_faces`.
        data_dir: where TFDS keeps prepared datasets (TFDS' default if None).
        config: optional full config name, overriding `image_size`.

    Returns:
        A `tfds.core.DatasetBuilder` whose splits are prepared.
    """
    if name not in BUILDERS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(BUILDERS)}.")
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            f"Dataset {name!r} needs TensorFlow Datasets: pip install 'keras-sgm[datasets]'."
        ) from error
    importlib.import_module(BUILDERS[name])
    if name in MANUAL and manual_dir is None:
        module = importlib.import_module(BUILDERS[name])
        raise ValueError(
            f"Dataset {name!r} must be downloaded by hand: pass its folder as manual_dir "
            f"(scripts/train.py: --data-dir). {_instructions(module)}"
        )
    config = config or f"{image_size}px"
    built = tfds.builder(name, config=config, data_dir=data_dir)
    download = tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else str(manual_dir)
    )
    built.download_and_prepare(download_config=download)
    return built


def _instructions(module):
    for value in vars(module).values():
        text = getattr(value, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
        if text:
            return " ".join(str(text).split())
    return ""


def load_split(name, split, image_size=48, manual_dir=None, data_dir=None, config=None):
    """One split of a named dataset as arrays (prepares the builder first).

    Returns:
        `(images [n, size, size, 1] float32 in [0, 1], labels [n] int64, extras)`
        where `extras` maps every other feature (votes, subject, ...) to an array.
    """
    return split_arrays(builder(name, image_size, manual_dir, data_dir, config), split)


def split_arrays(built, split):
    """One split of a prepared builder as arrays; see `load_split`."""
    if split not in built.info.splits:
        raise ValueError(
            f"Dataset {built.name!r} has no split {split!r}; it has {list(built.info.splits)}."
        )
    columns = {}
    for example in built.as_dataset(split=split).as_numpy_iterator():
        for key, value in example.items():
            columns.setdefault(key, []).append(value)
    if not columns:
        raise ValueError(f"Split {split!r} of dataset {built.name!r} is empty.")
    images = np.stack(columns.pop("image")).astype("float32") / 255.0
    labels = np.asarray(columns.pop("label"), "int64")
    extras = {key: np.asarray(values) for key, values in columns.items()}
    return images, labels, extras


def class_names(name):
    """The class names of a named dataset (FER+ order for all of them)."""
    if name not in BUILDERS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(BUILDERS)}.")
    return list(FERPLUS_CLASSES)
