"""Batch metrics for metric learning."""

import keras
from keras import ops

from keras_sgm.losses import class_means, label_structure, squared_distances


def centroid_accuracy(labels, embeddings):
    """Per-sample hit (1.0 / 0.0): is the sample nearest to its own class mean?

    Class means are computed from the batch itself, over the classes present in
    it (label-weighted for soft labels, whose own class is the argmax).

    Args:
        labels: hard or soft labels (see `keras_sgm.losses`).
        embeddings: `[batch, dim]`.

    Returns:
        `[batch]` float32 of ones and zeros.
    """
    embeddings = ops.cast(embeddings, "float32")
    weights, targets, present = label_structure(labels, embeddings)
    means = class_means(embeddings, weights)
    dist = squared_distances(embeddings, means)
    dist = ops.where(ops.greater(present, 0.0)[None, :], dist, ops.full_like(dist, float("inf")))
    nearest = ops.argmin(dist, axis=1)
    own = ops.argmax(targets, axis=1)
    # Hard labels: several columns can stand for one class; compare the target there.
    hit = ops.take_along_axis(targets, nearest[:, None], axis=1)[:, 0]
    own_value = ops.take_along_axis(targets, own[:, None], axis=1)[:, 0]
    return ops.cast(ops.greater_equal(hit, own_value), "float32")


@keras.saving.register_keras_serializable(package="keras_sgm")
class CentroidAccuracy(keras.metrics.MeanMetricWrapper):
    """Share of samples whose nearest batch class mean is their own class's.

    Args:
        name: string, default `"centroid_accuracy"`.
        dtype: metric dtype, default float32.

    Examples:
        >>> import keras, keras_sgm
        >>> encoder = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)])
        >>> encoder.compile(loss=keras_sgm.SGMLoss(), metrics=[keras_sgm.CentroidAccuracy()])
    """

    def __init__(self, name="centroid_accuracy", dtype=None):
        super().__init__(fn=centroid_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
