"""`SGMModel`'s steps on TensorFlow: `tf.GradientTape`, and `tf.distribute` across replicas."""

import keras
import tensorflow as tf
from keras import ops

from keras_sgm.distribute.collectives import with_device
from keras_sgm.distribute.multiworker import MultiWorkerFit
from keras_sgm.steps.common import SGMSteps


class TensorFlowSteps(MultiWorkerFit, SGMSteps):
    """Train and test steps under `KERAS_BACKEND=tensorflow`, inside any `tf.distribute` strategy.

    With `cross_replica=True` each replica all-gathers the embeddings and labels,
    so the loss estimates the Gaussians from the global batch; a batch that is
    unusable on one replica is kept out of the weights on all of them.
    """

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            embeddings = self(x, training=True)
            g_embeddings, g_y, g_weight = self._gather(embeddings, y, sample_weight)
            loss = self.compute_loss(
                x=x, y=g_y, y_pred=g_embeddings, sample_weight=g_weight, training=True
            )
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        finite = _all_replicas(self._step_is_finite(loss, g_y, gradients))
        gradients, reported = self._guard(finite, loss, gradients)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._update_metrics(_unscale_for_distribution(reported), g_y, g_embeddings, x)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        embeddings = self(x, training=False)
        g_embeddings, g_y, g_weight = self._gather(embeddings, y, sample_weight)
        loss = self.compute_loss(
            x=x, y=g_y, y_pred=g_embeddings, sample_weight=g_weight, training=False
        )
        return self._update_metrics(_unscale_for_distribution(loss), g_y, g_embeddings, x)

    def _gather(self, *values):
        """All-gather per-replica tensors along the batch axis (cross_replica)."""
        context = _multi_replica_context()
        if not self.cross_replica or context is None:
            return values
        gathered = []
        for v in with_device(values):
            if v is not None:
                g = context.all_gather(v, axis=0)
                g.set_shape([None, *v.shape[1:]])  # a collective all-gather loses the rest
                v = g
            gathered.append(v)
        return tuple(gathered)


def _multi_replica_context():
    """The `tf.distribute` replica context when several replicas run in sync, else None."""
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def _all_replicas(flag):
    """True only if `flag` holds on every replica (a no-op outside tf.distribute)."""
    context = _multi_replica_context()
    if context is None:
        return flag
    failures = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - ops.cast(flag, "float32"))
    return ops.equal(failures, 0.0)


def _unscale_for_distribution(loss):
    """Undo the 1/replicas scaling that Keras losses apply under tf.distribute."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss * ops.cast(replicas, loss.dtype) if replicas > 1 else loss
