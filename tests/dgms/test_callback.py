import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import normalized_mutual_info_score

import keras_sgm
from keras_sgm import backbones
from keras_sgm.data import ClassBalancedSampler
from keras_sgm.dgms import (
    SCHEDULES,
    SubclassSplitter,
    feature_extractor,
    representation,
    split_classes,
)
from keras_sgm.dgms import callback as callback_module
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


def _blob_lines(per_blob=8, blobs=6, seed=0):
    """Classes 0 and 5, each `blobs` tight blobs in a line 4 apart; returns x, y, hidden ids.

    Enough structure for 2, 3 and 4 groups per class, and not nested: k-means
    parts 6 blobs as 3 + 3, then 2 + 2 + 2 (blobs 2 and 3 together).
    """
    rng = np.random.default_rng(seed)
    centres = [(30.0 * i, 4.0 * b) for i in range(2) for b in range(blobs)]
    x = np.concatenate([rng.normal(c, 0.2, (per_blob, 2)) for c in centres]).astype("float32")
    hidden = np.repeat(np.arange(2 * blobs), per_blob)
    y = np.array([0, 5])[hidden // blobs]
    order = rng.permutation(len(y))
    return x[order], y[order], hidden[order]


def _four_corner_classes(per_blob=8, seed=0):
    """Classes 0 and 5, each 4 blobs at the corners of its own square; returns x, y, hidden ids.

    Unlike a line of blobs, whose chain a full-covariance component can
    swallow whole, corners stay apart in a small model's embedding.
    """
    rng = np.random.default_rng(seed)
    centres = [(30.0 * i + dx, dy) for i in range(2) for dx in (0, 8) for dy in (0, 8)]
    x = np.concatenate([rng.normal(c, 0.2, (per_blob, 2)) for c in centres]).astype("float32")
    hidden = np.repeat(np.arange(8), per_blob)
    y = np.array([0, 5])[hidden // 4]
    order = rng.permutation(len(y))
    return x[order], y[order], hidden[order]


class _Levels:
    """A `report` that keeps a copy of the labels and class map after every split."""

    def __init__(self):
        self.labels, self.class_of = [], []

    def __call__(self, splitter):
        self.labels.append(splitter.labels.copy())
        self.class_of.append(splitter.class_of.copy())
        return {}


def _fit(sampler, splitter, epochs, model=None):
    model = model or _model()
    data = sampler.dataset(steps=sampler.steps_per_epoch)
    model.fit(data, epochs=epochs, callbacks=[splitter], verbose=0)
    return model


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
    # (the last 2 epochs' batches: Keras' JAX trainer draws a batch or two first, to build)
    first, second = recorder.batches[-2 * steps : -steps], recorder.batches[-steps:]
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
    # Split, the default schedule: each sub-class into 2, the largest first within the cap.
    assert [h["groups_asked"] for h in splitter.history] == [{0: 2, 5: 2}, {0: 3, 5: 3}]
    assert {(h["schedule"], h["covariance_type"]) for h in splitter.history} == {
        ("split", "spherical")
    }
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
        keras.ops.convert_to_numpy(head(features)),
        model.predict(images, verbose=0),
        rtol=1e-4,
        atol=1e-5,
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
        ({"schedule": "hierarchical"}, r"Unknown schedule 'hierarchical'.*'recluster'"),
        ({"covariance_type": "round"}, r"Unknown covariance_type 'round'.*'full'"),
    ],
)
def test_bad_options(kwargs, message):
    x, y, _ = _two_mode_classes()
    sampler = ClassBalancedSampler(x, y, samples_per_class=4)
    with pytest.raises(ValueError, match=message):
        SubclassSplitter(sampler, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"every": 0},
        {"clusters": 1},
        {"levels": -1},
        {"max_subclasses": 0},
        {"representation": "logits"},
        {"method": "dbscan"},
        {"schedule": "hierarchical"},
        {"covariance_type": "round"},
        {"pca_dims": -1},
    ],
)
def test_a_run_refuses_dgms_settings_in_the_splitters_words(kwargs):
    """One check (`check_settings`): a run's DGMSConfig names each setting as its flag does."""
    from keras_sgm.runs import DGMSConfig
    from keras_sgm.runs.config import DGMS_KEYS

    x, y, _ = _two_mode_classes()
    with pytest.raises(ValueError) as splitter:
        SubclassSplitter(ClassBalancedSampler(x, y, samples_per_class=4), **kwargs)
    with pytest.raises(ValueError) as config:
        DGMSConfig(**kwargs)
    (arg,) = kwargs
    assert str(config.value) == str(splitter.value).replace(arg, DGMS_KEYS[arg], 1)


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


