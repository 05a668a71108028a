"""The paper's five backbones, as encoders from face images to embeddings.

Each builder returns a functional `keras.Model` made of standard Keras layers
(so `.keras` files load without custom objects) whose output is the
`[batch, embedding_dim]` embedding of a final linear layer, unnormalised.
Inputs are channels-last images of at least 32x32 pixels; the paper uses
48x48 grey faces and 64-d embeddings.

- `fmpnet`: Yu & Zhang (2015).
- `cvgg13`: the FER+ VGG13 of Barsoum et al. (2016).
- `alexnet`: AlexNet (Krizhevsky, 2014) with a small first convolution.
- `resnet18`, `preact_resnet18`: He et al. (2015, 2016) with a CIFAR-style stem.

`get(name, ...)` builds one by name; `available()` lists the names;
`on_sphere(encoder, radius)` puts an encoder's embeddings on a sphere.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition,
    section 4.
"""

import inspect

from keras_sgm.backbones._common import MIN_SIZE, on_sphere
from keras_sgm.backbones.alexnet import alexnet
from keras_sgm.backbones.cvgg13 import cvgg13
from keras_sgm.backbones.fmpnet import fmpnet
from keras_sgm.backbones.resnet import preact_resnet18, resnet18

_BUILDERS = {
    "alexnet": alexnet,
    "cvgg13": cvgg13,
    "fmpnet": fmpnet,
    "preact_resnet18": preact_resnet18,
    "resnet18": resnet18,
}


def available():
    """The backbone names `get` accepts, sorted.

    Examples:
        >>> from keras_sgm import backbones
        >>> backbones.available()
        ['alexnet', 'cvgg13', 'fmpnet', 'preact_resnet18', 'resnet18']
    """
    return sorted(_BUILDERS)


def get(name, input_shape=(48, 48, 1), embedding_dim=64, **kwargs):
    """Build a backbone encoder by name.

    Args:
        name: string, one of `available()` (case-insensitive).
        input_shape: tuple, default `(48, 48, 1)`. `(height, width, channels)`,
            channels last; height and width at least 32.
        embedding_dim: int, default 64. Size of the output embedding.
        **kwargs: passed to the builder: `dropout` and `units` for
            `fmpnet`, `cvgg13` and `alexnet`, `conv_dropout` for `cvgg13`.
            (Call the builder itself to choose the model's name.)

    Returns:
        A built functional `keras.Model` mapping `[batch, *input_shape]`
        images to `[batch, embedding_dim]` embeddings.

    Raises:
        ValueError: for an unknown name (the message lists the available
            ones), a bad `input_shape` or `embedding_dim < 1`.
        TypeError: for a keyword argument the backbone does not take.

    Examples:
        >>> from keras_sgm import backbones
        >>> model = backbones.get("resnet18", input_shape=(48, 48, 1), embedding_dim=64)
        >>> model.name, model.output_shape
        ('resnet18_encoder', (None, 64))

    Reference:
        Deep Metric Structured Learning For Facial Expression Recognition,
        section 4.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _BUILDERS:
        raise ValueError(
            f"Unknown backbone {name!r}; available backbones: {', '.join(available())}."
        )
    builder = _BUILDERS[key]
    accepted = [p for p in inspect.signature(builder).parameters if p != "name"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"Backbone {key!r} takes no argument {unknown[0]!r}; it accepts: {', '.join(accepted)}."
        )
    return builder(input_shape=input_shape, embedding_dim=embedding_dim, **kwargs)


__all__ = [
    "MIN_SIZE",
    "alexnet",
    "available",
    "cvgg13",
    "fmpnet",
    "get",
    "on_sphere",
    "preact_resnet18",
    "resnet18",
]
