"""Harder training sets made from a labelled one: fewer images per class, and noisy labels.

Real images that ship in Python packages (MNIST's 5,000, scikit-learn's digits) are easy: every
method classifies 97-99% of them, inside the seeds' spread. Losses can only be told apart where
they err, so a study trains on a harder version of the same images (`TrainConfig.train_per_class`,
`TrainConfig.label_noise`) and tests on the untouched test split:

- `take_per_class`: at most `count` training images of each class, drawn by a seed;
- `flip_labels`: a share of the training labels moved to another class, drawn uniformly among the
  other classes by a seed (symmetric label noise).

Example:

    >>> import numpy as np
    >>> labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    >>> take_per_class(labels, 2, seed=0).size
    6
    >>> noisy, flipped = flip_labels(labels, 0.25, 3, seed=0)
    >>> int(flipped.sum()), bool(np.all(noisy[flipped] != labels[flipped]))
    (2, True)
"""

import numpy as np

from keras_sgm import _validation


def take_per_class(labels, count, seed=0):
    """The sorted rows of at most `count` examples of each class of `labels`, drawn by `seed`.

    A class with `count` examples or fewer keeps them all.

    Args:
        labels: `[n]` whole class ids.
        count: int >= 1, the examples kept per class.
        seed: the draw's seed.

    Returns:
        `[m]` int64 row indices into `labels`, ascending.
    """
    labels = _validation.class_ids(labels, "labels")
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
        raise ValueError(f"count must be a whole number >= 1; received {count!r}.")
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(np.flatnonzero(labels == c))[:count] for c in np.unique(labels)]
    return np.sort(np.concatenate(kept)) if kept else np.zeros((0,), "int64")


def flip_labels(labels, share, num_classes, seed=0):
    """`(noisy, flipped)`: `labels` with `round(share * n)` of them moved to another class.

    The rows are drawn without replacement, and each new label uniformly among
    the `num_classes - 1` other classes, both by `seed`.

    Args:
        labels: `[n]` whole class ids below `num_classes`.
        share: float in [0, 1), the share of labels changed.
        num_classes: int >= 2.
        seed: the draw's seed.

    Returns:
        `noisy` `[n]` int64 and `flipped` `[n]` bool, True where the label changed.
    """
    labels = _validation.class_ids(labels, "labels")
    if not isinstance(share, int | float | np.floating) or not 0.0 <= share < 1.0:
        raise ValueError(f"share must be a number in [0, 1); received {share!r}.")
    if num_classes < 2:
        raise ValueError(f"Label noise needs at least 2 classes; received {num_classes}.")
    if labels.size and labels.max() >= num_classes:
        row = int(np.argmax(labels >= num_classes))
        raise ValueError(
            f"labels hold class {int(labels[row])} at row {row}, not below num_classes "
            f"{num_classes}."
        )
    rng = np.random.default_rng(seed)
    rows = rng.choice(labels.size, size=int(round(share * labels.size)), replace=False)
    noisy = labels.copy()
    # An offset in [1, num_classes) from the true class: every other class equally likely.
    noisy[rows] = (labels[rows] + rng.integers(1, num_classes, size=rows.size)) % num_classes
    flipped = np.zeros(labels.shape, bool)
    flipped[rows] = True
    return noisy, flipped
