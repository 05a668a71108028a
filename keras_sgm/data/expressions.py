"""What the facial-expression dataset builders share: class order, image conversion, splits.

Every dataset is mapped to FER+'s class order (`FERPLUS_CLASSES`); a dataset
that lacks a class simply has no examples of it (its builder documents which).
Images are stored gray, square, `image_size` pixels a side (48 by default).
"""

import hashlib
import logging

import numpy as np

FERPLUS_CLASSES = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
"""The one class order of keras_sgm: FER+'s eight expressions."""

logger = logging.getLogger("keras_sgm.data")

EXPRESSION_ALIASES = {
    "happy": "happiness",
    "joy": "happiness",
    "surprised": "surprise",
    "sad": "sadness",
    "angry": "anger",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "contemptuous": "contempt",
    "neutrality": "neutral",
}
"""Other names of FER+'s expressions (e.g. image-folder class names), by their FER+ name."""


def expression_key(name):
    """The name an expression is matched by across datasets: FER+'s name where one is known.

    Case, surrounding spaces and the aliases of `EXPRESSION_ALIASES` do not
    matter; a name that is no known expression is compared as it is (lower
    case), so that two image folders with the same class names still match.

    Examples:
        >>> expression_key(" Happy"), expression_key("anger"), expression_key("Smirk")
        ('happiness', 'anger', 'smirk')
    """
    key = str(name).strip().lower()
    return EXPRESSION_ALIASES.get(key, key)


def class_index(name):
    """Index of an expression name in `FERPLUS_CLASSES` (ValueError names unknown ones)."""
    try:
        return FERPLUS_CLASSES.index(name)
    except ValueError:
        raise ValueError(
            f"Unknown expression {name!r}; expected one of {list(FERPLUS_CLASSES)}."
        ) from None


def gray_square(image, size):
    """Convert an image array (HxW, HxWx1, HxWx3 or HxWx4) to uint8 `[size, size, 1]`.

    Color is converted with ITU-R 601 luma weights, alpha dropped, and the
    image resized with an antialiasing filter (PIL). It is not cropped: crop
    the face first where the dataset gives a box.
    """
    from PIL import Image

    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim == 3 and array.shape[-1] == 3:
        array = array.astype("float32") @ np.array([0.299, 0.587, 0.114], "float32")
    if array.ndim != 2:
        raise ValueError(f"Expected a 2-D gray or RGB(A) image; received shape {array.shape}.")
    if array.dtype != np.uint8:
        array = np.clip(np.round(array), 0, 255).astype("uint8")
    if array.shape != (size, size):
        array = np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.LANCZOS))
    return array[..., None]


def subject_split(subjects, test_fraction=0.2, val_fraction=0.0, folds=None, fold=0):
    """Assign whole subjects to splits, deterministically, never mixing a subject across splits.

    Subjects are ordered by a hash of their id (stable across machines and
    Python versions), so the assignment does not depend on file order.

    Args:
        subjects: iterable of subject ids (strings).
        test_fraction: float, default 0.2; share of subjects in `test`
            (ignored when `folds` is set).
        val_fraction: float, default 0.0; share of subjects in `validation`.
        folds: optional int k for k-fold cross-validation: subjects are dealt
            into k folds and fold number `fold` is the test split.
        fold: int, default 0; which fold is `test` when `folds` is set.

    Returns:
        dict subject -> "train" | "validation" | "test".
    """
    unique = sorted(set(subjects), key=lambda s: hashlib.sha256(str(s).encode()).hexdigest())
    if len(unique) < 2:
        raise ValueError(f"Need at least 2 subjects to split; received {unique}.")
    if folds is not None:
        if not 2 <= folds <= len(unique) or not 0 <= fold < folds:
            raise ValueError(f"Bad fold {fold} of {folds} for {len(unique)} subjects.")
        test = {s for i, s in enumerate(unique) if i % folds == fold}
    else:
        n_test = max(1, round(test_fraction * len(unique)))
        test = set(unique[:n_test])
    rest = [s for s in unique if s not in test]
    n_val = round(val_fraction * len(unique)) if val_fraction else 0
    if n_val >= len(rest):
        raise ValueError(f"val_fraction={val_fraction} leaves no training subjects.")
    val = set(rest[:n_val])
    return {s: "test" if s in test else "validation" if s in val else "train" for s in unique}


class SkipCounter:
    """Counts rows skipped by a dataset's documented rules, and reports them.

    Examples:
        >>> skips = SkipCounter("ferplus", "fer2013new.csv")
        >>> skips.add("winner is unknown or NF")
        >>> skips.total
        1
    """

    def __init__(self, dataset, source):
        self.dataset, self.source, self.counts = dataset, source, {}

    def add(self, reason):
        self.counts[reason] = self.counts.get(reason, 0) + 1

    @property
    def total(self):
        return sum(self.counts.values())

    def report(self):
        """Log the counts (a warning when anything was skipped); return them."""
        if self.counts:
            details = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))
            logger.warning(
                "%s: skipped %d rows of %s by rule: %s.",
                self.dataset,
                self.total,
                self.source,
                details,
            )
        return dict(self.counts)
