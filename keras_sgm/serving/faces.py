"""Photos in, model inputs out: safe decoding of uploads, face detection and face crops.

The Gradio app (and anyone serving a model to the public) receives files it
cannot trust: empty files, text renamed `.jpg`, truncated JPEGs, decompression
bombs, RGBA, gray or 16-bit images, animated GIFs. `read_photo` turns any of
them into either an RGB array or a `PhotoError` whose message names the file
and what is wrong, checking the pixel count from the header before decoding.

`FaceDetector` finds frontal faces with the Haar cascade that ships with
OpenCV (`pip install 'keras-sgm[app]'`; OpenCV 5's wheels no longer ship the
cascades, so the extra pins OpenCV 4), and `crop_face` cuts a square around
each box, with a margin like the crops of FER+ and the synthetic faces, and
converts it to the model's input (gray or RGB, `size` a side, [0, 1]).

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition,
    section 4 (48x48 face crops).
"""

import dataclasses
import io
import os
import re
import threading
import warnings
from pathlib import Path

import numpy as np

MAX_PIXELS = 40_000_000
"""Largest photo decoded, in pixels (checked from the header before decoding)."""

MAX_BYTES = 20 * 2**20
"""Largest photo file read, in bytes (the app sets Gradio's upload limit to it too)."""

CASCADE = "haarcascade_frontalface_default.xml"
"""The OpenCV Haar cascade `FaceDetector` uses by default."""


class PhotoError(ValueError):
    """A photo that cannot be used; the message names the file and the reason."""


@dataclasses.dataclass(frozen=True)
class Photo:
    """A decoded photo.

    Attributes:
        pixels: uint8 `[height, width, 3]` RGB.
        name: the name shown in messages (the file name, or "webcam photo").
        notes: things changed on the way that a user should know about (the
            first frame of an animation was used, transparency flattened).
    """

    pixels: np.ndarray
    name: str
    notes: tuple = ()


@dataclasses.dataclass(frozen=True)
class Face:
    """A face found in a photo.

    Attributes:
        box: `(x, y, width, height)` in the photo's pixels.
        crop: float32 `[size, size, channels]` in [0, 1]: the model input.
        thumbnail: uint8 `[side, side, 3]` RGB crop for display.
    """

    box: tuple
    crop: np.ndarray
    thumbnail: np.ndarray


def _megapixels(n):
    return f"{n / 1e6:.1f} MP"


def read_photo(source, name=None, max_pixels=MAX_PIXELS, max_bytes=MAX_BYTES):
    """Decode a photo file (or array) into RGB, refusing what cannot be used with a clear message.

    Gray, palette, 16-bit and CMYK images are converted to RGB; transparent
    pixels are put on white; EXIF orientation is applied; an animated image
    gives its first frame (and says so in `notes`).

    Args:
        source: a path (str or path-like), raw `bytes`, or an image array
            `[h, w]`, `[h, w, 1|3|4]` (uint8, or float in [0, 1]).
        name: optional str, the name used in messages (default: the file
            name; "photo" for bytes and arrays).
        max_pixels: int, default `MAX_PIXELS`; larger photos are refused
            before they are decoded.
        max_bytes: int, default `MAX_BYTES`; larger files are refused unread.

    Returns:
        A `Photo`.

    Raises:
        PhotoError: a missing, empty, oversized, damaged or non-image file,
            or an unusable array; the message names the file.

    Examples:
        >>> import numpy as np
        >>> photo = read_photo(np.zeros((4, 6), "uint8"), name="gray.png")
        >>> photo.pixels.shape, photo.name
        ((4, 6, 3), 'gray.png')
        >>> read_photo(b"", name="empty.jpg")
        Traceback (most recent call last):
        ...
        keras_sgm.serving.faces.PhotoError: empty.jpg is empty (0 bytes): upload an image file.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, name or "photo", max_pixels)
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), name or "photo"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise PhotoError(f"{name}: the file was not found (or is not a file).")
        size = path.stat().st_size
        if size > max_bytes:
            raise PhotoError(
                f"{name} is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB."
            )
        data = path.read_bytes()
    else:
        raise PhotoError(f"Expected a file path, bytes or an image array; got {type(source)}.")
    if not data:
        raise PhotoError(f"{name} is empty (0 bytes): upload an image file.")
    if len(data) > max_bytes:
        raise PhotoError(
            f"{name} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB."
        )
    return _decode(data, name, max_pixels)


def _decode(data, name, max_pixels):
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        # Our own pixel limit replaces Pillow's decompression-bomb warning.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _open_image(data, name, max_pixels) as image:
            notes = []
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                notes.append(f"{name} is animated ({frames} frames); its first frame was used.")
            try:
                image.seek(0)
                image.load()
                image = ImageOps.exif_transpose(image)
                pixels, flattened = _to_rgb(image)
            except Exception as error:  # noqa: BLE001 - every decoder failure reads alike
                raise PhotoError(
                    f"{name} is damaged and cannot be decoded ({error}); upload it again or "
                    "choose another photo."
                ) from None
    if flattened:
        notes.append(_transparency_note(name))
    return Photo(pixels, name, tuple(notes))


def _open_image(data, name, max_pixels):
    """The PIL image of a file's bytes, its header read and its size checked, not decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise PhotoError(
            f"{name} is not an image that can be read (it starts with {data[:12]!r}); "
            "upload a JPEG, PNG, GIF, BMP or WebP photo."
        ) from None
    except Image.DecompressionBombError as error:
        # Pillow refuses before we can read the size: its message holds the count.
        found = re.search(r"\((\d+) pixels\)", str(error))
        size = f" ({_megapixels(int(found.group(1)))})" if found else ""
        raise PhotoError(
            f"{name} is too large to decode safely{size}; the limit is "
            f"{_megapixels(max_pixels)}: resize it and upload it again."
        ) from None
    width, height = image.size
    refusal = None
    if width * height > max_pixels:
        refusal = (
            f"{name} is {width} x {height} pixels ({_megapixels(width * height)}); "
            f"the limit is {_megapixels(max_pixels)}: resize it and upload it again."
        )
    elif width == 0 or height == 0:
        refusal = f"{name} has no pixels ({width} x {height})."
    if refusal:
        image.close()
        raise PhotoError(refusal)
    return image


