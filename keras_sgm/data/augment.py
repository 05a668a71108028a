"""Training-time augmentation of image batches, as Keras preprocessing layers in `tf.data`.

`augmenter` builds the usual facial-expression augmentation - random
horizontal flips, small shifts, zooms in (random crops resized back) and
small rotations - and `augment` maps a batched dataset through it, images
only: labels of any structure (class ids, soft targets, label pairs) pass
untouched. Since it works on batches, it applies the same way to every
method's data: `ClassBalancedSampler.dataset` batches (SGMLoss, triplet loss)
and the softmax CNN's shuffled batches. The paper trains without
augmentation, so nothing in the package augments unless asked.

Backends: Keras image preprocessing layers run TensorFlow ops inside
`tf.data` whatever `KERAS_BACKEND` is (called in a `tf.data` graph, they
switch to the TensorFlow backend). `augment` calls the layers one by one,
never through a `keras.Sequential` (which converts its inputs to the
backend's own tensors), so that holds for it too. The tests run the
TensorFlow backend only.

Seeds: each layer draws its random parameters from its own stream (a
`keras.random.SeedGenerator`), which a batch advances when it runs. Mapped
one call at a time, batches draw in order, so a seeded `augmenter` on a fresh
dataset repeats the same augmentations; with several parallel calls, batches
take draws in whatever order they run, so the same seed does not give the
same batches. `augment` therefore maps seeded layers in order and unseeded
ones with `tf.data.AUTOTUNE`. Either way each epoch draws fresh
augmentations (the streams carry on across epochs); a new `augmenter` starts
its streams again.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition trains
    without augmentation. Facial-expression works commonly train with random
    horizontal flips, shifts, crops and small rotations; see the data
    augmentation part of the pre-processing section of S. Li and W. Deng,
    Deep Facial Expression Recognition: A Survey, IEEE Transactions on
    Affective Computing 13(3), 2022.
"""

import math
import numbers

import keras

FILL_MODES = ("reflect", "nearest", "wrap", "constant")
"""The fill modes Keras offers for pixels a transform brings in from outside the image."""


def _tf():
    import tensorflow as tf

    return tf


def _check_fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number in [0, 1); received {value!r}.")
    if not 0 <= value < 1:
        raise ValueError(
            f"{name} is a fraction of the image side and must be in [0, 1); received {value!r}."
        )
    return float(value)


def augmenter(flip=True, translate=0.1, zoom=0.1, rotate=10.0, fill_mode="reflect", seed=None):
    """The facial-expression training augmentation, a `keras.layers.Pipeline`.

    The layers, in order, each left out when its amount is 0 (or `flip` is
    False): `RandomFlip("horizontal")`, `RandomTranslation`, `RandomZoom`
    (zoom in only) and `RandomRotation`, all bilinear and float32 (whatever
    the dtype policy). Apply it to a dataset with `augment`.

    Args:
        flip: bool, default True; mirror each image left-right with
            probability 1/2 (faces are near symmetric, expressions too).
        translate: float in [0, 1), default 0.1; shift each image by up to
            this fraction of its height and of its width, independently in
            each direction.
        zoom: float in [0, 1), default 0.1; zoom in by up to this fraction
            of the side: each image becomes a centred crop of a random
            `1 - zoom` to all of its side, resized back (aspect kept; with
            the shifts the crop moves off centre). Never zooms out, which
            would shrink the face and fill the border with copies of it.
        rotate: float in [0, 180], default 10.0; rotate each image by up to
            this many degrees, either way, about its centre.
        fill_mode: str, default "reflect"; how pixels brought in from
            outside the image are filled: "reflect" mirrors the image about
            its edge (no black borders, and the local texture carries on),
            "nearest" repeats the edge pixel, "wrap" tiles, "constant" fills
            with 0 (black).
        seed: int or None (default). With a seed, a fresh augmenter gives
            the same augmentations on the same batches (see `augment`). The
            flip, shift, zoom and rotation layers get seeds `seed` to
            `seed + 3`, so that their draws differ.

    Returns:
        a `keras.layers.Pipeline` (a plain layer, `tf.data`-safe on every
        backend, unlike `keras.Sequential`); its `layers` are empty when
        every amount is 0 (then `augment` returns the dataset unchanged).

    Raises:
        ValueError: naming the argument, for an amount out of range or of
            the wrong type, an unknown `fill_mode` or a non-integer `seed`.

    Examples:
        >>> from keras_sgm.data import augmenter
        >>> [layer.__class__.__name__ for layer in augmenter(zoom=0.0).layers]
        ['RandomFlip', 'RandomTranslation', 'RandomRotation']
        >>> augmenter(flip=False, translate=0, zoom=0, rotate=0).layers
        []
    """
    if not isinstance(flip, bool):
        raise ValueError(f"flip must be True or False; received {flip!r}.")
    translate = _check_fraction(translate, "translate")
    zoom = _check_fraction(zoom, "zoom")
    if isinstance(rotate, bool) or not isinstance(rotate, numbers.Real) or not 0 <= rotate <= 180:
        raise ValueError(f"rotate must be a number of degrees in [0, 180]; received {rotate!r}.")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode must be one of {FILL_MODES}; received {fill_mode!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise ValueError(f"seed must be an int or None; received {seed!r}.")

    def seed_of(i):
        return None if seed is None else int(seed) + i

    options = dict(fill_mode=fill_mode, interpolation="bilinear", dtype="float32")
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed_of(0), dtype="float32"))
    if translate:
        layers.append(
            keras.layers.RandomTranslation(translate, translate, seed=seed_of(1), **options)
        )
    if zoom:
        # Keras zooms in for negative factors; width_factor=None keeps the aspect ratio.
        layers.append(keras.layers.RandomZoom((-zoom, 0.0), seed=seed_of(2), **options))
    if rotate:
        # Keras takes the angle as a fraction of a full turn.
        layers.append(keras.layers.RandomRotation(rotate / 360.0, seed=seed_of(3), **options))
    return keras.layers.Pipeline(layers, name="augmenter")


