import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import normalized_mutual_info_score

import keras_sgm
from keras_sgm import backbones
from keras_sgm.data import ClassBalancedSampler
from keras_sgm.dgms import SubclassSplitter, feature_extractor, representation
from tests.testing import save_and_reload


def _two_mode_classes(per_blob=16, seed=0):
    """Classes 0 and 5, each made of two far-apart blobs; returns x, y, hidden blob ids."""
    rng = np.random.default_rng(seed)
    centres = [(0, 0), (0, 8), (8, 0), (8, 8)]
    x = np.concatenate([rng.normal(c, 0.2, (per_blob, 2)) for c in centres]).astype("float32")
    hidden = np.repeat(np.arange(4), per_blob)
    y = np.array([0, 0, 5, 5])[hidden]
    order = rng.permutation(len(y))
    return x[order], y[order], hidden[order]


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    encoder = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(2, name="embedding"),
        ]
    )
    model = keras_sgm.SGMModel(encoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


class _LabelRecorder:
    """Wraps a dataset so that the labels of every batch it produces are recorded."""

    def __init__(self, dataset):
        self.batches = []

        def record(y):
            self.batches.append(y.numpy())
            return y

        def tap(x, y):
            recorded = tf.py_function(record, [y], y.dtype)
            return x, tf.ensure_shape(recorded, y.shape)

        self.dataset = dataset.map(tap)


def test_split_finds_hidden_modes_relabels_the_next_epoch_and_keeps_the_map(tmp_path):
    x, y, hidden = _two_mode_classes()
    sampler = ClassBalancedSampler(x, y, samples_per_class=4, seed=0)
    steps = sampler.steps_per_epoch
    recorder = _LabelRecorder(sampler.dataset(steps=steps))
    splitter = SubclassSplitter(sampler, every=1, levels=1, representation="pixels", verbose=0)
    model = _model()
    model.fit(recorder.dataset, epochs=2, callbacks=[splitter], verbose=0)

    assert splitter.level == 1 and splitter.num_subclasses == 4
    assert normalized_mutual_info_score(hidden, splitter.labels) == pytest.approx(1.0)
    assert splitter.class_of.tolist() == [0, 0, 5, 5]
    np.testing.assert_array_equal(sampler.labels.numpy(), splitter.labels)
    # Epoch 1 trained on the 2 classes, epoch 2 on the 4 sub-classes, same length.
    first, second = recorder.batches[:steps], recorder.batches[steps : 2 * steps]
    assert len(second) == steps
    assert all(sorted(b.tolist()) == [0] * 4 + [5] * 4 for b in first)
    assert all(np.bincount(b, minlength=4).tolist() == [4, 4, 4, 4] for b in second)
    # The model's Gaussians are the sub-classes, mapped back to the classes...
    assert model.gaussian_ids.tolist() == [0, 1, 2, 3]
    assert model.gaussian_classes.tolist() == [0, 0, 5, 5]
    assert model.classes_.tolist() == [0, 5]
    assert model.predict_proba(x).shape == (len(x), 2)
    # ... and are saved with it.
    loaded = save_and_reload(model, tmp_path / "dgms.keras")
    np.testing.assert_array_equal(loaded.gaussian_classes, model.gaussian_classes)
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-6)
    entry = splitter.history[0]
    assert entry["epoch"] == 1 and entry["subclasses"] == 4
    assert entry["subclasses_per_class"] == {0: 2, 5: 2}


def test_schedule_levels_and_cap():
    x, y, _ = _two_mode_classes(per_blob=24)
    sampler = ClassBalancedSampler(x, y, samples_per_class=3, seed=0)
    splitter = SubclassSplitter(
        sampler, every=2, levels=2, max_subclasses=3, representation="pixels", verbose=0
    )
    model = _model()
    model.fit(
        sampler.dataset(steps=sampler.steps_per_epoch), epochs=5, callbacks=[splitter], verbose=0
    )
    assert [h["epoch"] for h in splitter.history] == [2, 4]
    # Level 1: 2 -> 4 sub-classes; level 2 may add one more per class (cap 3), not two.
    assert splitter.history[0]["subclasses"] == 4
    assert all(n <= 3 for n in splitter.history[1]["subclasses_per_class"].values())
    assert splitter.num_subclasses == len(np.unique(splitter.labels))


def test_unsplittable_classes_are_kept_whole_without_a_crash(caplog):
    x, y, _ = _two_mode_classes()
    x[y == 5] = 1.0  # class 5: every representation equal
    x = np.concatenate([x, np.full((5, 2), 3.0, "float32")])  # class 9: too small
    y = np.concatenate([y, np.full(5, 9)])
    sampler = ClassBalancedSampler(x, y, samples_per_class=4, seed=0)
    splitter = SubclassSplitter(sampler, representation="pixels", verbose=0)
    model = _model()
    with caplog.at_level("INFO", logger="keras_sgm.dgms.callback"):
        model.fit(
            sampler.dataset(steps=sampler.steps_per_epoch),
            epochs=2,
            callbacks=[splitter],
            verbose=0,
        )
    assert splitter.class_of.tolist() == [0, 0, 5, 9]
    decisions = splitter.history[0]["decisions"]
    assert any("class 5: all 32 examples have the same" in d for d in decisions), decisions
    assert any("class 9: 5 examples, too few" in d for d in decisions)
    assert "class 9: 5 examples" in caplog.text
    assert np.isfinite(model.predict_proba(x)).all()


