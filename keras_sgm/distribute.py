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
(`tests/test_distribute.py` reproduces it with a plain `Sequential`).
`MultiWorkerFit` is the mixin that mends it for keras_sgm's models
(`SGMModel`, and the softmax baseline's `SoftmaxClassifier`); elsewhere it
changes nothing.

With either, `SGMModel(cross_replica=True)` all-gathers the replicas'
embeddings so the Gaussians are estimated from the global batch, and Keras
cuts every class-balanced batch into one contiguous slice per replica, each
balanced when the replicas divide `samples_per_class` (`check_balanced_slices`).
`local_copy` gives an undistributed twin of a trained model for inference (the
run's evaluation), which needs no collective ops.

Both strategies must be made before TensorFlow runs its first operation.
"""

import json
import os

import keras
import numpy as np

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


def check_balanced_slices(samples_per_class, num_replicas):
    """Refuse replica counts that would cut class-balanced batches into unbalanced slices.

    A batch interleaved by class (`c1, ..., cP, c1, ...`) holding
    `samples_per_class` rows of each class splits into `num_replicas`
    contiguous slices of `samples_per_class / num_replicas` rows per class.
    """
    if samples_per_class % num_replicas:
        raise ValueError(
            f"samples_per_class={samples_per_class} does not divide among {num_replicas} "
            "replicas: each replica's slice of a batch would hold unequal classes. Choose a "
            f"multiple of {num_replicas}."
        )


def local_copy(model):
    """An undistributed twin of a (distributed) keras_sgm `SGMModel`, with its weights.

    Its `predict` runs on this process alone, with no collective ops, so every
    worker may use it, or only the chief.
    """
    from keras_sgm.model import SGMModel

    twin = SGMModel.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    return twin.set_gaussians(model.gaussian_means, model.gaussian_ids, model.gaussian_classes)


def in_multiworker(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` (the one Keras' `fit` fails under)."""
    tf = _tf()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def with_device(values):
    """`values` (tensors or None), each given this worker's device if it has none.

    Under `MultiWorkerMirroredStrategy` with one device per worker, an
    all-gather refuses a tensor with no device ("destinations can not be
    empty"): the labels a distributed dataset yields have none. Elsewhere the
    values come back as they are.
    """
    tf = _tf()
    strategy = tf.distribute.get_strategy()
    devices = strategy.extended.worker_devices
    if not in_multiworker(strategy) or len(devices) != 1:
        return tuple(values)
    with tf.device(devices[0]):
        return tuple(v if v is None or v.device else tf.identity(v) for v in values)


def broadcast(values, strategy):
    """The first replica's `values` (a float array of the same shape on every worker), everywhere.

    A sum over the replicas in which only replica 0 counts: every worker of
    `strategy` must call it at the same point, as callbacks do. Used where
    workers compute a value that should agree but may not (the sub-class
    labels of a DGMS split: each worker keeps its own BatchNormalization
    statistics, and threaded k-means need not agree to the bit).
    """
    tf = _tf()
    values = np.asarray(values)

    def first(v):
        context = tf.distribute.get_replica_context()
        is_first = tf.equal(context.replica_id_in_sync_group, 0)  # others add 0, even for NaN
        mine = tf.where(is_first, v, tf.zeros_like(v))
        return context.all_reduce(tf.distribute.ReduceOp.SUM, mine)

    result = tf.function(lambda v: strategy.run(first, args=(v,)))(tf.constant(values))
    return strategy.experimental_local_results(result)[0].numpy()


def check_same_everywhere(value, strategy, what):
    """Refuse a number that differs between the workers of `strategy` (all must call it).

    E.g. the epochs each worker's backup records when a multi-worker run
    resumes: workers that start from different epochs would train apart.
    """
    tf = _tf()

    def every(v):
        (v,) = with_device([tf.reshape(v, [1])])
        return tf.distribute.get_replica_context().all_gather(v, axis=0)

    result = tf.function(lambda v: strategy.run(every, args=(v,)))(tf.constant(float(value)))
    seen = strategy.experimental_local_results(result)[0].numpy()
    if seen.min() != seen.max():
        kind, index = task()
        raise ValueError(
            f"The workers disagree on the {what}: {', '.join(f'{v:g}' for v in seen)} "
            f"(this worker, {kind} {index}: {value}). Give every worker the same state: copy "
            "the chief's OUTPUT/backup/ (and OUTPUT/dgms_state.json, if any) into each "
            "OUTPUT/workers/<task>_<i>/, then restart them all with --resume."
        )


class MultiWorkerFit:
    """Mixin for `keras.Model` subclasses: `fit` and `evaluate` under `MultiWorkerMirroredStrategy`.

    Keras 3.15's TensorFlow trainer fails there in two places, for any model:

    1. before the first step, `fit` reduces the first distributed batch with
       `strategy.reduce("MEAN", batch, axis=None)` to build the model from
       it, which raises "Attempt to convert a value (PerReplica...)". Here the
       model is built from this worker's own slice of that batch.
    2. every step's logs are reduced with `strategy.reduce("MEAN", log,
       axis=0)`, which fails on scalar logs ("Invalid reduction dimension 0
       for input with 0 dimensions"). Here they are averaged over the
       replicas with `axis=None`.

    The train and test functions below run `steps_per_execution` steps of
    `train_step` / `test_step` (one `tf.function` call each) and return the
    last step's logs, as Keras' own do. Under any other strategy, or none,
    every method defers to Keras.

    Put it before `keras.Model` in the bases:
    `class MyModel(MultiWorkerFit, keras.Model)`.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self.distribute_strategy
        if iterator is None or not in_multiworker(strategy):
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:  # as Keras does: peek at the first batch
            batch = next(batches)
            break
        else:  # no batch at all: Keras' own path says so
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        local = keras.tree.map_structure(lambda v: strategy.experimental_local_results(v)[0], batch)
        with strategy.scope():
            self._symbolic_build(data_batch=local)

    def make_train_function(self, force=False):
        if not in_multiworker(self.distribute_strategy):
            return super().make_train_function(force)
        if self.train_function is None or force:
            self.train_function = self._multiworker_function(self.train_step)
        return self.train_function

    def make_test_function(self, force=False):
        if not in_multiworker(self.distribute_strategy):
            return super().make_test_function(force)
        if self.test_function is None or force:
            self.test_function = self._multiworker_function(self.test_step)
        return self.test_function

    def _multiworker_function(self, step):
        tf = _tf()
        strategy = self.distribute_strategy

        def one_step(data):
            logs = strategy.run(step, args=(data,))
            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), logs)

        if not self.run_eagerly:
            one_step = tf.function(one_step, reduce_retracing=True, jit_compile=self.jit_compile)

        def function(iterator):
            logs = None
            for _ in range(self.steps_per_execution):
                try:
                    data = next(iterator)
                except StopIteration:
                    if logs is None:
                        raise
                    break
                logs = one_step(data)
            return logs

        return function