def _to_rgb(image):
    """`(uint8 [h, w, 3], had_alpha)` of a PIL image of any mode."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode in ("I", "F"):  # 16-bit or float gray
        array = np.asarray(image, np.float64)
        array = np.clip(array * (255.0 / max(float(array.max()), 1.0)), 0, 255)
        image = Image.fromarray(np.round(array).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info or image.mode in ("LA", "PA", "RGBA"):
        return _on_white(np.asarray(image.convert("RGBA")))
    return np.asarray(image.convert("RGB")), False


def _on_white(rgba):
    """`(uint8 [h, w, 3], any pixel transparent)`: RGBA uint8 composited over white."""
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.round(rgb).astype(np.uint8), bool(np.any(alpha < 1.0))


def _transparency_note(name):
    return f"{name} has transparent pixels; they were put on white."


def _from_array(array, name, max_pixels):
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or 0 in array.shape:
        raise PhotoError(
            f"{name}: expected an image array [height, width] or [height, width, 1|3|4]; "
            f"got shape {array.shape}."
        )
    if array.shape[0] * array.shape[1] > max_pixels:
        raise PhotoError(
            f"{name} is {array.shape[1]} x {array.shape[0]} pixels "
            f"({_megapixels(array.shape[0] * array.shape[1])}); the limit is "
            f"{_megapixels(max_pixels)}."
        )
    if array.dtype != np.uint8:
        if array.dtype.kind not in "fiu" or not np.all(np.isfinite(array)):
            raise PhotoError(f"{name}: the image holds non-finite or non-numeric values.")
        scale = 255.0 if array.dtype.kind == "f" and array.max() <= 1.0 else 1.0
        array = np.clip(np.round(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    flattened = False
    if array.shape[-1] == 4:
        array, flattened = _on_white(array)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    notes = (_transparency_note(name),) if flattened else ()
    return Photo(np.ascontiguousarray(array), name, notes)


def _cv2():
    try:
        import cv2
    except ImportError as error:
        raise ImportError(
            "Face detection needs OpenCV: pip install 'keras-sgm[app]' "
            "(opencv-python-headless 4.x, which ships the Haar cascades)."
        ) from error
    return cv2


class FaceDetector:
    """Frontal faces with OpenCV's Haar cascade; safe to share between threads.

    Photos are searched at most `max_side` pixels on their longer side (larger
    ones are scaled down for the search; boxes come back in the photo's own
    pixels), for faces at least `min_face` pixels wide at that scale.

    Args:
        cascade: str, default `CASCADE`; a file name in OpenCV's
            `cv2.data.haarcascades`, or a path to a cascade XML file.
        scale_factor: float, default 1.1; the step between searched scales.
        min_neighbors: int, default 5; higher finds fewer, surer faces.
        min_face: int, default 24; smallest face side searched, in pixels.
        max_side: int, default 1024.

    Examples:
        >>> import numpy as np
        >>> FaceDetector().detect(np.full((64, 64, 3), 128, "uint8"))  # a blank photo
        []

    Reference:
        Viola and Jones, Rapid object detection using a boosted cascade of
        simple features (CVPR 2001).
    """

    def __init__(
        self, cascade=CASCADE, scale_factor=1.1, min_neighbors=5, min_face=24, max_side=1024
    ):
        cv2 = _cv2()
        path = Path(cascade)
        if not path.is_file() and hasattr(cv2, "data"):
            path = Path(cv2.data.haarcascades) / cascade
        if not path.is_file():
            raise ImportError(
                f"OpenCV's Haar cascade {cascade} was not found ({path}); OpenCV 5 wheels do "
                "not ship the cascades: pip install 'opencv-python-headless>=4.8,<5'."
            )
        self.path = path
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_face = int(min_face)
        self.max_side = int(max_side)
        self._local = threading.local()

    def _cascade(self):
        # A CascadeClassifier must not run in two threads at once: one per thread.
        if not hasattr(self._local, "cascade"):
            self._local.cascade = _cv2().CascadeClassifier(str(self.path))
        return self._local.cascade

    def detect(self, pixels):
        """Face boxes `[(x, y, width, height), ...]` in `pixels` (uint8 RGB), left to right."""
        cv2 = _cv2()
        gray = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
        scale = min(1.0, self.max_side / max(gray.shape))
        if scale < 1.0:
            size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        found = self._cascade().detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_face, self.min_face),
        )
        boxes = [tuple(int(round(v / scale)) for v in box) for box in np.reshape(found, (-1, 4))]
        return sorted(boxes, key=lambda b: (b[0], b[1]))


def square_box(box, shape, margin=0.2):
    """The square `(x, y, side, side)` around `box`, widened by `margin` per side, in the photo.

    Where the square crosses the photo's edge it is cut to fit (it stays
    centred on the face where it can).

    Examples:
        >>> square_box((10, 10, 20, 20), (100, 100), margin=0.25)
        (5, 5, 30, 30)
        >>> square_box((0, 0, 20, 10), (12, 100), margin=0.0)
        (4, 0, 12, 12)
    """
    x, y, w, h = box
    side = int(round(max(w, h) * (1.0 + 2.0 * margin)))
    side = max(1, min(side, shape[0], shape[1]))
    cx, cy = x + w / 2.0, y + h / 2.0
    left = int(round(min(max(cx - side / 2.0, 0), shape[1] - side)))
    top = int(round(min(max(cy - side / 2.0, 0), shape[0] - side)))
    return left, top, side, side


def to_model_input(pixels, size, channels):
    """uint8 RGB `[h, w, 3]` -> float32 `[size, size, channels]` in [0, 1] (area resampling).

    Gray uses ITU-R 601 luma, as Pillow's "L" and the training images do.
    """
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    if channels == 1:
        image = image.convert("L")
    downscale = max(image.size) > size
    image = image.resize(
        (size, size), Image.Resampling.BOX if downscale else Image.Resampling.BICUBIC
    )
    array = np.asarray(image, np.float32) / 255.0
    return array.reshape(size, size, channels)


def crop_face(pixels, box, size, channels, margin=0.2, thumbnail=96):
    """The `Face` for `box`: a square crop with a margin, as model input and as a thumbnail.

    Args:
        pixels: uint8 RGB `[h, w, 3]`.
        box: `(x, y, width, height)`.
        size: int, the model's input side.
        channels: 1 or 3, the model's input channels.
        margin: float, default 0.2; the share of the box added on each side.
        thumbnail: int, default 96; the side of the display thumbnail.
    """
    left, top, side, _ = square_box(box, pixels.shape, margin)
    region = pixels[top : top + side, left : left + side]
    return Face(
        tuple(int(v) for v in box),
        to_model_input(region, size, channels),
        np.round(to_model_input(region, thumbnail, 3) * 255).astype(np.uint8),
    )


def find_faces(photo, detector, size, channels, whole=False, margin=0.2):
    """The `Face`s of a `Photo`: every detected face, or the whole photo as one face crop.

    Args:
        photo: a `Photo` (`read_photo`).
        detector: a `FaceDetector` (unused when `whole`).
        size: int, the model's input side in pixels.
        channels: int, the model's input channels (1 or 3).
        whole: bool, default False; the photo is already a face crop (as
            in FER+), so it is used whole (centre square) without detection.
        margin: float, default 0.2, as in `crop_face`.

    Returns:
        A list of `Face`, left to right; empty when no face was found.
    """
    pixels = photo.pixels
    if whole:
        h, w = pixels.shape[:2]
        return [crop_face(pixels, (0, 0, w, h), size, channels, margin=0.0)]
    return [crop_face(pixels, b, size, channels, margin) for b in detector.detect(pixels)]
