"""`SGMModel`'s steps on PyTorch: `loss.backward()`, as Keras' torch trainer."""

import keras
import torch

from keras_sgm.steps.common import SGMSteps


class TorchSteps(SGMSteps):
    """Train and test steps under `KERAS_BACKEND=torch` (eager, or `torch.compile` with
    `jit_compile=True`). `cross_replica` has no effect here: `tf.distribute` is TensorFlow's."""

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        embeddings = self(x, training=True)
        self.zero_grad()
        loss = self.compute_loss(
            x=x, y=y, y_pred=embeddings, sample_weight=sample_weight, training=True
        )
        weights = self.trainable_weights[:]
        if weights:
            self.optimizer.scale_loss(loss).backward()
        gradients = [w.value.grad for w in weights]
        with torch.no_grad():
            finite = self._step_is_finite(loss, y, gradients)
            gradients, reported = self._guard(finite, loss, gradients)
            self.optimizer.apply(gradients, weights)
            return self._update_metrics(reported, y, embeddings, x)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        embeddings = self(x, training=False)
        loss = self.compute_loss(
            x=x, y=y, y_pred=embeddings, sample_weight=sample_weight, training=False
        )
        return self._update_metrics(loss, y, embeddings, x)
