import keras
import numpy as np
import pytest

import keras_sgm
from tests import reference
from tests.testing import (
    TestCase,
    assert_same_outputs,
    encoder,
    jit,
    to_numpy,
    toy_data,
)


def _assert_fit_fails_untouched(model, x, y):
    """`fit` on one batch of `(x, y)` stops with a ValueError and changes no weight."""
    weights = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="Non-finite loss or gradients at epoch 1, batch 1"):
        model.fit(x, y, batch_size=len(y), epochs=1, verbose=0)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


class TestSGMModel(TestCase):
    def test_config_round_trip_rebuilds_the_same_model(self):
        x, _ = toy_data()
        init_kwargs = {
            "encoder": encoder(),
            "sigma": 0.9,
            "cross_replica": True,
            "class_names": ["n", "h", "s"],
            "name": "sgm",
        }
        model = keras_sgm.SGMModel(**init_kwargs)
        clone = self.assert_config_round_trip(model, init_kwargs)
        assert clone.encoder is not model.encoder
        assert clone.encoder.get_config() == model.encoder.get_config()
        assert (clone.sigma, clone.cross_replica, clone.class_names) == (0.9, True, ["n", "h", "s"])
        clone.set_weights(model.get_weights())
        assert_same_outputs(model, clone, x)

    @pytest.mark.parametrize("jit_compile", [False, True])
    def test_trains_and_classifies(self, jit_compile):
        x, y = toy_data(n_per_class=40)
        model = keras_sgm.SGMModel(encoder(), class_names=["a", "b", "c"])
        model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
        history = self.run_fit_step(model, x, y, epochs=8, batch_size=60)
        assert set(history) == {"loss", "centroid_accuracy"}
        assert history["loss"][-1] < history["loss"][0]
        assert history["centroid_accuracy"][-1] >= 0.9
        model.fit_gaussians(x, y)
        proba = model.predict_proba(x)
        assert proba.shape == (len(y), 3)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(model.classes_, [0, 3, 40213])
        assert np.mean(model.predict_classes(x) == y) >= 0.9

    def test_save_load_keeps_encoder_gaussians_and_compile(self):
        x, y = toy_data()
        model = keras_sgm.SGMModel(encoder(), sigma=0.9, class_names=["n", "h", "s"])
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        self.run_fit_step(model, x, y, epochs=2, batch_size=36)
        model.fit_gaussians(x, y)
        # same class, weights, embeddings, loss config and evaluation (loss, centroid_accuracy)
        loaded = self.run_model_saving_test(model, x, y)
        assert (loaded.sigma, loaded.class_names) == (0.9, ["n", "h", "s"])
        np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-6)
        np.testing.assert_array_equal(loaded.gaussian_ids, model.gaussian_ids)
        np.testing.assert_array_equal(loaded.gaussian_classes, model.gaussian_classes)
        np.testing.assert_array_equal(loaded.gaussian_means, model.gaussian_means)
        assert isinstance(loaded.loss, keras_sgm.SGMLoss) and loaded.loss.sigma == 0.9
        # still trainable after loading, from the saved optimizer state
        assert loaded.optimizer.iterations.numpy() == model.optimizer.iterations.numpy() == 4
        self.run_fit_step(loaded, x, y, batch_size=36, expect_lower=False)

    def test_an_unfitted_model_saves_without_gaussians(self):
        x, _ = toy_data()
        loaded = self.run_model_saving_test(keras_sgm.SGMModel(encoder(), sigma=1.5), x)
        assert loaded.sigma == 1.5 and len(loaded.gaussian_ids) == 0
        with pytest.raises(ValueError, match="fit_gaussians"):
            loaded.predict_proba(x)


class TestSoftmaxClassifier(TestCase):
    def test_config_fit_and_saving(self):
        x, y = toy_data(classes=(0, 1, 2))
        features = encoder()
        logits = keras.layers.Dense(3, name="logits")(features.output)
        classifier = keras_sgm.SoftmaxClassifier(features.input, logits, name="softmax_cnn")
        clone = self.assert_config_round_trip(classifier)
        clone.set_weights(classifier.get_weights())
        assert_same_outputs(classifier, clone, x)
        classifier.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        history = self.run_fit_step(classifier, x, y, epochs=5, batch_size=24)
        assert history["accuracy"][-1] >= 0.9
        loaded = self.run_model_saving_test(classifier, x, y)
        assert loaded.name == "softmax_cnn"


