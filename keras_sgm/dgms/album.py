"""Photo-album summarization: a fixed number of images showing an album's diverse expressions.

The album's embeddings are grouped with EM (as in the paper's clustering
analysis) into as many groups as images wanted, and each group is
represented by its medoid, largest groups first.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition,
    section 4.2.3: "The presented method is a powerful tool for tasks such as
    photo album summarization."
"""

import logging
import pathlib
from typing import NamedTuple

import numpy as np

from keras_sgm.dgms.groups import METHODS, _positive_int, find_groups
from keras_sgm.retrieval import as_matrix
from keras_sgm.viz import plot_contact_sheet

logger = logging.getLogger("keras_sgm.dgms")

ALBUM_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
"""Files `load_album` reads (compared case-insensitively)."""


def _farthest_points(embeddings, chosen, count):
    """Add `count` rows to `chosen`, each the row farthest from all those chosen so far.

    Distances are Euclidean; ties (and the zero distances of duplicates) go to
    the smallest index, and a chosen row is never chosen again.
    """
    x = embeddings.astype(np.float64)
    nearest = np.full(x.shape[0], np.inf)
    for i in chosen:
        nearest = np.minimum(nearest, np.sum((x - x[i]) ** 2, axis=1))
    taken = np.zeros(x.shape[0], bool)
    taken[chosen] = True
    added = []
    for _ in range(count):
        if not chosen and not added:  # nothing chosen yet: start from the first row
            pick = 0
        else:
            pick = int(np.argmax(np.where(taken, -1.0, nearest)))
        added.append(pick)
        taken[pick] = True
        nearest = np.minimum(nearest, np.sum((x - x[pick]) ** 2, axis=1))
    return added


def summarize_embeddings(embeddings, k, seed=0, method="em"):
    """Indices of `k` representative items: the medoids of `k` groups, largest group first.

    The embeddings are grouped with `find_groups(embeddings, n_groups=k)`.
    When that yields fewer than `k` non-empty groups (duplicate embeddings,
    fewer distinct embeddings than `k`), the rest are filled by farthest-point
    selection: each added item is the one farthest from all items chosen so
    far (ties to the smallest index), so exactly `k` distinct indices come
    back.

    Args:
        embeddings: float array `[n, dim]`, finite.
        k: positive int, at most `n`: how many items to choose.
        seed: int, default 0, the random state of the clustering.
        method: `"em"` (default) or `"kmeans"`, as in `find_groups`.

    Returns:
        int64 array `[k]` of distinct row indices: the medoids ordered by
        decreasing group size (ties by index), then any farthest-point
        additions in the order chosen.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = np.concatenate([rng.normal(c, 0.1, (m, 2)) for c, m in ((0, 5), (4, 8), (9, 3))])
        >>> blob = np.repeat([0, 1, 2], [5, 8, 3])
        >>> blob[summarize_embeddings(x, 3)].tolist()  # one item per blob, the largest blob first
        [1, 0, 2]
        >>> summarize_embeddings(np.zeros((4, 2)), 3).tolist()  # duplicates: still distinct
        [0, 1, 2]

    Reference:
        Deep Metric Structured Learning For Facial Expression Recognition,
        section 4.2.3 (groups, medoids and album summarization).
    """
    embeddings = as_matrix(embeddings, "embeddings")
    n = embeddings.shape[0]
    k = _positive_int(k, "k")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; received {method!r}.")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of items n={n}; pass k <= {n}.")
    distinct = np.unique(embeddings, axis=0).shape[0]
    n_groups = min(k, distinct)
    groups = find_groups(embeddings, n_groups=n_groups, method=method, top_k=1, seed=seed)
    chosen = [g.medoid for g in sorted(groups, key=lambda g: (-g.size, g.medoid))]
    if len(chosen) < k:
        logger.info(
            "%d group(s) for k=%d (%d distinct embedding(s)); %d item(s) added by "
            "farthest-point selection.",
            len(chosen),
            k,
            distinct,
            k - len(chosen),
        )
        chosen += _farthest_points(embeddings, chosen, k - len(chosen))
    return np.asarray(chosen, np.int64)


