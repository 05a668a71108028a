"""What the replicas of a distributed run do together: slices, all-gathers and agreement.

Nothing here builds or imports a model; `keras_sgm.model` and
`keras_sgm.dgms` call these inside their steps and callbacks.
"""

import numpy as np

from keras_sgm.distribute.strategy import _tf, in_multiworker, task


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
