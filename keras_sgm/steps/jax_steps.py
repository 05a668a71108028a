"""`SGMModel`'s steps on JAX: stateless, as Keras' JAX trainer, so that `jax.jit` compiles them."""

import jax
import keras

from keras_sgm.steps.common import SGMSteps


class JAXSteps(SGMSteps):
    """Train and test steps under `KERAS_BACKEND=jax`.

    Keras' JAX trainer passes the model's state in and takes the new state
    back (`train_step(state, data) -> (logs, state)`); the loss and the
    embeddings come from its `compute_loss_and_updates`, differentiated by
    `jax.value_and_grad`. `cross_replica` has no effect here: `tf.distribute`
    is TensorFlow's (for data parallelism on JAX, see `keras.distribution`).
    """

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        grad_fn = jax.value_and_grad(self.compute_loss_and_updates, has_aux=True)
        (_, aux), gradients = grad_fn(
            trainable,
            non_trainable,
            metrics_variables,
            x,
            y,
            sample_weight,
            training=True,
            optimizer_variables=optimizer_variables,
        )
        loss, embeddings, non_trainable, metrics_variables = aux
        finite = self._step_is_finite(loss, y, gradients)
        gradients, reported = self._guard(finite, loss, gradients)
        trainable, optimizer_variables = self.optimizer.stateless_apply(
            optimizer_variables, gradients, trainable
        )
        logs, metrics_variables = self._stateless_metrics(
            metrics_variables, reported, y, embeddings, x
        )
        return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)

    def test_step(self, state, data):
        trainable, non_trainable, metrics_variables = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        _, (loss, embeddings, non_trainable, metrics_variables) = self.compute_loss_and_updates(
            trainable, non_trainable, metrics_variables, x, y, sample_weight, training=False
        )
        logs, metrics_variables = self._stateless_metrics(metrics_variables, loss, y, embeddings, x)
        return logs, (trainable, non_trainable, metrics_variables)

    def _stateless_metrics(self, metrics_variables, loss, y, embeddings, x):
        """`_update_metrics` on the given metric values: `(logs, new metric values)`."""
        mapping = list(zip(self.metrics_variables, metrics_variables))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            logs = self._update_metrics(loss, y, embeddings, x)
        updated = []
        for variable, value in mapping:
            new = scope.get_current_value(variable)
            updated.append(value if new is None else new)
        return logs, updated