class TestStopOnNonFinite(TestCase):
    def test_stops_a_plain_keras_fit_at_the_first_non_finite_batch(self):
        x, y = toy_data()
        x[30, 1] = np.nan  # in the second batch of 24
        # A linear encoder: TensorFlow's fused graph ReLU on CPU maps a NaN input to 0, so
        # `encoder()` would give a finite loss (and NaN gradients) for that batch.
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras_sgm.SGMLoss())
        seen = []
        record = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: seen.append(batch)
        )
        with pytest.raises(ValueError, match="Non-finite loss or gradients at epoch 2, batch 2"):
            model.fit(
                x,
                y,
                batch_size=24,
                epochs=3,
                initial_epoch=1,
                shuffle=False,
                verbose=0,
                callbacks=[record, keras_sgm.StopOnNonFinite()],
            )
        assert seen == [0, 1]  # no batch after the non-finite one
        assert model.stop_training

    def test_config(self):
        callback = keras_sgm.StopOnNonFinite()
        assert callback.get_config() == {}
        serialized = keras.saving.serialize_keras_object(callback)
        assert serialized["registered_name"] == "keras_sgm>StopOnNonFinite"

    def test_deserializes(self):
        serialized = keras.saving.serialize_keras_object(keras_sgm.StopOnNonFinite())
        restored = keras.saving.deserialize_keras_object(serialized)
        assert type(restored) is keras_sgm.StopOnNonFinite


def test_evaluate_reports_the_sgm_loss_of_the_batch():
    x, y = toy_data()
    model = keras_sgm.SGMModel(encoder(), sigma=0.7)
    model.compile(optimizer="adam")
    logs = model.evaluate(x, y, batch_size=len(y), verbose=0, return_dict=True)
    embeddings = model.predict(x, verbose=0)
    assert logs["loss"] == pytest.approx(reference.sgm_loss(y, embeddings, 0.7).mean(), rel=1e-4)
    assert logs["centroid_accuracy"] == pytest.approx(
        reference.centroid_accuracy(y, embeddings).mean(), rel=1e-6
    )


def test_fit_gaussians_and_bayes_rule_match_numpy():
    x, y = toy_data()
    model = keras_sgm.SGMModel(encoder(), sigma=1.3)
    model.fit_gaussians(x, y, batch_size=16)
    embeddings = model.predict(x, verbose=0)
    means = np.stack([embeddings[y == c].mean(axis=0) for c in (0, 3, 40213)])
    np.testing.assert_allclose(model.gaussian_means, means, rtol=1e-5, atol=1e-6)
    logits = -((embeddings[:, None] - means[None]) ** 2).sum(-1) / (2 * 1.3**2)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=1e-4, atol=1e-6)


def test_fit_gaussians_from_a_dataset_of_batches():
    import tensorflow as tf

    x, y = toy_data()
    model = keras_sgm.SGMModel(encoder(), sigma=1.3).fit_gaussians(x, y)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    np.testing.assert_allclose(
        keras_sgm.SGMModel(model.encoder, sigma=1.3).fit_gaussians(ds).gaussian_means,
        model.gaussian_means,
        rtol=1e-5,
        atol=1e-6,
    )


def test_sub_class_gaussians_sum_into_their_class():
    model = keras_sgm.SGMModel(encoder(input_dim=2, embedding_dim=2))
    means = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]], "float32")
    model.set_gaussians(means, ids=[10, 11, 20], classes=[1, 1, 2])
    embeddings = np.array([[0.0, 0.1], [3.9, 0.0], [0.2, 3.8]], "float32")
    proba = model.head.posterior(embeddings)
    np.testing.assert_array_equal(model.classes_, [1, 2])
    logits = -((embeddings[:, None] - means[None]) ** 2).sum(-1) / 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(proba, np.stack([p[:, 0] + p[:, 1], p[:, 2]], 1), rtol=1e-5)


def test_non_finite_batch_stops_fit_and_leaves_weights_untouched():
    x, y = toy_data()
    x[5, 2] = np.nan
    model = keras_sgm.SGMModel(encoder())
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    _assert_fit_fails_untouched(model, x, y)


def test_bad_arguments():
    with pytest.raises(ValueError, match="keras.Model"):
        keras_sgm.SGMModel(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="sigma"):
        keras_sgm.SGMModel(encoder(), sigma=-1)
    model = keras_sgm.SGMModel(encoder())
    with pytest.raises(ValueError, match="fit_gaussians"):
        model.predict_proba(np.zeros((2, 6), "float32"))
    with pytest.raises(ValueError, match="6 inputs but 5 labels"):
        model.fit_gaussians(np.zeros((6, 6), "float32"), np.arange(5))
    with pytest.raises(ValueError, match="distinct"):
        model.set_gaussians(np.zeros((2, 4)), ids=[1, 1])
    with pytest.warns(UserWarning, match="differs"):
        model.compile(loss=keras_sgm.SGMLoss(sigma=2.0))


@pytest.mark.parametrize("bad_label", [np.nan, 0.5])
def test_unusable_labels_in_a_traced_step_stop_fit_untouched(bad_label):
    x, y = toy_data()
    y = y.astype("float32")
    y[3] = bad_label  # a NaN id would otherwise form a phantom class with a finite loss
    model = keras_sgm.SGMModel(encoder())
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    _assert_fit_fails_untouched(model, x, y)