# ------------------------------------------------------------------ schedule="recluster"
def test_recluster_asks_one_more_group_per_original_class_each_level():
    x, y, _ = _blob_lines()
    sampler = ClassBalancedSampler(x, y, samples_per_class=3, seed=0)
    levels = _Levels()
    splitter = SubclassSplitter(
        sampler, levels=3, schedule="recluster", representation="pixels", report=levels, verbose=0
    )
    _fit(sampler, splitter, epochs=4)

    assert SCHEDULES == ("split", "recluster") and splitter.level == 3
    assert [h["subclasses_per_class"] for h in splitter.history] == [
        {0: 2, 5: 2},
        {0: 3, 5: 3},
        {0: 4, 5: 4},
    ]
    assert [h["groups_asked"] for h in splitter.history] == [
        {0: 2, 5: 2},
        {0: 3, 5: 3},
        {0: 4, 5: 4},
    ]
    assert [h["subclasses"] for h in splitter.history] == [4, 6, 8]
    assert all(h["schedule"] == "recluster" for h in splitter.history)
    for level, (labels, class_of) in enumerate(zip(levels.labels, levels.class_of), start=1):
        # Contiguous ids, unique across classes, each mapped straight to an original class.
        k = level + 1
        assert np.unique(labels).tolist() == list(range(2 * k))
        np.testing.assert_array_equal(class_of[labels], y)
        assert sorted(class_of.tolist()) == [0] * k + [5] * k
        # A fresh clustering of the original classes, with k groups each.
        fresh = split_classes(x, y, clusters=k, min_size=3, seed=level - 1)
        np.testing.assert_array_equal(labels, fresh.labels)
    np.testing.assert_array_equal(sampler.labels.numpy(), splitter.labels)


def test_recluster_levels_are_not_refinements_of_the_level_before():
    x, y, hidden = _blob_lines()
    sampler = ClassBalancedSampler(x, y, samples_per_class=3, seed=0)
    levels = _Levels()
    splitter = SubclassSplitter(
        sampler, levels=2, schedule="recluster", representation="pixels", report=levels, verbose=0
    )
    _fit(sampler, splitter, epochs=2)
    first, second = levels.labels
    # Level 1 parts each line of 6 blobs 3 + 3, level 2 parts it 2 + 2 + 2: the middle
    # sub-class of level 2 takes one blob from each level-1 sub-class.
    straddling = [s for s in np.unique(second) if len(np.unique(first[second == s])) > 1]
    assert len(straddling) == 2  # one per class
    for s in straddling:
        assert np.unique(hidden[second == s]).size == 2
    assert normalized_mutual_info_score(hidden, second) < 1.0  # groups of blobs, not blobs

    # The split schedule at the same levels only ever refines.
    sampler = ClassBalancedSampler(x, y, samples_per_class=3, seed=0)
    levels = _Levels()
    splitter = SubclassSplitter(
        sampler, levels=2, representation="pixels", report=levels, verbose=0
    )
    _fit(sampler, splitter, epochs=2)
    first, second = levels.labels
    assert all(len(np.unique(first[second == s])) == 1 for s in np.unique(second))


def test_recluster_max_subclasses_caps_the_groups_per_class():
    x, y, _ = _blob_lines()
    sampler = ClassBalancedSampler(x, y, samples_per_class=3, seed=0)
    splitter = SubclassSplitter(
        sampler,
        levels=3,
        schedule="recluster",
        max_subclasses=3,
        representation="pixels",
        verbose=0,
    )
    _fit(sampler, splitter, epochs=3)
    assert [h["groups_asked"] for h in splitter.history] == [
        {0: 2, 5: 2},
        {0: 3, 5: 3},
        {0: 3, 5: 3},
    ]
    assert [h["subclasses"] for h in splitter.history] == [4, 6, 6]
    np.testing.assert_array_equal(splitter.class_of[splitter.labels], y)
    # Level 3 is a fresh 3-group clustering too (its own seed), not level 2's labels kept.
    fresh = split_classes(x, y, clusters=3, min_size=3, seed=2)
    np.testing.assert_array_equal(splitter.labels, fresh.labels)


