"""What `SGMModel`'s steps do on every backend: the finite-value guard and the metrics.

A batch with a non-finite loss or gradient, or unusable labels (NaN, fractional
ids, empty soft-label rows, a sub-class under two classes) never reaches the
weights: its gradients are zeroed, its loss is reported as NaN, and
`StopOnNonFinite` (which `SGMModel.fit` adds) stops `fit` with an error. The
checks run inside the compiled step, on every backend, as `keras.ops`.
"""

import keras
import numpy as np
from keras import ops

from keras_sgm import _backend, _compat
from keras_sgm.losses import labels_are_valid


class SGMSteps:
    """Backend-neutral parts of `SGMModel.train_step` / `test_step`, as methods of the model.

    Each backend's step class (`keras_sgm.steps.Steps`) inherits from this one;
    it computes the embeddings, the loss and the gradients its backend's way,
    then calls `_step_is_finite`, `_guard` and `_update_metrics`.
    """

    def _label_pairs(self, y):
        """Whether `y` holds (sub-class, class) pairs for a mixture `SGMLoss` (DGMS)."""
        mixture = getattr(self.loss, "label_pairs", False)
        return bool(mixture) and y is not None and len(y.shape) == 2 and y.shape[-1] == 2

    def _step_is_finite(self, loss, y, gradients):
        """A scalar boolean tensor: the loss, the labels and (unless loss-scaled) the gradients
        are usable."""
        checks = [ops.all(ops.isfinite(loss)), labels_are_valid(y, self._label_pairs(y))]
        # Under mixed_float16 Keras wraps the optimizer in a LossScaleOptimizer,
        # whose scaled gradients overflow now and then by design: it skips
        # those steps and lowers the scale itself, so the gradients are not checked.
        if not isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            checks += [ops.all(ops.isfinite(g)) for g in gradients if g is not None]
        return ops.all(ops.stack(checks))

    @staticmethod
    def _guard(finite, loss, gradients):
        """Zero the gradients and report a NaN loss unless `finite`: `(gradients, loss)`."""
        gradients = [
            None if g is None else ops.where(finite, g, ops.zeros_like(g)) for g in gradients
        ]
        return gradients, ops.where(finite, loss, ops.full_like(loss, np.nan))

    def _update_metrics(self, loss, y, embeddings, x):
        """Update the loss tracker and `centroid_accuracy`; return the logs."""
        batch = ops.shape(keras.tree.flatten(x)[0])[0]
        _compat.private(self, "_loss_tracker").update_state(loss, sample_weight=batch)
        if self._label_pairs(y):  # DGMS (sub-class, class) pairs: the batch's Gaussians
            y = y[:, 0]
        self.centroid_accuracy_tracker.update_state(y, embeddings)
        return self.compute_metrics(x, y, embeddings)


class SingleProcessFit:
    """`DistributedFit` where there is no `tf.distribute` to mend: Keras' own `fit`."""


class InferenceOnlySteps(SGMSteps):
    """Steps for a backend Keras cannot train on (`numpy`, `openvino`): they say so."""

    def train_step(self, *args, **kwargs):
        _backend.require_training_backend("SGMModel.fit")

    def test_step(self, *args, **kwargs):
        _backend.require_training_backend("SGMModel.evaluate")