def summarize_album(model, images, k, seed=0, batch_size=256, method="em"):
    """Choose `k` representative images of an album with an embedding model.

    Args:
        model: a Keras model mapping the images to embeddings `[n, dim]`
            (e.g. a trained `keras_sgm.SGMModel`).
        images: array `[n, ...]` of model inputs (e.g. from `load_album`).
        k: positive int, at most `n`.
        seed: int, default 0, the random state of the clustering.
        batch_size: int, default 256, the batch size of `model.predict`.
        method: `"em"` (default) or `"kmeans"`, as in `find_groups`.

    Returns:
        int64 array `[k]` of distinct indices into `images`, as
        `summarize_embeddings` orders them.

    Examples:
        >>> import keras, numpy as np
        >>> model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
        >>> images = np.repeat([0.1, 0.5, 0.9], [4, 3, 2])[:, None, None, None] * np.ones((4, 4, 1))
        >>> summarize_album(model, images.astype("float32"), 3).tolist()
        [0, 4, 7]
    """
    k = _positive_int(k, "k")
    n = len(images)
    if k > n:
        raise ValueError(f"k={k} exceeds the number of images n={n}; pass k <= {n}.")
    embeddings = np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
    if embeddings.ndim != 2 or embeddings.shape[0] != n:
        raise ValueError(
            f"the model must map {n} images to embeddings [{n}, dim]; its output has shape "
            f"{embeddings.shape}."
        )
    return summarize_embeddings(embeddings, k, seed=seed, method=method)


class Album(NamedTuple):
    """What `load_album` returns; unpacks as `images, paths, skipped`."""

    images: np.ndarray
    """float32 `[n, size, size, channels]` in [0, 1]."""
    paths: list
    """`n` `pathlib.Path`s, `paths[i]` the file of `images[i]`."""
    skipped: list
    """`pathlib.Path`s of the files left out as unreadable (empty unless `skip_unreadable`)."""


