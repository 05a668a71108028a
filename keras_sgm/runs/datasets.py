"""The images of a run: its dataset's splits as arrays, and the class names, by `TrainConfig`."""

from pathlib import Path

import numpy as np

from keras_sgm.data import catalog, digits, harder, synthetic_faces
from keras_sgm.data.image_folder import list_image_folder, load_image_folder
from keras_sgm.data.names import DIGIT_DATASETS, LOCAL_DATASETS


def class_names_of(config):
    """The class names a run on `config` trains on, read without loading any image.

    Catalog datasets use FER+'s eight expressions; an image folder the
    sub-folders of `DATA_DIR/train` that hold images.
    """
    if config.dataset in DIGIT_DATASETS:
        paired = DIGIT_DATASETS[config.dataset][1]
        return list(digits.PAIR_NAMES if paired else digits.DIGIT_NAMES)
    if config.dataset == "image_folder":
        return list(list_image_folder(Path(config.data_dir) / "train"))
    return catalog.class_names(config.dataset)


def load_splits(config, with_extras=False):
    """`(train, val_or_None, test, class_names)`, each split `(images, labels)`.

    With `with_extras=True` a fifth item is added: a dict of the training
    split's other per-example columns (e.g. the synthetic faces' hidden
    `subgroup`), empty for datasets without any.
    """
    extras = {}
    if config.dataset in DIGIT_DATASETS:
        # The split is fixed (seed 0) whatever the training seed, so that runs with
        # different seeds, and scripts/evaluate.py, all test on the same images.
        # The pair sets hide two known sub-groups per class: 0|1, 2|3, ...
        name, pairs = DIGIT_DATASETS[config.dataset]
        train, test, names, extras = digits.load(
            name, config.image_size, config.channels, pairs=pairs
        )
        val = None
    elif config.dataset == "image_folder":
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
    if config.train_per_class is not None:
        keep = harder.take_per_class(train[1], config.train_per_class, seed=config.seed)
        train = (train[0][keep], train[1][keep])
        extras = {key: value[keep] for key, value in extras.items()}
    if val is None and config.val_fraction:
        train, val, extras = carve_validation(train, extras, config.val_fraction)
    held = holdout_ids(config, names)
    if held:
        train, val, test, extras = _hold_out(held, train, val, test, extras)
    if config.label_noise:
        noisy, flipped = harder.flip_labels(
            train[1], config.label_noise, len(names), seed=config.seed
        )
        train = (train[0], noisy)
        extras["label_flipped"] = flipped
    _check_counts(train[1], names)
    if with_extras:
        return train, val, test, names, extras
    return train, val, test, names


def carve_validation(train, extras, fraction, seed=0):
    """`(train, val, extras)`: `fraction` of each training class (at least two images, and
    two always left to train on; classes under four images give none) moved to a validation
    split, in a fixed shuffled order (its batches mix the classes), the same images for
    every seed of one training split (`max_train_samples` draws that split by the run's seed,
    before the validation images are taken out of it); `extras` follow train."""
    images, labels = train
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        count = max(int(round(fraction * rows.size)), 2)  # calibrate needs two per class
        if rows.size >= 4:
            held.append(rng.choice(rows, size=min(count, rows.size - 2), replace=False))
    held = rng.permutation(np.concatenate(held)) if held else np.zeros((0,), "int64")
    keep = np.setdiff1d(np.arange(labels.size), held)
    extras = {key: value[keep] for key, value in extras.items()}
    return (images[keep], labels[keep]), (images[held], labels[held]), extras


def holdout_ids(config, names):
    """The class ids `config.holdout_classes` names (comma-separated names or ids), sorted."""
    if not config.holdout_classes:
        return []
    ids = []
    for item in str(config.holdout_classes).split(","):
        item = item.strip()
        if item in names:
            ids.append(names.index(item))
        elif item.isdigit() and int(item) < len(names):
            ids.append(int(item))
        else:
            raise ValueError(
                f"holdout_classes names {item!r}, which is neither a class of {config.dataset!r} "
                f"({names}) nor a class id below {len(names)}."
            )
    ids = sorted(set(ids))
    if len(names) - len(ids) < 2:
        raise ValueError(
            f"holdout_classes {config.holdout_classes!r} leaves {len(names) - len(ids)} class(es) "
            "to train on; metric learning needs at least 2."
        )
    return ids


def _hold_out(held, train, val, test, extras):
    """Train, validation and test without the `held` classes; their test images in
    `extras["held_out_test"]` (images, labels)."""
    known = ~np.isin(train[1], held)
    extras = {key: value[known] for key, value in extras.items()}
    train = (train[0][known], train[1][known])
    if val is not None:
        kept = ~np.isin(val[1], held)
        val = (val[0][kept], val[1][kept])
    unknown = np.isin(test[1], held)
    extras["held_out_test"] = (test[0][unknown], test[1][unknown])
    return train, val, (test[0][~unknown], test[1][~unknown]), extras


def load_test_split(config):
    """`(images, labels, class_names)` of a dataset's test split, without its other splits.

    An image folder needs only `DATA_DIR/test/`, its classes being its
    sub-folders; named datasets read only their prepared `test` split.
    """
    if config.dataset == "image_folder":
        return load_image_folder(
            Path(config.data_dir) / "test",
            config.image_size,
            config.channels,
            skip_unreadable=config.skip_unreadable,
        )
    if config.dataset in LOCAL_DATASETS:
        _, _, test, names = load_splits(config)
        return test[0], test[1], names
    built = _named_builder(config)
    images, labels = _named_split(config, built, "test")[:2]
    return images, labels, catalog.class_names(config.dataset)


def _named_builder(config):
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


def describe_splits(train, val, test, names, flipped=None):
    """`"3 classes; train 24 images (bars 8, ...); test 12"`: what a run found, printed first;
    with `flipped` (the rows whose label noise moved), how many training labels are wrong."""
    counts = np.bincount(train[1], minlength=len(names))
    per_class = ", ".join(f"{name} {int(n)}" for name, n in zip(names, counts, strict=True))
    text = f"{len(names)} classes; train {len(train[1])} images ({per_class})"
    if flipped is not None:
        text += f", {int(np.sum(flipped))} of them labelled as another class (label_noise)"
    if val is not None:
        text += f"; val {len(val[1])}"
    return text + f"; test {len(test[1])}"


def other_dataset_images(config, n=200, seed=0):
    """`n` images of a dataset of other classes at the run's input size: the synthetic faces
    (drawn on the spot) for the digit sets, scikit-learn's digits for every other dataset."""
    if config.dataset in DIGIT_DATASETS:
        import tensorflow as tf

        faces = synthetic_faces.generate(-(-n // 8), size=48, seed=seed)["image"][:n]
        faces = faces.astype("float32") / 255.0
        images = tf.image.resize(faces, (config.image_size,) * 2).numpy()
    else:
        images = digits.load("digits", config.image_size, 1)[0][0]
        images = images[np.random.default_rng(seed).permutation(len(images))[:n]]
    if config.channels == 3 and images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images.astype("float32")
