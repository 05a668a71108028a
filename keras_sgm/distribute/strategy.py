"""Which `tf.distribute` strategy a run trains under, and which process of a cluster this is.

- `make_strategy("mirrored")`: one replica per GPU; without GPUs (or with
  `replicas`), the CPU split into that many logical devices, which is how the
  tests run two replicas on a laptop.
- `make_strategy("multiworker")`: `MultiWorkerMirroredStrategy`, the cluster
  read from `TF_CONFIG` (`{"cluster": {"worker": ["host:port", ...]}, "task":
  {"type": "worker", "index": i}}`); worker 0 (or the `chief`) is the chief.

Both strategies must be made before TensorFlow runs its first operation.
"""

import json
import os

from keras_sgm._backend import require_tensorflow

STRATEGIES = ("none", "mirrored", "multiworker")


def _tf():
    import tensorflow as tf

    return tf


def _tf_config():
    """`TF_CONFIG` as a dict (empty when unset); ValueError when it is not a JSON object."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object; received {raw!r}.")
    return values


def task():
    """`(type, index)` of this process in `TF_CONFIG`, or `("worker", 0)` without a cluster."""
    info = _tf_config().get("task", {})
    return str(info.get("type", "worker")), int(info.get("index", 0))


def is_chief():
    """Whether this process writes the run's outputs: the `chief`, else worker 0."""
    kind, index = task()
    if "chief" in _tf_config().get("cluster", {}):
        return kind == "chief"
    return kind == "worker" and index == 0


def check_strategy(name, replicas=None):
    """Refuse an unknown strategy name, or `replicas` without `"mirrored"` or below 2."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {list(STRATEGIES)}.")
    if replicas is not None and (name != "mirrored" or replicas < 2):
        raise ValueError(
            f"replicas (logical CPU devices) needs strategy 'mirrored' and a value >= 2; "
            f"received strategy {name!r}, replicas {replicas}."
        )


def make_strategy(name="none", replicas=None):
    """The `tf.distribute` strategy of a run, or None for `"none"`.

    Args:
        name: `"none"`, `"mirrored"` or `"multiworker"`.
        replicas: optional int >= 2, mirrored only: split the CPU into this
            many logical devices (ignored when GPUs are present).

    Raises:
        ValueError: an unknown name, `multiworker` without a cluster in
            `TF_CONFIG`, or
            logical devices asked for after TensorFlow started.
    """
    check_strategy(name, replicas)
    if name == "none":
        return None
    require_tensorflow(f"strategy {name!r} (tf.distribute)")
    tf = _tf()
    if name == "multiworker":
        if "cluster" not in _tf_config():
            raise ValueError(
                "strategy 'multiworker' reads the cluster from the TF_CONFIG environment "
                'variable: {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}} on each worker.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus or replicas is None:
        return tf.distribute.MirroredStrategy()
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)]
        )
    except RuntimeError:  # already initialised: use its logical CPUs if there are enough
        pass
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < replicas:
        raise ValueError(
            f"{replicas} CPU replicas were asked for, but TensorFlow started with "
            f"{len(devices)} logical CPU device(s); make the strategy before anything "
            "else runs TensorFlow."
        )
    return tf.distribute.MirroredStrategy(devices[:replicas])


def in_multiworker(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` (the one Keras' `fit` fails under)."""
    tf = _tf()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
