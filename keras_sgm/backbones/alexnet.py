"""AlexNet adapted to small face crops, as an embedding encoder."""

import keras

from keras_sgm.backbones._common import check_arguments, conv_relu, dense_relu, embedding_head


def alexnet(
    input_shape=(48, 48, 1),
    embedding_dim=64,
    dropout=0.5,
    units=1024,
    name="alexnet_encoder",
):
    """AlexNet encoder for small images: five convolutions, two fully connected layers.

    The single-column AlexNet of "One weird trick" (64, 192, 384, 256 and 256
    filters; max pooling after the first, second and fifth convolutions) with
    the 11x11 stride-4 first convolution replaced by a 5x5 stride-1 one, and
    3x3 stride-2 same-padded poolings, so that a 48x48 face ends on the same
    6x6 map as the original 224x224 image. The flattened features go through
    two ReLU layers of `units` units (4096 in the original), each preceded by
    dropout, then a linear layer to the embedding (no normalisation).

    The first fully connected layer sees the flattened feature map, so its
    size grows with the input size.

    Args:
        input_shape: tuple, default `(48, 48, 1)`. `(height, width, channels)`,
            channels last; height and width at least 32.
        embedding_dim: int, default 64. Size of the output embedding.
        dropout: float, default 0.5. Dropout rate before each fully
            connected layer.
        units: int, default 1024. Width of the fully connected layers.
        name: string, default `"alexnet_encoder"`. The model's name.

    Returns:
        A functional `keras.Model` mapping `[batch, *input_shape]` images to
        `[batch, embedding_dim]` embeddings.

    Examples:
        >>> from keras_sgm import backbones
        >>> model = backbones.alexnet(input_shape=(48, 48, 3), embedding_dim=64)
        >>> model.name, model.output_shape
        ('alexnet_encoder', (None, 64))

    Reference:
        A. Krizhevsky, One weird trick for parallelizing convolutional neural
        networks, arXiv:1404.5997, 2014.
    """
    input_shape = check_arguments(input_shape, embedding_dim, units, dropout=dropout)
    inputs = keras.Input(input_shape, name="image")
    x = conv_relu(inputs, 64, 5, name="block1")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="block1_pool")(x)
    x = conv_relu(x, 192, 5, name="block2")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="block2_pool")(x)
    x = conv_relu(x, 384, 3, name="block3")
    x = conv_relu(x, 256, 3, name="block4")
    x = conv_relu(x, 256, 3, name="block5")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="block5_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense_relu(x, units, "fc1", dropout=dropout, dropout_first=True)
    x = dense_relu(x, units, "fc2", dropout=dropout, dropout_first=True)
    return keras.Model(inputs, embedding_head(x, embedding_dim), name=name)
