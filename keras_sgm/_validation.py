"""The checks every part of keras_sgm applies to what it is given, written once.

Class ids arrive from NumPy arrays, `tf.data`, YAML files and JSON: each is
checked here, with a message that names the argument, the row and the value.
"""

import numpy as np

MAX_EXACT_LABEL = 2**24
"""Class ids must have a magnitude below this to survive Keras' float32 cast of labels."""


def class_ids(labels, name="labels", n=None, other="the inputs"):
    """`labels` as int64 class ids `[n]`, or a `ValueError` naming `name`, the row and the value.

    Accepts integers of any value and floats that are whole numbers (Keras casts
    labels to float), shape `[n]` or `[n, 1]`.

    Args:
        labels: array-like of class ids.
        name: str, how the message names the argument.
        n: optional int, the number of rows `labels` must have.
        other: str, what those `n` rows are (for the message).
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{name} must be class ids of shape [n]; received shape {labels.shape}.")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"{other} hold {n} rows but {name} hold {labels.shape[0]}.")
    if labels.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if bad.size:
            raise ValueError(
                f"{name} must be whole class ids; "
                f"row {int(bad[0])} holds {labels[bad[0]].item()!r}."
            )
    elif labels.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer class ids; received dtype {labels.dtype}.")
    labels = labels.astype("int64")
    bad = np.flatnonzero(np.abs(labels) >= MAX_EXACT_LABEL)
    if bad.size:
        raise ValueError(
            f"{name}: class id {labels[bad[0]]} at row {int(bad[0])} is too large; Keras casts "
            f"labels to float32, which keeps ids distinct only below {MAX_EXACT_LABEL}."
        )
    return labels


def one_per_row(values, name, n=None, other=None):
    """`values` as an array of shape `[n]` (any dtype: ints, strings), else a named error."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must have shape [n]; received shape {values.shape}.")
    if n is not None and values.shape[0] != n:
        raise ValueError(
            f"{name} has {values.shape[0]} entries but {other} has {n} rows; "
            "they must match one to one."
        )
    return values


def number(value, name, minimum=0.0, strict=True):
    """`value` as a finite float above (`strict`) or at least `minimum`; else a named error."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number; received {value!r} ({type(value).__name__}).")
    value = float(value)
    if not np.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}; received {value}.")
    return value


def flag(value, name):
    """`value` as a bool; anything but a boolean is refused by name."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; received {value!r}.")
    return bool(value)