def test_recluster_resumes_mid_schedule_at_the_right_k(tmp_path):
    x, y, _ = _blob_lines()
    state = tmp_path / "dgms_state.json"
    options = dict(levels=3, schedule="recluster", representation="pixels", state_path=state)
    sampler = ClassBalancedSampler(x, y, samples_per_class=3, seed=0)
    model = _fit(sampler, SubclassSplitter(sampler, verbose=0, **options), epochs=1)
    written = json.loads(state.read_text())
    assert written["level"] == 1 and written["schedule"] == "recluster"
    assert written["clusters"] == 2 and written["covariance_type"] == "spherical"
    assert written["groups_asked"] == {"0": 2, "5": 2}

    # A new process: fresh sampler on the original labels, same state file.
    fresh = ClassBalancedSampler(x, y, samples_per_class=3, seed=1)
    resumed = SubclassSplitter(fresh, resume=True, verbose=0, **options)
    _fit(fresh, resumed, epochs=3, model=model)  # epoch 1 was done; levels 2 and 3 follow
    assert resumed.level == 3 and [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert [h["groups_asked"] for h in resumed.history] == [
        {"0": 2, "5": 2},  # read back from JSON
        {0: 3, 5: 3},
        {0: 4, 5: 4},
    ]
    np.testing.assert_array_equal(
        resumed.labels, split_classes(x, y, clusters=4, min_size=3, seed=2).labels
    )
    np.testing.assert_array_equal(resumed.class_of[resumed.labels], y)
    written = json.loads(state.read_text())
    assert written["level"] == 3 and written["groups_asked"] == {"0": 4, "5": 4}
    np.testing.assert_array_equal(written["labels"], resumed.labels)

    # A state of another schedule, or of another `clusters` under recluster, is refused.
    with pytest.raises(ValueError, match="schedule 'recluster', here 'split'"):
        SubclassSplitter(
            ClassBalancedSampler(x, y, 3), state_path=state, resume=True
        ).on_train_begin()
    with pytest.raises(ValueError, match="clusters=2 under schedule 'recluster'.*here clusters=3"):
        SubclassSplitter(
            ClassBalancedSampler(x, y, 3), clusters=3, resume=True, **options
        ).on_train_begin()


def test_a_state_file_without_a_schedule_resumes_as_split(tmp_path):
    x, y, _ = _two_mode_classes()
    state = tmp_path / "dgms_state.json"
    sampler = ClassBalancedSampler(x, y, samples_per_class=4, seed=0)
    first = SubclassSplitter(sampler, representation="pixels", state_path=state, verbose=0)
    _fit(sampler, first, epochs=1)
    written = json.loads(state.read_text())
    for key in ("schedule", "clusters", "covariance_type", "groups_asked"):
        del written[key]  # as written before schedules
    state.write_text(json.dumps(written))
    resumed = SubclassSplitter(
        ClassBalancedSampler(x, y, 4), state_path=state, resume=True, verbose=0
    )
    resumed.on_train_begin()
    assert resumed.level == 1 and resumed.class_of.tolist() == [0, 0, 5, 5]
    with pytest.raises(ValueError, match="schedule 'split', here 'recluster'"):
        SubclassSplitter(
            ClassBalancedSampler(x, y, 4), schedule="recluster", state_path=state, resume=True
        ).on_train_begin()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_worker_zeros_split_maps_back_to_the_original_classes(monkeypatch, schedule):
    # Worker 0 found the same groups under other ids (reversed): each new id's parent
    # must come from the labels that were clustered, the original classes for recluster.
    monkeypatch.setattr(callback_module.distribute, "in_multiworker", lambda strategy: True)
    monkeypatch.setattr(
        callback_module.distribute, "broadcast", lambda values, strategy: values.max() - values
    )
    x, y, _ = _blob_lines()
    sampler = ClassBalancedSampler(x, y, samples_per_class=3, seed=0)
    levels = _Levels()
    splitter = SubclassSplitter(
        sampler, levels=2, schedule=schedule, representation="pixels", report=levels, verbose=0
    )
    _fit(sampler, splitter, epochs=2)
    for labels, class_of in zip(levels.labels, levels.class_of):
        np.testing.assert_array_equal(class_of[labels], y)
    assert [h["subclasses"] for h in splitter.history] == (
        [4, 6] if schedule == "recluster" else [4, 8]
    )


def test_the_paper_authors_setting_reclusters_the_embedding_with_full_covariances():
    x, y, hidden = _four_corner_classes()
    sampler = ClassBalancedSampler(x, y, samples_per_class=3, seed=0)
    levels = _Levels()
    splitter = SubclassSplitter(
        sampler,
        levels=3,
        schedule="recluster",
        representation="embedding",
        method="em",
        covariance_type="full",
        report=levels,
        verbose=0,
    )
    model = _fit(sampler, splitter, epochs=3)
    assert [h["subclasses_per_class"] for h in splitter.history] == [
        {0: 2, 5: 2},
        {0: 3, 5: 3},
        {0: 4, 5: 4},
    ]
    assert {(h["representation"], h["method"], h["covariance_type"]) for h in splitter.history} == {
        ("embedding", "em", "full")
    }
    for labels, class_of in zip(levels.labels, levels.class_of):
        np.testing.assert_array_equal(class_of[labels], y)
    # At 4 groups per class, each corner blob of the embedding is a sub-class of its own.
    assert normalized_mutual_info_score(hidden, splitter.labels) == pytest.approx(1.0)
    # The Gaussians are fitted on the 8 sub-classes, mapped back to the 2 classes.
    assert model.gaussian_classes.tolist() == [0] * 4 + [5] * 4
    assert model.predict_proba(x).shape == (len(x), 2)