def _to_array(image, channels):
    """A PIL image as uint8 `[h, w, channels]`: gray with ITU-R 601 luma, or RGB."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode in ("I", "F"):  # 16-bit or float gray
        array = np.asarray(image, np.float64)
        array = np.clip(array * (255.0 / max(float(array.max()), 1.0)), 0, 255)
        image = Image.fromarray(np.round(array).astype(np.uint8))
    if image.mode == "P" or image.mode.endswith("A"):
        image = image.convert("RGBA")  # palette transparency and alpha: dropped just below
    array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    return array[..., None] if array.ndim == 2 else array


def _resize(array, size):
    from PIL import Image

    if array.shape[:2] == (size, size):
        return array
    planes = [
        np.asarray(Image.fromarray(array[..., c]).resize((size, size), Image.Resampling.LANCZOS))
        for c in range(array.shape[-1])
    ]
    return np.stack(planes, axis=-1)


def _read(path, image_size, channels, transform):
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)  # phone photos: rotate as shown
            array = _to_array(image, channels)
    except Exception as error:  # noqa: BLE001 - every reader failure is reported alike
        raise ValueError(f"Cannot read image {path}: {error}") from error
    if transform is not None:
        try:
            array = np.asarray(transform(array))
        except ValueError as error:
            raise ValueError(f"transform failed on image {path}: {error}") from error
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3 or array.shape[-1] != channels or 0 in array.shape:
            raise ValueError(
                f"transform must return a non-empty [h, w, {channels}] image; it returned shape "
                f"{array.shape} for {path}."
            )
        array = np.clip(np.round(array), 0, 255).astype(np.uint8)
    return _resize(array, image_size).astype(np.float32) / 255.0


def load_album(folder, image_size, channels, skip_unreadable=False, transform=None):
    """Read every image of a folder (not its sub-folders), gray or RGB, resized to a square.

    Files whose names end in `.png`, `.jpg`, `.jpeg`, `.bmp`, `.gif` or
    `.webp` (any case) are read with Pillow, in sorted order; other files are
    ignored. EXIF orientation is applied, alpha dropped, color converted to
    gray with ITU-R 601 luma (Pillow's "L") when `channels == 1`, 16-bit
    images scaled so their maximum is 255, and the image resized (not
    cropped) to `image_size` a side with a Lanczos filter. An animated GIF
    gives its first frame.

    Args:
        folder: str or path-like, the album folder.
        image_size: positive int, the side of the square images returned.
        channels: 1 (gray) or 3 (RGB).
        skip_unreadable: bool, default False. By default a file Pillow cannot
            read (or on which `transform` raises ValueError) raises
            ValueError naming it; with True it is left out, logged, and listed
            in `skipped`.
        transform: optional callable, applied to each image as a uint8 array
            `[h, w, channels]` before resizing; it returns a uint8-range array
            `[h', w', channels]` (or `[h', w']` when `channels == 1`), e.g. a
            face crop. A ValueError it raises counts as an unreadable file.

    Returns:
        An `Album` named tuple `(images, paths, skipped)`: images float32
        `[n, image_size, image_size, channels]` in [0, 1], the `n` paths they
        came from, and the paths skipped (always empty unless
        `skip_unreadable`).

    Raises:
        ValueError: a folder that does not exist or holds no images (or no
            readable ones), a file that cannot be read, bad arguments.

    Examples:
        >>> import pathlib, tempfile, numpy as np
        >>> from PIL import Image
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> Image.fromarray(np.full((8, 6, 3), 255, "uint8")).save(folder / "b.PNG")
        >>> Image.fromarray(np.zeros((5, 5), "uint8")).save(folder / "a.jpg")
        >>> images, paths, skipped = load_album(folder, image_size=4, channels=1)
        >>> images.shape, [p.name for p in paths], float(images[1].min()), skipped
        ((2, 4, 4, 1), ['a.jpg', 'b.PNG'], 1.0, [])
    """
    folder = pathlib.Path(folder)
    image_size = _positive_int(image_size, "image_size")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB); received {channels!r}.")
    if not folder.is_dir():
        raise ValueError(f"Album folder {folder} does not exist or is not a folder.")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in ALBUM_SUFFIXES
    )
    if not files:
        raise ValueError(
            f"Album folder {folder} holds no images (files ending in {', '.join(ALBUM_SUFFIXES)})."
        )
    images, paths, skipped = [], [], []
    for path in files:
        try:
            images.append(_read(path, image_size, channels, transform))
            paths.append(path)
        except ValueError as error:
            if not skip_unreadable:
                raise
            logger.warning("skipped: %s", error)
            skipped.append(path)
    if not images:
        raise ValueError(
            f"Album folder {folder} holds no readable images: all {len(files)} image file(s) "
            "failed to read (see the log)."
        )
    return Album(np.stack(images).astype(np.float32), paths, skipped)


def input_size(model):
    """`(image_size, channels)` of a model taking square images `[batch, s, s, c]`."""
    for source in (model, getattr(model, "encoder", None)):  # SGMModel: its encoder's
        try:
            shape = tuple(source.input_shape)
            break
        except (AttributeError, ValueError):
            continue
    else:
        raise ValueError(f"cannot tell the input shape of the {type(model).__name__} model.")
    if len(shape) != 4 or shape[1] != shape[2] or shape[1] is None or shape[3] not in (1, 3):
        raise ValueError(
            f"the model must take square gray or RGB images [batch, s, s, 1 or 3]; its input "
            f"shape is {shape}."
        )
    return int(shape[1]), int(shape[3])


def summarize_album_folder(
    model_path, folder, k, output, seed=0, method="em", skip_unreadable=False
):
    """Summarize a folder of photos with a saved model: its K representatives and a contact sheet.

    Reads every image of `folder` at the model's input size and channels
    (`load_album`), chooses K with `summarize_album`, and writes the contact
    sheet of the chosen images to `output`, largest group first.

    Args:
        model_path: a `.keras` file of a keras_sgm model (or any model embedding
            square images).
        folder: the album, a folder of images (sub-folders are ignored).
        k: int, how many images to choose.
        output: path of the contact sheet PNG.
        seed: int, default 0; random state of the clustering.
        method: `"em"` (default) or `"kmeans"`.
        skip_unreadable: bool, default False; leave out files that cannot be
            read as images (each is logged) instead of stopping.

    Returns:
        `(chosen, paths, sheet)`: the chosen paths in order, every path read,
        and the sheet's path.

    Raises:
        ValueError: no model file, a model that does not take square images,
            or an album it cannot read (named).
    """
    import keras

    path = pathlib.Path(model_path)
    if not path.is_file():
        raise ValueError(f"No model file at {path}.")
    model = keras.saving.load_model(path)
    image_size, channels = input_size(model)
    images, paths, _ = load_album(folder, image_size, channels, skip_unreadable=skip_unreadable)
    chosen = summarize_album(model, images, k, seed=seed, method=method)
    sheet = plot_contact_sheet(images[chosen], output, titles=[paths[i].name for i in chosen])
    return [paths[i] for i in chosen], paths, sheet
