"""Image-folder datasets (`DATA_DIR/<split>/<class>/*.png|jpg|...`) and the built-in digits.

The layout Keras users already have: one folder per split (`train`, `test`,
optionally `val`), one sub-folder per class. Images are decoded with
TensorFlow, converted to gray or RGB, resized to a square and scaled to [0, 1].
"""

import os
import re
import warnings
from pathlib import Path

import numpy as np

from keras_sgm.data import digits

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def _decode(path, image_size, channels):
    import tensorflow as tf

    data = Path(path).read_bytes()
    if path.suffix.lower() in (".tif", ".tiff"):
        image = _decode_with_pil(path)
    else:
        image = tf.io.decode_image(data, expand_animations=False).numpy()
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 2:  # gray + alpha
        image = image[..., :1]
    if image.shape[-1] == 4:  # RGB + alpha
        image = image[..., :3]
    if channels == 1 and image.shape[-1] == 3:
        image = tf.image.rgb_to_grayscale(image).numpy()
    elif channels == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    image = tf.image.resize(image.astype("float32"), (image_size, image_size), antialias=True)
    return np.clip(image.numpy() / 255.0, 0.0, 1.0).astype("float32")


def _decode_with_pil(path):
    from PIL import Image

    with Image.open(path) as image:
        if image.mode.startswith("I;16") or image.mode == "I":
            # 16-bit gray: scale to 8 bits instead of letting convert("L") clip it
            array = np.asarray(image, dtype="float64")
            top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
            return np.round(array / top * 255.0).astype("uint8")
        return np.asarray(image.convert("L" if image.mode == "L" else "RGB"))


def folder_name(path):
    """The text of a file or folder name, decoded once: UTF-8, else Windows-1252.

    Names from old zip archives are often not UTF-8 (`caf\\xe9`); Python keeps
    such bytes as lone surrogates, which no JSON file, figure or web page can
    show. They are read as Windows-1252 (Latin-1 where it has no character),
    with a warning naming the folder.
    """
    raw = os.fsencode(Path(path).name)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        warnings.warn(
            f"{Path(path).parent}/{raw!r}: the name is not UTF-8; read as {text!r}.",
            stacklevel=2,
        )
        return text


def list_image_folder(split_dir):
    """`{class_name: [paths]}` of one split folder, classes and files sorted.

    Class names are decoded by `folder_name`. A class folder holding no image
    is left out with a warning that names it.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise ValueError(f"{split_dir} is not a folder.")
    classes, empty = {}, []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        name = folder_name(class_dir)
        if name in classes:
            raise ValueError(
                f"{split_dir}: two class folders read as the same name {name!r}; rename one."
            )
        if files:
            classes[name] = files
        else:
            empty.append(name)
    if not classes:
        raise ValueError(
            f"{split_dir} holds no images: expected {split_dir}/<class>/*"
            f"{{{','.join(IMAGE_SUFFIXES)}}}."
        )
    if empty:
        warnings.warn(
            f"{split_dir}: class folders without images, left out: {empty}.", stacklevel=2
        )
    return classes


def _reason(error):
    """A decoder's error as one readable line, without TensorFlow's op decorations."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(error))
    text = re.sub(r"\s*\[Op:\w+\].*", "", text, flags=re.S).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_image_folder(
    split_dir,
    image_size=48,
    channels=1,
    class_names=None,
    min_per_class=1,
    skip_unreadable=False,
):
    """Read one split of an image folder into memory.

    Every file is read before any error is raised, so that one message lists
    every unreadable image (path and reason).

    Args:
        split_dir: path of the split, e.g. `DATA_DIR/train`.
        image_size: int, default 48; images are resized to a square.
        channels: 1 (gray, default) or 3 (RGB).
        class_names: optional list fixing the class order (the training
            split's); a class folder outside it is an error.
        min_per_class: int, default 1; a class with fewer images is an error.
        skip_unreadable: bool, default False. Leave unreadable images out
            (with a warning that counts and names them) instead of refusing
            the folder.

    Returns:
        `(images [n, size, size, channels] float32 in [0, 1], labels [n] int64,
        class_names)`.

    Raises:
        ValueError: no images, unreadable images (all named, unless
            `skip_unreadable`), an unknown class folder, or a class with fewer
            than `min_per_class` images.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; received {channels}.")
    found = list_image_folder(split_dir)
    names = list(found) if class_names is None else list(class_names)
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise ValueError(f"{split_dir} has class folders not in the training split: {unknown}.")
    images, labels, bad = [], [], []
    for name, paths in found.items():
        for path in paths:
            try:
                images.append(_decode(path, image_size, channels))
            except Exception as error:  # noqa: BLE001 - every decoder failure is reported alike
                bad.append(f"{path}: {_reason(error)}")
                continue
            labels.append(names.index(name))
    if bad:
        listing = "\n  ".join(bad)
        if not skip_unreadable:
            raise ValueError(
                f"{split_dir}: {len(bad)} unreadable image(s):\n  {listing}\n"
                "Fix or remove them, or pass --skip-unreadable to go on without them."
            )
        warnings.warn(
            f"{split_dir}: skipped {len(bad)} unreadable image(s):\n  {listing}", stacklevel=2
        )
    counts = np.bincount(np.asarray(labels, "int64"), minlength=len(names))
    small = {
        c: int(counts[names.index(c)]) for c in found if counts[names.index(c)] < min_per_class
    }
    if small:
        raise ValueError(
            f"{split_dir}: classes with fewer than {min_per_class} images: {small}; "
            "metric learning needs at least two examples of a class."
        )
    if not images:
        raise ValueError(f"{split_dir}: no readable image.")
    return np.stack(images), np.asarray(labels, "int64"), names


def load_digits_dataset(image_size=48, channels=1, test_size=0.25, seed=0):
    """scikit-learn's 8x8 digits, upsampled, as train/test splits (`keras_sgm.data.digits.load`).

    Returns:
        `((x_train, y_train), (x_test, y_test), class_names)`.
    """
    return digits.load("digits", image_size, channels, test_size=test_size, seed=seed)[:3]
