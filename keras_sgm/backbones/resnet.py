"""ResNet18 and pre-activation ResNet18 for small images, as embedding encoders.

Both use the CIFAR-style stem (one 3x3 convolution, stride 1, no max
pooling), so a 48x48 face keeps its resolution into the first stage and ends
on a 6x6 map; four stages of two basic blocks with 64, 128, 256 and 512
filters (stride 2 from the second stage on), global average pooling and a
linear layer to the embedding (no normalisation).
"""

import keras

from keras_sgm.backbones._common import check_arguments, embedding_head

STAGES = ((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2))
"""`(filters, blocks, stride of the first block)` of the four stages (ResNet18)."""


def _conv(x, filters, kernel_size, strides, name):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )(x)


def _bn(x, name):
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)(x)


def _basic_block(x, filters, strides, name):
    """conv-BN-ReLU, conv-BN, add the (projected) shortcut, ReLU (He et al. 2015)."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(x, filters, 1, strides, f"{name}_shortcut_conv")
        shortcut = _bn(shortcut, f"{name}_shortcut_bn")
    x = _conv(x, filters, 3, strides, f"{name}_conv1")
    x = _bn(x, f"{name}_bn1")
    x = keras.layers.ReLU(name=f"{name}_relu1")(x)
    x = _conv(x, filters, 3, 1, f"{name}_conv2")
    x = _bn(x, f"{name}_bn2")
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def _preact_block(x, filters, strides, name):
    """BN-ReLU-conv twice, added to the identity (He et al. 2016).

    A projection shortcut, where the shape changes, reads the pre-activated
    input, like the residual branch.
    """
    preact = _bn(x, f"{name}_bn1")
    preact = keras.layers.ReLU(name=f"{name}_relu1")(preact)
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(preact, filters, 1, strides, f"{name}_shortcut_conv")
    x = _conv(preact, filters, 3, strides, f"{name}_conv1")
    x = _bn(x, f"{name}_bn2")
    x = keras.layers.ReLU(name=f"{name}_relu2")(x)
    x = _conv(x, filters, 3, 1, f"{name}_conv2")
    return keras.layers.Add(name=f"{name}_add")([shortcut, x])


def _stages(x, block):
    for stage, (filters, blocks, strides) in enumerate(STAGES, 1):
        for index in range(1, blocks + 1):
            x = block(x, filters, strides if index == 1 else 1, f"stage{stage}_block{index}")
    return x


def resnet18(input_shape=(48, 48, 1), embedding_dim=64, name="resnet18_encoder"):
    """ResNet18 encoder with a CIFAR-style stem.

    A 3x3 convolution with 64 filters, batch normalisation and ReLU, then
    four stages of two basic blocks (two 3x3 convolutions each, with a 1x1
    projection shortcut where the shape changes), global average pooling and
    a linear layer to the embedding.

    Args:
        input_shape: tuple, default `(48, 48, 1)`. `(height, width, channels)`,
            channels last; height and width at least 32.
        embedding_dim: int, default 64. Size of the output embedding.
        name: string, default `"resnet18_encoder"`. The model's name.

    Returns:
        A functional `keras.Model` mapping `[batch, *input_shape]` images to
        `[batch, embedding_dim]` embeddings.

    Examples:
        >>> from keras_sgm import backbones
        >>> model = backbones.resnet18(input_shape=(48, 48, 1), embedding_dim=64)
        >>> model.name, model.output_shape
        ('resnet18_encoder', (None, 64))

    Reference:
        K. He, X. Zhang, S. Ren and J. Sun, Deep residual learning for image
        recognition, CVPR 2016 (arXiv:1512.03385).
    """
    input_shape = check_arguments(input_shape, embedding_dim)
    inputs = keras.Input(input_shape, name="image")
    x = _conv(inputs, 64, 3, 1, "stem_conv")
    x = _bn(x, "stem_bn")
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = _stages(x, _basic_block)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, embedding_head(x, embedding_dim), name=name)


def preact_resnet18(input_shape=(48, 48, 1), embedding_dim=64, name="preact_resnet18_encoder"):
    """Pre-activation ResNet18 encoder with a CIFAR-style stem.

    A bare 3x3 convolution with 64 filters, then four stages of two
    pre-activation blocks (batch normalisation and ReLU before each 3x3
    convolution, nothing after the addition, so the identity path stays
    clean), a final batch normalisation and ReLU, global average pooling and
    a linear layer to the embedding.

    Args:
        input_shape: tuple, default `(48, 48, 1)`. `(height, width, channels)`,
            channels last; height and width at least 32.
        embedding_dim: int, default 64. Size of the output embedding.
        name: string, default `"preact_resnet18_encoder"`. The model's name.

    Returns:
        A functional `keras.Model` mapping `[batch, *input_shape]` images to
        `[batch, embedding_dim]` embeddings.

    Examples:
        >>> from keras_sgm import backbones
        >>> model = backbones.preact_resnet18(input_shape=(32, 32, 3), embedding_dim=16)
        >>> model.name, model.output_shape
        ('preact_resnet18_encoder', (None, 16))

    Reference:
        K. He, X. Zhang, S. Ren and J. Sun, Identity mappings in deep residual
        networks, ECCV 2016 (arXiv:1603.05027).
    """
    input_shape = check_arguments(input_shape, embedding_dim)
    inputs = keras.Input(input_shape, name="image")
    x = _conv(inputs, 64, 3, 1, "stem_conv")
    x = _stages(x, _preact_block)
    x = _bn(x, "final_bn")
    x = keras.layers.ReLU(name="final_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, embedding_head(x, embedding_dim), name=name)
