"""TensorFlow Datasets pieces shared by the expression builders (needs the `datasets` extra)."""

import dataclasses
import io

try:
    import tensorflow_datasets as tfds
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "The dataset builders need TensorFlow Datasets: pip install 'keras-sgm[datasets]'."
    ) from error

import numpy as np
from etils import epath

from keras_sgm.data.expressions import FERPLUS_CLASSES


@dataclasses.dataclass(eq=False)
class ExpressionConfig(tfds.core.BuilderConfig):
    """A builder config whose images are `image_size` pixels a side (gray)."""

    image_size: int = 48


def default_configs(description):
    """The configs every expression builder offers: 48 px (default), 64 px and 96 px."""
    return [
        ExpressionConfig(
            name=f"{size}px", description=f"{description}, {size}x{size} gray.", image_size=size
        )
        for size in (48, 64, 96)
    ]


def expression_features(image_size, **extra):
    """`image` (gray uint8 square), `label` (FER+ class order) and any extra features."""
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(image_size, image_size, 1)),
            "label": tfds.features.ClassLabel(names=list(FERPLUS_CLASSES)),
            **extra,
        }
    )


def read_image(path, where=None):
    """Decode an image file (PNG, TIFF, BMP, ...) into a uint8 array (HxW or HxWx3).

    Args:
        path: path of the image (str or `epath.Path`).
        where: optional string (e.g. the csv file and row that names the
            image) starting the error messages; with it, a missing file is
            reported as "not found".

    Returns:
        a numpy uint8 array: gray images 2-D, everything else RGB. 16-bit and
        float images are scaled so that their maximum becomes 255.

    Raises:
        ValueError: naming the file, when it cannot be read or decoded.

    Examples:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> path = epath.Path(tempfile.mkdtemp()) / "x.png"
        >>> Image.fromarray(np.zeros((4, 6), "uint8")).save(path)
        >>> read_image(path).shape
        (4, 6)
    """
    from PIL import Image

    path = epath.Path(path)
    if where and not path.exists():
        raise ValueError(f"{where}: image {path} not found.")
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            if image.mode.startswith("I;16") or image.mode in ("I", "F"):
                array = np.asarray(image, "float32")
                return (array * (255.0 / max(float(array.max()), 1.0))).astype("uint8")
            return np.asarray(image if image.mode in ("L", "RGB") else image.convert("RGB"))
    except Exception as error:  # noqa: BLE001 - every reader failure is reported alike
        head = f"{where}: cannot" if where else "Cannot"
        raise ValueError(f"{head} read image {path}: {error}".strip()) from error
