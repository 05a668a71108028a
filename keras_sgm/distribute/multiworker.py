"""`MultiWorkerFit`: Keras' `fit` and `evaluate` mended for `MultiWorkerMirroredStrategy`.

This is the one place keras_sgm overrides private methods of Keras' TensorFlow
trainer (`_maybe_symbolic_build`, `_symbolic_build`); `keras_sgm._compat`
pins the Keras versions it is tested with, and `_compat.private` turns a
missing method into a message that says so.
"""

import keras

from keras_sgm import _compat
from keras_sgm.distribute.strategy import _tf, in_multiworker


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
            return _compat.private(super(), "_maybe_symbolic_build")(
                iterator=iterator, data_batch=data_batch
            )
        for _, _, batches in iterator:  # as Keras does: peek at the first batch
            batch = next(batches)
            break
        else:  # no batch at all: Keras' own path says so
            return _compat.private(super(), "_maybe_symbolic_build")(
                iterator=iterator, data_batch=data_batch
            )
        local = keras.tree.map_structure(lambda v: strategy.experimental_local_results(v)[0], batch)
        with strategy.scope():
            _compat.private(self, "_symbolic_build")(data_batch=local)

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
