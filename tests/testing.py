"""Shared helpers, in the spirit of keras-hub's TestCase: fit, save, reload, compare.

The module-level helpers (`toy_data`, `encoder`, `save_and_reload`,
`assert_same_outputs`) are used across the test suite. `TestCase` bundles the
checks every public loss, metric, model and layer of `keras_sgm` should pass:
a config round trip, a `.keras` save and reload that keeps outputs and
evaluation, and a real `fit` step. It is a plain base class, so pytest's
fixtures and `parametrize` work on the methods of `class TestX(TestCase)`.
"""

import copy
import inspect
import json
import os
import tempfile

import keras
import numpy as np
import pytest


def toy_data(n_per_class=24, classes=(0, 3, 40213), dim=6, seed=0, spread=0.3):
    """Gaussian blobs, one per class id, as float32 inputs and int labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(classes), dim)) * 2.0
    x = np.concatenate([c + spread * rng.normal(size=(n_per_class, dim)) for c in centres])
    y = np.repeat(np.asarray(classes), n_per_class)
    order = rng.permutation(len(y))
    return x[order].astype("float32"), y[order]


def encoder(input_dim=6, embedding_dim=4, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_dim,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(embedding_dim)(hidden), name="encoder")


def save_and_reload(model, path):
    """Save to `.keras`, load back (after `import keras_sgm`), return the loaded model."""
    model.save(path)
    return keras.saving.load_model(path)


def assert_same_outputs(a, b, x, atol=1e-6):
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), atol=atol)


def to_numpy(value):
    """A tensor of any backend as a NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(value))


BACKEND = keras.backend.backend()

tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="TensorFlow's own (tf.distribute, tf.data internals)"
)
"""Marks a test of a part that is TensorFlow's alone; every other test runs on every backend."""


