"""Argument checks and small layer helpers shared by the backbones."""

import numbers

import keras

MIN_SIZE = 32
"""Smallest height and width every backbone accepts (all downsample by 8 or 16)."""


def check_arguments(input_shape, embedding_dim, units=None, **rates):
    """Validate the common backbone arguments; return `input_shape` as a tuple of ints.

    Args:
        input_shape: `(height, width, channels)`, channels last.
        embedding_dim: int >= 1, the size of the embedding.
        units: optional int >= 1, the width of fully connected layers.
        **rates: dropout rates by argument name, each a float in `[0, 1)`.

    Raises:
        ValueError: naming the offending value.
    """
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ValueError(
            f"input_shape must be (height, width, channels); received {input_shape!r}."
        ) from None
    if len(shape) != 3 or not all(_is_int(v) for v in shape):
        raise ValueError(
            "input_shape must be three integers (height, width, channels), channels last; "
            f"received {input_shape!r}."
        )
    shape = tuple(int(v) for v in shape)
    height, width, channels = shape
    if channels < 1:
        raise ValueError(f"input_shape needs at least 1 channel; received {input_shape!r}.")
    if min(height, width) < MIN_SIZE:
        raise ValueError(
            f"input_shape {input_shape!r} is too small: height and width must be at least "
            f"{MIN_SIZE} pixels for the backbones' downsampling."
        )
    if not _is_int(embedding_dim) or embedding_dim < 1:
        raise ValueError(f"embedding_dim must be an integer >= 1; received {embedding_dim!r}.")
    if units is not None and (not _is_int(units) or units < 1):
        raise ValueError(f"units must be an integer >= 1; received {units!r}.")
    for name, rate in rates.items():
        valid = isinstance(rate, numbers.Real) and not isinstance(rate, bool)
        if not valid or not 0.0 <= rate < 1.0:
            raise ValueError(f"{name} must be a float in [0, 1); received {rate!r}.")
    return shape


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def conv_relu(x, filters, kernel_size, name, strides=1):
    """`Conv2D` (same padding, with bias) followed by ReLU."""
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", name=f"{name}_conv"
    )(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def dense_relu(x, units, name, dropout=0.0, dropout_first=False):
    """A fully connected ReLU layer, with dropout before or after it."""
    if dropout and dropout_first:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = keras.layers.Dense(units, activation="relu", name=name)(x)
    if dropout and not dropout_first:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def embedding_head(x, embedding_dim):
    """The final linear layer: `[batch, features] -> [batch, embedding_dim]`, float32."""
    return keras.layers.Dense(embedding_dim, name="embedding", dtype="float32")(x)


def on_sphere(encoder, radius):
    """`encoder` with its embeddings L2-normalised and scaled to length `radius`.

    SGMLoss compares squared distances with a fixed `2 sigma^2`, so an
    unnormalised embedding's scale decides how sharp the posteriors are: a
    backbone whose initial embeddings lie far apart (untrained ResNet18 on
    32x32 MNIST: largest posterior 0.99, `bench/embedding_scale.py`) starts
    with saturated posteriors, whose gradient vanishes, and a fast optimizer
    can drive any backbone there.
    On a sphere of radius `r` squared distances stay within `[0, 4 r^2]`.

    Args:
        encoder: a functional `keras.Model` mapping images to embeddings.
        radius: positive float, the length of every embedding.

    Returns:
        A functional `keras.Model` of the same name and inputs; the layers
        before (including the `"embedding"` head) are shared with `encoder`.
    """
    if not isinstance(radius, numbers.Real) or isinstance(radius, bool) or not radius > 0:
        raise ValueError(f"radius must be a positive number; received {radius!r}.")
    x = keras.layers.UnitNormalization(name="embedding_unit_norm", dtype="float32")(encoder.output)
    x = keras.layers.Rescaling(float(radius), name="embedding_radius", dtype="float32")(x)
    return keras.Model(encoder.input, x, name=encoder.name)
