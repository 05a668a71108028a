"""TensorFlow Datasets pieces shared by the expression builders (needs the `datasets` extra)."""

import dataclasses

try:
    import tensorflow_datasets as tfds
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "The dataset builders need TensorFlow Datasets: pip install 'keras-sgm[datasets]'."
    ) from error

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
