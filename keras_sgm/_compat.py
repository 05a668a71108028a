"""The Keras versions keras_sgm is tested with, and a clear error outside them.

keras_sgm relies on a few private parts of Keras' TensorFlow trainer
(`Trainer._symbolic_build`, `_maybe_symbolic_build`, `_loss_tracker`; see
`keras_sgm.distribute.multiworker` and `keras_sgm.model`). They can change in
any release, so the package refuses to import with a Keras outside the range
CI tests, unless `KERAS_SGM_ALLOW_UNTESTED_KERAS=1` asks it to try anyway.
"""

import os
import re

KERAS_MIN = (3, 10)
"""The oldest Keras tested (inclusive)."""

KERAS_BELOW = (3, 16)
"""The first Keras not tested (exclusive); pyproject.toml pins the same range."""

ALLOW_ENV = "KERAS_SGM_ALLOW_UNTESTED_KERAS"

KERAS_RANGE = f"keras>={KERAS_MIN[0]}.{KERAS_MIN[1]},<{KERAS_BELOW[0]}.{KERAS_BELOW[1]}"


def parse_version(text):
    """`(major, minor)` of a version string such as `"3.15.1"` or `"3.16.0.dev2026"`."""
    match = re.match(r"(\d+)\.(\d+)", str(text))
    if not match:
        raise ValueError(f"Cannot read the Keras version {text!r}.")
    return int(match[1]), int(match[2])


def check_keras_version(version=None):
    """Refuse a Keras outside `[KERAS_MIN, KERAS_BELOW)` with a message saying what to install.

    Returns the `(major, minor)` read. Set the environment variable
    `KERAS_SGM_ALLOW_UNTESTED_KERAS=1` to skip the check.
    """
    if version is None:
        import keras

        version = keras.version()
    found = parse_version(version)
    if KERAS_MIN <= found < KERAS_BELOW or os.environ.get(ALLOW_ENV) == "1":
        return found
    raise ImportError(
        f"keras_sgm is tested with {KERAS_RANGE}; keras {version} is installed. Install a tested "
        f"version (pip install '{KERAS_RANGE}'), or set {ALLOW_ENV}=1 to try this one: "
        "keras_sgm's multi-worker training patches private methods of Keras' trainer."
    )


def private(obj, name):
    """`getattr(obj, name)` for a private Keras attribute, or a `RuntimeError` that says so."""
    try:
        return getattr(obj, name)
    except AttributeError:
        import keras

        raise RuntimeError(
            f"This Keras ({keras.version()}) has no {type(obj).__name__}.{name}, a private "
            f"attribute keras_sgm relies on; install a tested version: pip install '{KERAS_RANGE}'."
        ) from None
