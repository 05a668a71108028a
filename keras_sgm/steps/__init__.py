"""`SGMModel`'s train and test steps, one class per Keras backend.

Keras 3 gives every backend its own trainer (`keras.src.backend.jax.trainer`,
`...tensorflow.trainer`, `...torch.trainer`) and picks one when `keras.Model`
is defined. keras_sgm does the same for `SGMModel`'s steps: `Steps` below is
the class for the backend this process runs, and `SGMModel` inherits from it.
What the steps share (the finite-value guard, the label check, the metrics) is
written once, in `keras.ops`, in `keras_sgm.steps.common`; each backend module
only computes gradients and applies them its own way.

- `tensorflow_steps.TensorFlowSteps`: `tf.GradientTape`, plus `tf.distribute`
  (the cross-replica gather and `MultiWorkerMirroredStrategy`).
- `jax_steps.JAXSteps`: the stateless `train_step(state, data)` of Keras' JAX
  trainer, `jax.value_and_grad`; runs under `jax.jit` (`jit_compile=True`, the
  JAX default) or eagerly.
- `torch_steps.TorchSteps`: `loss.backward()`, as Keras' torch trainer.

`DistributedFit` is the mixin that lets any `keras.Model` subclass (the softmax
baseline) train under `MultiWorkerMirroredStrategy` on TensorFlow, and
`SingleProcessFit` (nothing to mend) elsewhere.

Any other backend (`numpy`, `openvino`: inference only in Keras) gets
`common.InferenceOnlySteps`, whose `fit` and `evaluate` say so at once.
"""

import keras

from keras_sgm.steps.common import InferenceOnlySteps, SGMSteps, SingleProcessFit

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    from keras_sgm.distribute.multiworker import MultiWorkerFit as DistributedFit
    from keras_sgm.steps.tensorflow_steps import TensorFlowSteps as Steps
elif BACKEND == "jax":
    from keras_sgm.steps.jax_steps import JAXSteps as Steps

    DistributedFit = SingleProcessFit
elif BACKEND == "torch":
    from keras_sgm.steps.torch_steps import TorchSteps as Steps

    DistributedFit = SingleProcessFit
else:
    Steps, DistributedFit = InferenceOnlySteps, SingleProcessFit

__all__ = [
    "BACKEND",
    "DistributedFit",
    "InferenceOnlySteps",
    "SGMSteps",
    "SingleProcessFit",
    "Steps",
]
