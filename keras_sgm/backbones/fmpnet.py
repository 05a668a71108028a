"""FMPNet: the facial-expression network of Yu & Zhang (2015), as an embedding encoder."""

import keras

from keras_sgm.backbones._common import check_arguments, conv_relu, dense_relu, embedding_head


def fmpnet(
    input_shape=(48, 48, 1),
    embedding_dim=64,
    dropout=0.5,
    units=1024,
    name="fmpnet_encoder",
):
    """FMPNet encoder: three convolution stages, two fully connected layers, an embedding.

    Stage 1 is a 5x5 convolution with 64 filters, stage 2 two 3x3 convolutions
    with 64 filters, stage 3 two 3x3 convolutions with 128 filters; each stage
    ends with a 3x3 max pooling of stride 2 (the original uses stochastic /
    fractional pooling with the same halving) and batch normalisation. The
    flattened features (`128 x 6 x 6` at 48x48) go through two ReLU layers of
    `units` units, each preceded by dropout, then a linear layer to the
    embedding (no normalisation).

    The first fully connected layer sees the flattened feature map, so its
    size grows with the input size.

    Args:
        input_shape: tuple, default `(48, 48, 1)`. `(height, width, channels)`,
            channels last; height and width at least 32.
        embedding_dim: int, default 64. Size of the output embedding.
        dropout: float, default 0.5. Dropout rate before each fully
            connected ReLU layer.
        units: int, default 1024. Width of the fully connected layers.
        name: string, default `"fmpnet_encoder"`. The model's name.

    Returns:
        A functional `keras.Model` mapping `[batch, *input_shape]` images to
        `[batch, embedding_dim]` embeddings.

    Examples:
        >>> from keras_sgm import backbones
        >>> model = backbones.fmpnet(input_shape=(48, 48, 1), embedding_dim=64)
        >>> model.name, model.output_shape
        ('fmpnet_encoder', (None, 64))

    Reference:
        Z. Yu and C. Zhang, Image based static facial expression recognition
        with multiple deep network learning, ICMI 2015.
    """
    input_shape = check_arguments(input_shape, embedding_dim, units, dropout=dropout)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for stage, (filters, kernels) in enumerate([(64, [5]), (64, [3, 3]), (128, [3, 3])], 1):
        for index, kernel_size in enumerate(kernels, 1):
            x = conv_relu(x, filters, kernel_size, name=f"stage{stage}_{index}")
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"stage{stage}_pool")(x)
        # PyTorch-style momentum (0.1 there, 0.9 here): the moving statistics used
        # at inference catch up within tens of steps, not hundreds.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"stage{stage}_bn")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense_relu(x, units, "fc1", dropout=dropout, dropout_first=True)
    x = dense_relu(x, units, "fc2", dropout=dropout, dropout_first=True)
    return keras.Model(inputs, embedding_head(x, embedding_dim), name=name)