def test_labels_are_valid_in_graph():
    from keras_sgm.losses import labels_are_valid

    check = jit(lambda y: labels_are_valid(y))  # compiled: labels are traced, not checked in numpy
    f32 = lambda rows: np.array(rows, "float32")  # noqa: E731
    assert bool(check(f32([0.0, 3.0, 40213.0])))
    assert not bool(check(f32([0.0, np.nan])))
    assert not bool(check(f32([0.0, 2.0**25])))
    assert bool(check(f32([[0.2, 0.8], [1.0, 0.0]])))
    assert not bool(check(f32([[0.2, 0.8], [0.0, 0.0]])))
    assert not bool(check(f32([[1.2, -0.2], [1.0, 0.0]])))
    pairs = jit(lambda y: labels_are_valid(y, pairs=True))
    assert bool(pairs(f32([[0.0, 0.0], [3.0, 0.0]])))  # (sub-class, class) ids
    assert not bool(pairs(f32([[0.0, 0.0], [0.5, 1.0]])))
    assert not bool(pairs(f32([[2.0, 0.0], [2.0, 1.0]])))  # one sub-class, two classes


def test_mixture_loss_trains_on_subclass_class_pairs_and_guards_them():
    x, y = toy_data()
    sub = y * 2 + (np.arange(len(y)) % 2)  # two (arbitrary) sub-classes per class
    pairs = np.stack([sub, y], axis=1).astype("float32")
    model = keras_sgm.SGMModel(encoder())
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras_sgm.SGMLoss(mixture=True))
    history = model.fit(x, pairs, batch_size=len(y), epochs=30, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert 0.0 <= history.history["centroid_accuracy"][-1] <= 1.0
    model.fit_gaussians(x, sub, class_map={int(s): int(s) // 2 for s in np.unique(sub)})
    assert model.classes_.tolist() == np.unique(y).tolist()
    assert np.mean(model.predict_classes(x) == y) > 0.9
    pairs[4, 0] = np.nan  # a bad sub-class id inside the traced step: nothing applied
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras_sgm.SGMLoss(mixture=True))
    _assert_fit_fails_untouched(model, x, pairs)


def _mixed_encoder(seed=0):
    """The toy encoder built under the current dtype policy, its head kept in float32."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, dtype="float32")(hidden))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_the_loss_in_float32(policy):
    x, y = toy_data(n_per_class=40)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = keras_sgm.SGMModel(_mixed_encoder(), class_names=["a", "b", "c"])
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        history = model.fit(x, y, batch_size=60, epochs=8, verbose=0).history
        hidden = model.encoder.layers[1]
        assert hidden.compute_dtype == policy.split("_")[1] and hidden.variable_dtype == "float32"
        scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert scaled == (policy == "mixed_float16")  # Keras wraps the optimizer for float16
        loss = keras_sgm.SGMLoss()(y[:60], to_numpy(model(x[:60])).astype("float16"))
        assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]
    assert history["centroid_accuracy"][-1] >= 0.9
    assert np.mean(model.fit_gaussians(x, y).predict_classes(x) == y) >= 0.9


def test_loss_scale_overflow_skips_steps_instead_of_stopping():
    """Dynamic loss scaling overflows float16 on purpose; only a non-finite loss stops fit."""
    x, y = toy_data(n_per_class=40)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = keras_sgm.SGMModel(_mixed_encoder())
        # 2**30 times the gradients overflows float16 (max 65504) in the hidden layer.
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2), 2.0**30)
        model.compile(optimizer=optimizer)
        weights = [w.copy() for w in model.get_weights()]
        model.fit(x, y, batch_size=len(y), epochs=1, verbose=0)  # skipped, no error
        assert float(optimizer.dynamic_scale.numpy()) == 2.0**29
        for before, after in zip(weights, model.get_weights()):
            np.testing.assert_array_equal(before, after)
        history = model.fit(x, y, batch_size=60, epochs=30, verbose=0).history
    finally:
        keras.config.set_dtype_policy(previous)
    assert float(optimizer.dynamic_scale.numpy()) < 2.0**29  # lowered until finite
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]


def test_posteriors_sum_to_one_to_float32_rounding_far_from_every_gaussian():
    """Large squared distances: exp of a float32 log-softmax alone drifts from 1 by ~1e-6."""
    import keras

    import keras_sgm

    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Identity()])
    model = keras_sgm.SGMModel(encoder, sigma=0.3)
    rng = np.random.default_rng(0)
    means = rng.normal(size=(8, 4)).astype("float32") * 3
    model.set_gaussians(means, np.arange(8))
    embeddings = rng.normal(size=(500, 4)).astype("float32") * 6
    posterior = model.head.posterior(embeddings)
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0, atol=5e-7)
