"""CVGG13: the VGG13 variant of the FER+ paper (Barsoum et al., 2016), as an embedding encoder."""

import keras

from keras_sgm.backbones._common import check_arguments, conv_relu, dense_relu, embedding_head

STAGES = ((64, 2), (128, 2), (256, 3), (256, 3))
"""`(filters, convolutions)` of the four stages."""


def cvgg13(
    input_shape=(48, 48, 1),
    embedding_dim=64,
    dropout=0.5,
    conv_dropout=0.25,
    units=1024,
    name="cvgg13_encoder",
):
    """CVGG13 encoder: ten 3x3 convolutions in four stages, two fully connected layers.

    The stages have 64, 128, 256 and 256 filters and 2, 2, 3 and 3
    convolutions (ReLU, same padding); each ends with a 2x2 max pooling and
    dropout `conv_dropout`. The flattened features (`256 x 3 x 3` at 48x48,
    `256 x 4 x 4` at the paper's 64x64) go through two ReLU layers of `units`
    units, each followed by dropout `dropout`, then a linear layer to the
    embedding (no normalisation).

    The first fully connected layer sees the flattened feature map, so its
    size grows with the input size.

    Args:
        input_shape: tuple, default `(48, 48, 1)`. `(height, width, channels)`,
            channels last; height and width at least 32.
        embedding_dim: int, default 64. Size of the output embedding.
        dropout: float, default 0.5. Dropout rate after each fully connected
            layer.
        conv_dropout: float, default 0.25. Dropout rate after each pooling.
        units: int, default 1024. Width of the fully connected layers.
        name: string, default `"cvgg13_encoder"`. The model's name.

    Returns:
        A functional `keras.Model` mapping `[batch, *input_shape]` images to
        `[batch, embedding_dim]` embeddings.

    Examples:
        >>> from keras_sgm import backbones
        >>> model = backbones.cvgg13(input_shape=(64, 64, 1), embedding_dim=32)
        >>> model.name, model.output_shape
        ('cvgg13_encoder', (None, 32))

    Reference:
        E. Barsoum, C. Zhang, C. Canton Ferrer and Z. Zhang, Training deep
        networks for facial expression recognition with crowd-sourced label
        distribution, ICMI 2016.
    """
    input_shape = check_arguments(
        input_shape, embedding_dim, units, dropout=dropout, conv_dropout=conv_dropout
    )
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for stage, (filters, convolutions) in enumerate(STAGES, 1):
        for index in range(1, convolutions + 1):
            x = conv_relu(x, filters, 3, name=f"stage{stage}_{index}")
        x = keras.layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
        if conv_dropout:
            x = keras.layers.Dropout(conv_dropout, name=f"stage{stage}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense_relu(x, units, "fc1", dropout=dropout)
    x = dense_relu(x, units, "fc2", dropout=dropout)
    return keras.Model(inputs, embedding_head(x, embedding_dim), name=name)