def jit(fn):
    """`fn` compiled as a train step is, its arguments converted to (traced) tensors.

    `tf.function(jit_compile=True)` on TensorFlow, `jax.jit` on JAX, `fn` itself
    on PyTorch.
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(fn, jit_compile=True)
    elif BACKEND == "jax":
        import jax

        compiled = jax.jit(fn)
    else:
        compiled = fn
    return lambda *args: compiled(*(keras.ops.convert_to_tensor(a) for a in args))


def value_and_grad(fn, x, *args, jit=False):
    """`(fn(x, *args), d fn / d x)` as numpy arrays, on the backend this process runs.

    `fn` returns a scalar. With `jit`, the function is compiled as each backend
    compiles a train step: `tf.function(jit_compile=True)` (XLA) on TensorFlow,
    `jax.jit` on JAX, and eager on PyTorch (`torch.compile` would only slow the
    suite down); `args` are then traced tensors, not constants.
    """
    x = np.asarray(x, "float32")
    args = [keras.ops.convert_to_tensor(a) for a in args]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)

        def step(*a):
            with tf.GradientTape() as tape:
                value = fn(variable, *a)
            return value, tape.gradient(value, variable)

        value, grad = (tf.function(step, jit_compile=True) if jit else step)(*args)
    elif BACKEND == "jax":
        import jax

        step = jax.value_and_grad(fn)
        value, grad = (jax.jit(step) if jit else step)(keras.ops.convert_to_tensor(x), *args)
    elif BACKEND == "torch":
        import torch

        variable = torch.tensor(x, requires_grad=True)
        value = fn(variable, *args)
        value.backward()
        grad = variable.grad
    else:
        pytest.skip(f"no gradients on the {BACKEND!r} backend")
    return float(to_numpy(value)), to_numpy(grad)


def _plain(value):
    """Whether `value` is a plain config value (not a Keras object to serialize)."""
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str, np.number))


class TestCase:
    """Base class of test classes: the checks shared by losses, metrics, models and layers.

    - `assert_config_round_trip(obj, init_kwargs)`: `get_config` names every
      constructor argument and `from_config` / `keras.saving` rebuild an equal object.
    - `run_fit_step(model, x, y)`: a real `fit` that changes every trainable
      weight, stays finite and (by default) lowers the loss (`evaluate_loss`).
    - `run_model_saving_test(model, x, y)`: a `.keras` save and reload keeps the
      class, weights, outputs and (compiled) loss and evaluation.
    - `run_loss_test(cls, init_kwargs, y_true, y_pred)`: values, reductions, config,
      and a small encoder compiled with the loss trained, saved and reloaded.
    - `run_metric_test(cls, init_kwargs, y_true, y_pred, expected)`: the state
      (update, accumulate, reset), config, and the metric compiled into a model.
    - `run_layer_test(layer, input_data, expected_output_shape)`: a layer or
      functional model called, rebuilt from its config, trained and saved.
    """

    # ------------------------------------------------------------------ config
    def assert_config_round_trip(self, obj, init_kwargs=None, skip=(), check_signature=None):
        """Check `obj`'s config describes it fully; return the object rebuilt from it.

        Args:
            obj: a loss, metric, layer, model or callback.
            init_kwargs: the constructor arguments `obj` was made with; the plain
                ones (numbers, strings, flags, lists) must appear unchanged in its config.
            skip: constructor argument names not to require in the config.
            check_signature: whether every named argument of `type(obj).__init__`
                must be a config key; default: yes, except for functional models,
                whose config holds the layer graph instead of `inputs` / `outputs`.
        """
        cls = type(obj)
        config = obj.get_config()
        functional = {"layers", "input_layers", "output_layers"} <= set(config)
        if check_signature is None:
            check_signature = not functional
        if check_signature:
            variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            params = inspect.signature(cls.__init__).parameters.values()
            missing = [
                p.name
                for p in params
                if p.name != "self" and p.kind not in variadic and p.name not in skip
                if p.name not in config
            ]
            assert not missing, f"{cls.__name__}.get_config() lacks the arguments {missing}."
        for key, value in (init_kwargs or {}).items():
            if key not in skip and _plain(value):
                expected = list(value) if isinstance(value, tuple) else value
                got = config.get(key, "<missing>")
                assert got == expected, f"config[{key!r}] is {got!r}, not {value!r}"
        # from_config may consume nested configs (Keras' functional models do): pass copies.
        clone = cls.from_config(copy.deepcopy(config))
        assert type(clone) is cls
        assert clone.get_config() == config
        serialized = keras.saving.serialize_keras_object(obj)
        json.dumps(serialized)  # `.keras` files store configs as JSON
        if not functional:  # Keras' own graph configs: `run_model_saving_test` covers them
            restored = keras.saving.deserialize_keras_object(copy.deepcopy(serialized))
            assert type(restored) is cls
            assert restored.get_config() == config
        return clone

    # --------------------------------------------------------------- training
    @staticmethod
    def evaluate_loss(model, x, y, batch_size=None):
        """The compiled loss of `model` on `(x, y)`, by default as a single batch."""
        logs = model.evaluate(x, y, batch_size=batch_size or len(x), verbose=0, return_dict=True)
        return float(logs["loss"])

    def run_fit_step(
        self,
        model,
        x,
        y,
        epochs=1,
        batch_size=None,
        expect_lower=True,
        all_weights_change=True,
        **fit_kwargs,
    ):
        """Fit a compiled `model` for real and check what the step did; return the history.

        Every reported loss must be finite, every weight finite afterwards, and every
        trainable weight changed (`all_weights_change`; else at least one). With
        `expect_lower`, the single-batch evaluation loss must be lower afterwards.
        """
        assert model.compiled, "run_fit_step needs a compiled model"
        before = [to_numpy(v).copy() for v in model.trainable_variables]
        assert before, f"{model.name} has no trainable weights"
        if expect_lower:
            loss_before = self.evaluate_loss(model, x, y)
        history = model.fit(
            x, y, batch_size=batch_size, epochs=epochs, verbose=0, **fit_kwargs
        ).history
        assert len(history["loss"]) == epochs
        assert np.all(np.isfinite(history["loss"])), history["loss"]
        after = [to_numpy(v) for v in model.trainable_variables]
        assert all(np.all(np.isfinite(a)) for a in after), "fit left non-finite weights"
        unchanged = [
            v.path
            for v, b, a in zip(model.trainable_variables, before, after)
            if np.array_equal(b, a)
        ]
        if all_weights_change:
            assert not unchanged, f"fit did not change {unchanged}"
        else:
            assert len(unchanged) < len(after), "fit changed no weight"
        if expect_lower:
            loss_after = self.evaluate_loss(model, x, y)
            assert loss_after < loss_before, (loss_before, loss_after)
        return history

    # ----------------------------------------------------------------- saving
    def run_model_saving_test(self, model, x, y=None, atol=1e-6):
        """Save `model` as `.keras`, reload it, check it is the same model; return it.

        The reloaded model has the same class, name, weights (paths and values) and
        predictions (to `atol`). If `model` is compiled, its loss comes back with the
        same class and config, and with `y` given, `evaluate` gives the same values.
        """
        with tempfile.TemporaryDirectory() as folder:
            loaded = save_and_reload(model, os.path.join(folder, "model.keras"))
        assert type(loaded) is type(model)
        assert loaded.name == model.name
        assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
        for saved, back in zip(model.weights, loaded.weights):
            np.testing.assert_array_equal(to_numpy(back), to_numpy(saved), err_msg=saved.path)
        assert_same_outputs(model, loaded, x, atol=atol)
        if getattr(model, "compiled", False):
            assert loaded.compiled
            if isinstance(model.loss, keras.losses.Loss):
                assert type(loaded.loss) is type(model.loss)
                assert loaded.loss.get_config() == model.loss.get_config()
            if y is not None:
                kwargs = dict(batch_size=len(x), verbose=0, return_dict=True)
                expected = model.evaluate(x, y, **kwargs)
                got = loaded.evaluate(x, y, **kwargs)
                assert set(got) == set(expected)
                for key, value in expected.items():
                    np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-7, err_msg=key)
        return loaded

    # ----------------------------------------------------------------- losses
    def run_loss_test(
        self,
        cls,
        init_kwargs,
        y_true,
        y_pred,
        expected_shape=(),
        fit_data=None,
        skip=(),
        epochs=3,
        batch_size=24,
    ):
        """Check a `keras.losses.Loss` class end to end; return its value on `(y_true, y_pred)`.

        - The loss of `cls(**init_kwargs)` has `expected_shape` and is finite; unless
          `init_kwargs` sets the reduction, the per-sample losses (`reduction=None`)
          have one value per row and average to it.
        - Its config round trip (`assert_config_round_trip`) gives a loss of equal value.
        - A small `encoder` compiled with it lowers it on `fit_data` (default
          `toy_data()`) within `epochs`, and survives a `.keras` save and reload
          (`run_model_saving_test`), evaluation included.
        """
        loss = cls(**init_kwargs)
        value = to_numpy(loss(y_true, y_pred))
        assert value.shape == tuple(expected_shape)
        assert np.all(np.isfinite(value))
        if "reduction" not in init_kwargs:
            per_sample = to_numpy(cls(**init_kwargs, reduction=None)(y_true, y_pred))
            assert per_sample.shape == (len(y_pred),)
            np.testing.assert_allclose(per_sample.mean(), value, rtol=1e-5, atol=1e-7)
        clone = self.assert_config_round_trip(loss, init_kwargs, skip=skip)
        np.testing.assert_allclose(to_numpy(clone(y_true, y_pred)), value, rtol=1e-6, atol=1e-7)

        x, y = fit_data if fit_data is not None else toy_data()
        model = encoder(input_dim=x.shape[1])
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
        self.run_fit_step(model, x, y, epochs=epochs, batch_size=batch_size)
        self.run_model_saving_test(model, x, y)
        return value

    # ---------------------------------------------------------------- metrics
    def run_metric_test(
        self, cls, init_kwargs, y_true, y_pred, expected, reference=None, fit_data=None
    ):
        """Check a `keras.metrics.Metric` class end to end; return the trained model.

        - `cls(**init_kwargs)` updated with `(y_true, y_pred)` gives `expected`; a
          second identical update keeps it, `reset_state` brings it back to 0.
        - Its config round trip gives a metric with the same result.
        - Compiled into an `encoder` with `SGMLoss`, it is reported by a `fit` step
          (finite) and by `evaluate`; with `reference(y, embeddings)` (the expected value for one
          batch), `evaluate`'s single-batch value must match it. The model then
          survives a `.keras` save and reload with the same evaluation.
        """
        import keras_sgm

        metric = cls(**init_kwargs)
        metric.update_state(y_true, y_pred)
        np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-6, atol=1e-7)
        metric.update_state(y_true, y_pred)
        np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-6, atol=1e-7)
        metric.reset_state()
        assert float(metric.result()) == 0.0
        clone = self.assert_config_round_trip(metric, init_kwargs)
        clone.update_state(y_true, y_pred)
        np.testing.assert_allclose(float(clone.result()), expected, rtol=1e-6, atol=1e-7)

        x, y = fit_data if fit_data is not None else toy_data()
        model = encoder(input_dim=x.shape[1])
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras_sgm.SGMLoss(),
            metrics=[cls(**init_kwargs)],
        )
        name = cls(**init_kwargs).name
        history = self.run_fit_step(model, x, y, epochs=2, batch_size=24, expect_lower=False)
        assert np.all(np.isfinite(history[name])), history
        logs = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
        if reference is not None:
            embeddings = model.predict(x, verbose=0)
            np.testing.assert_allclose(logs[name], reference(y, embeddings), rtol=1e-6)
        self.run_model_saving_test(model, x, y)
        return model

    # ----------------------------------------------------------------- layers
    def run_layer_test(
        self,
        layer,
        input_data,
        expected_output_shape,
        y=None,
        loss=None,
        atol=1e-5,
        fit_kwargs=None,
        skip=(),
        saving=True,
    ):
        """Check a built layer (or functional model) end to end; return the fit history.

        - Called on `input_data` (inference mode) it gives finite outputs of
          `expected_output_shape`.
        - Rebuilt from its config (`assert_config_round_trip`, with `skip`) and given
          its weights, it gives the same outputs (to `atol`).
        - With labels `y`, the model (the layer itself if it is a model, else
          `Input -> layer`) compiled with `loss` (default `SGMLoss()`) takes a real
          `fit` step that changes every trainable weight (`run_fit_step`).
        - With `saving`, the model survives a `.keras` save and reload
          (`run_model_saving_test`).
        """
        import keras_sgm

        output = to_numpy(layer(input_data, training=False))
        assert output.shape == tuple(expected_output_shape)
        assert np.all(np.isfinite(output))
        clone = self.assert_config_round_trip(layer, skip=skip)
        if not clone.built:
            clone(input_data, training=False)
        clone.set_weights(layer.get_weights())
        np.testing.assert_allclose(to_numpy(clone(input_data, training=False)), output, atol=atol)

        model = layer
        if not isinstance(layer, keras.Model):
            model = keras.Sequential([keras.Input(input_data.shape[1:]), layer])
        history = None
        if y is not None:
            model.compile(
                optimizer=keras.optimizers.Adam(1e-3),
                loss=loss if loss is not None else keras_sgm.SGMLoss(),
                jit_compile=False,
            )
            history = self.run_fit_step(
                model, input_data, y, expect_lower=False, **(fit_kwargs or {})
            )
        if saving:
            self.run_model_saving_test(model, input_data, atol=atol)
        return history