def test_state_file_resumes_the_phase(tmp_path):
    x, y, _ = _two_mode_classes()
    state = tmp_path / "dgms_state.json"
    sampler = ClassBalancedSampler(x, y, samples_per_class=4, seed=0)
    first = SubclassSplitter(sampler, representation="pixels", state_path=state, verbose=0)
    model = _model()
    model.fit(
        sampler.dataset(steps=sampler.steps_per_epoch), epochs=1, callbacks=[first], verbose=0
    )
    assert json.loads(state.read_text())["level"] == 1

    # A new process: fresh sampler on the original labels, same state file.
    fresh = ClassBalancedSampler(x, y, samples_per_class=4, seed=1)
    second = SubclassSplitter(
        fresh, levels=1, representation="pixels", state_path=state, resume=True, verbose=0
    )
    model.fit(fresh.dataset(steps=fresh.steps_per_epoch), epochs=1, callbacks=[second], verbose=0)
    assert second.level == 1 and len(second.history) == 1  # no second split
    np.testing.assert_array_equal(second.labels, first.labels)
    np.testing.assert_array_equal(fresh.labels.numpy(), first.labels)

    other = ClassBalancedSampler(x[:-4], y[:-4], samples_per_class=4)
    with pytest.raises(ValueError, match="other training labels"):
        SubclassSplitter(other, state_path=state, resume=True, verbose=0).on_train_begin()
    # Without resume=True an old state is not read (it is replaced at the next split).
    ignored = SubclassSplitter(ClassBalancedSampler(x, y, 4), state_path=state, verbose=0)
    ignored.on_train_begin()
    assert ignored.level == 0 and ignored.class_of is None


def test_a_second_fit_goes_on_splitting():
    x, y, _ = _two_mode_classes(per_blob=24)
    sampler = ClassBalancedSampler(x, y, samples_per_class=3, seed=0)
    splitter = SubclassSplitter(sampler, levels=2, representation="pixels", verbose=0)
    model = _model()
    data = sampler.dataset(steps=sampler.steps_per_epoch)
    model.fit(data, epochs=1, callbacks=[splitter], verbose=0)
    model.fit(data, epochs=1, callbacks=[splitter], verbose=0)  # epochs count from 0 again
    assert splitter.level == 2 and len(splitter.history) == 2


def test_label_sized_dataset_warns_at_train_begin():
    x, y, _ = _two_mode_classes()
    sampler = ClassBalancedSampler(x, y, samples_per_class=4, seed=0)
    sampler.dataset()
    with pytest.warns(UserWarning, match=r"dataset\(steps="):
        SubclassSplitter(sampler, verbose=0).on_train_begin()


def test_features_are_the_input_of_the_embedding_head():
    encoder = backbones.get("fmpnet", input_shape=(32, 32, 1), embedding_dim=8)
    model = keras_sgm.SGMModel(encoder)
    images = np.random.default_rng(0).random((3, 32, 32, 1)).astype("float32")
    features = representation(model, images, "features")
    head = encoder.get_layer("embedding")
    assert features.shape == (3, head.input.shape[-1])
    np.testing.assert_allclose(
        head(features).numpy(), model.predict(images, verbose=0), rtol=1e-4, atol=1e-5
    )
    assert feature_extractor(encoder).output.shape[-1] == features.shape[1]
    assert representation(model, images, "pixels").shape == (3, 32 * 32)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every": 0}, "every"),
        ({"clusters": 1}, "clusters"),
        ({"levels": -1}, "levels"),
        ({"max_subclasses": 0}, "max_subclasses"),
        ({"representation": "logits"}, "logits"),
        ({"method": "dbscan"}, "dbscan"),
        ({"min_size": -3}, "min_size"),
        ({"min_size": 2.5}, "min_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"pca_dims": -1}, "pca_dims must be a positive int or None; received -1"),
    ],
)
def test_bad_options(kwargs, message):
    x, y, _ = _two_mode_classes()
    sampler = ClassBalancedSampler(x, y, samples_per_class=4)
    with pytest.raises(ValueError, match=message):
        SubclassSplitter(sampler, **kwargs)


def test_mixture_training_through_a_split():
    x, y, hidden = _two_mode_classes()
    sampler = ClassBalancedSampler(x, y, samples_per_class=4, seed=0)
    recorder = _LabelRecorder(sampler.dataset(steps=sampler.steps_per_epoch, with_classes=True))
    splitter = SubclassSplitter(sampler, verbose=0)  # default representation: pixels
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras_sgm.SGMLoss(mixture=True))
    model.fit(recorder.dataset, epochs=3, callbacks=[splitter], verbose=0)
    last = recorder.batches[-1]  # (sub-class, class) pairs after the split
    assert last.shape[1] == 2 and set(last[:, 0].tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(splitter.class_of[last[:, 0]], last[:, 1])
    assert normalized_mutual_info_score(hidden, splitter.labels) == pytest.approx(1.0)
    assert model.gaussian_classes.tolist() == [0, 0, 5, 5]
    assert np.mean(model.predict_classes(x) == y) > 0.9


def test_features_of_a_subclassed_encoder_fail_at_train_begin():
    class Encoder(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    x, y, _ = _two_mode_classes()
    sampler = ClassBalancedSampler(x, y, samples_per_class=4, seed=0)
    model = keras_sgm.SGMModel(Encoder())
    model.compile(optimizer="adam")
    splitter = SubclassSplitter(sampler, representation="features", verbose=0)
    with pytest.raises(ValueError, match="representation='pixels' or 'embedding'"):
        model.fit(sampler.dataset(steps=2), epochs=1, callbacks=[splitter], verbose=0)
