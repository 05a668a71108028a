"""`tf.distribute` for training runs: mirrored replicas on one machine, or workers across machines.

- `make_strategy("mirrored")`: one replica per GPU; without GPUs (or with
  `replicas`), the CPU split into that many logical devices, which is how the
  tests run two replicas on a laptop.
- `make_strategy("multiworker")`: `MultiWorkerMirroredStrategy`, the cluster
  read from `TF_CONFIG` (`{"cluster": {"worker": ["host:port", ...]}, "task":
  {"type": "worker", "index": i}}`); worker 0 (or the `chief`) is the chief,
  and `train` gives every other worker a directory of its own.

Keras' own `Model.fit` fails under `MultiWorkerMirroredStrategy` with the
Keras (3.15) and TensorFlow (2.21) this project installs, for any model
(`tests/distribute/test_distribute.py` reproduces it with a plain `Sequential`).
`MultiWorkerFit` is the mixin that mends it for keras_sgm's models
(`SGMModel`, and the softmax baseline's `SoftmaxClassifier`); elsewhere it
changes nothing.

With either, `SGMModel(cross_replica=True)` all-gathers the replicas'
embeddings so the Gaussians are estimated from the global batch, and Keras
cuts every class-balanced batch into one contiguous slice per replica, each
balanced when the replicas divide `samples_per_class` (`check_balanced_slices`).
`SGMModel.local_copy()` gives an undistributed twin of a trained model for inference (the
run's evaluation), which needs no collective ops.

Both strategies must be made before TensorFlow runs its first operation.

The package: `strategy` (which strategy, which process), `collectives` (what
replicas do together; no model), `multiworker` (the `fit` patch, behind the
Keras version guard of `keras_sgm._compat`). `tf.distribute` is TensorFlow's:
this package needs `KERAS_BACKEND=tensorflow`.
"""

from keras_sgm.distribute.collectives import (
    broadcast,
    check_balanced_slices,
    check_same_everywhere,
    with_device,
)
from keras_sgm.distribute.multiworker import MultiWorkerFit
from keras_sgm.distribute.strategy import (
    STRATEGIES,
    check_strategy,
    in_multiworker,
    is_chief,
    make_strategy,
    task,
)

__all__ = [
    "STRATEGIES",
    "MultiWorkerFit",
    "broadcast",
    "check_balanced_slices",
    "check_same_everywhere",
    "check_strategy",
    "in_multiworker",
    "is_chief",
    "make_strategy",
    "task",
    "with_device",
]