def _layer_list(layers):
    if layers is None:
        return []
    if isinstance(layers, (keras.layers.Pipeline, keras.Sequential)):
        return list(layers.layers)
    if isinstance(layers, keras.layers.Layer):
        return [layers]
    if isinstance(layers, (list, tuple)) and all(
        isinstance(layer, keras.layers.Layer) for layer in layers
    ):
        return list(layers)
    raise ValueError(
        "layers must be a keras.layers.Pipeline, a keras.Sequential, a layer or a list of "
        f"layers (e.g. augmenter()); received {layers!r}."
    )


def augment(dataset, layers, num_parallel_calls="auto"):
    """Pass the images of a batched dataset through augmentation layers, labels untouched.

    Every element's first component, a float image batch
    `[batch, height, width, channels]` in [0, 1], goes through `layers` with
    `training=True`; the output keeps the input dtype and is clipped to
    [0, 1]. Whatever follows it (labels `[batch]`, soft targets
    `[batch, C]`, label pairs `[batch, 2]`, sample weights, any nesting) is
    passed on as it is. The dataset's length (cardinality) is kept.

    Args:
        dataset: a batched `tf.data.Dataset` of `(images, ...)` tuples or of
            image batches alone.
        layers: the augmentation, e.g. `augmenter()`: a
            `keras.layers.Pipeline`, a `keras.Sequential`, one layer or a
            list of layers; None or no layers returns `dataset` itself.
        num_parallel_calls: "auto" (default), or what `Dataset.map` takes
            (an int, `tf.data.AUTOTUNE`, or None for one call at a time).
            "auto" maps one call at a time when any layer has a seed, so
            that the seed reproduces the augmentations, and with
            `tf.data.AUTOTUNE` otherwise. The warps run on several threads
            within a call either way.

    Returns:
        the augmented `tf.data.Dataset`, prefetched.

    Raises:
        ValueError: for dict elements, images that are not floating point
            or not a rank-4 batch, or `layers` that are not Keras layers.

    Examples:
        >>> import numpy as np
        >>> from keras_sgm.data import ClassBalancedSampler, augment, augmenter
        >>> x = np.random.default_rng(0).random((40, 48, 48, 1), dtype="float32")
        >>> y = np.arange(40) % 4
        >>> batches = ClassBalancedSampler(x, y, samples_per_class=3, seed=0).dataset()
        >>> images, labels = next(iter(augment(batches, augmenter(seed=0))))
        >>> images.shape, images.dtype.name, np.bincount(labels.numpy()).tolist()
        (TensorShape([12, 48, 48, 1]), 'float32', [3, 3, 3, 3])
    """
    tf = _tf()
    spec = dataset.element_spec
    if isinstance(spec, dict):
        raise ValueError(
            f"augment needs (images, labels) tuples; received dict elements with keys "
            f"{sorted(spec)}: map them to a tuple first."
        )
    image_spec = spec[0] if isinstance(spec, tuple) else spec
    if not isinstance(image_spec, tf.TensorSpec) or not image_spec.dtype.is_floating:
        raise ValueError(
            "augment needs float images in [0, 1] as the first element; received "
            f"{image_spec!r} (convert with tf.image.convert_image_dtype or divide by 255)."
        )
    if image_spec.shape.rank is not None and image_spec.shape.rank != 4:
        raise ValueError(
            "augment needs batches of images [batch, height, width, channels]; received image "
            f"shape {image_spec.shape} (batch the dataset first)."
        )
    layers = _layer_list(layers)
    if not layers:
        return dataset
    if num_parallel_calls == "auto":
        seeded = any(getattr(layer, "seed", None) is not None for layer in layers)
        num_parallel_calls = None if seeded else tf.data.AUTOTUNE
    dtype = image_spec.dtype

    def transform(images):
        for layer in layers:
            images = layer(images, training=True)
        return tf.clip_by_value(tf.cast(images, dtype), 0.0, 1.0)

    if isinstance(spec, tuple):
        batches = dataset.map(
            lambda images, *rest: (transform(images), *rest), num_parallel_calls=num_parallel_calls
        )
    else:
        batches = dataset.map(transform, num_parallel_calls=num_parallel_calls)
    return batches.prefetch(tf.data.AUTOTUNE)
