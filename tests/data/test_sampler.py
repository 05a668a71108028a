import numpy as np
import pytest
import tensorflow as tf

from keras_sgm.data import ClassBalancedSampler, class_balanced_batches


def _data(counts=(50, 3, 20, 27), ids=(0, 7, 40213, 5)):
    labels = np.concatenate([np.full(n, c) for n, c in zip(counts, ids)])
    # The "image" of example i holds i, so every batch tells which examples it drew.
    images = np.arange(len(labels), dtype="int64")[:, None]
    return images, labels


def _epoch(dataset):
    return [(x.numpy()[:, 0], y.numpy()) for x, y in dataset]


@pytest.mark.parametrize("per_batch", [None, 2, 3])
def test_every_batch_has_the_promised_composition(per_batch):
    images, labels = _data()
    sampler = ClassBalancedSampler(
        images, labels, samples_per_class=5, classes_per_batch=per_batch, seed=0
    )
    batches = _epoch(sampler.dataset())
    expected_classes = per_batch or 4
    assert len(batches) == sampler.steps_per_epoch
    for index, y in batches:
        np.testing.assert_array_equal(labels[index], y)  # labels belong to the drawn images
        classes, counts = np.unique(y, return_counts=True)
        assert len(classes) == expected_classes
        assert np.all(counts == 5)
        assert len(y) == sampler.batch_size == expected_classes * 5
        # interleaved: every run of `expected_classes` rows holds each class once
        runs = y.reshape(5, expected_classes)
        assert all(len(set(r)) == expected_classes for r in runs)


@pytest.mark.parametrize("per_batch", [None, 3])
def test_every_example_is_reached_in_one_epoch(per_batch):
    images, labels = _data()
    sampler = ClassBalancedSampler(
        images, labels, samples_per_class=4, classes_per_batch=per_batch, seed=3
    )
    drawn = np.concatenate([index for index, _ in _epoch(sampler.dataset())])
    assert set(drawn.tolist()) == set(range(len(labels)))


def test_small_class_is_sampled_with_replacement_not_dropped():
    images, labels = _data()
    batches = _epoch(class_balanced_batches(images, labels, samples_per_class=5, seed=1))
    for index, y in batches:
        small = index[y == 7]
        assert len(small) == 5 and set(small.tolist()) <= {50, 51, 52}
        assert set(small.tolist()) == {50, 51, 52}  # cycles through all members


def test_seed_reproduces_and_epochs_differ():
    images, labels = _data()
    a = ClassBalancedSampler(images, labels, samples_per_class=4, seed=11).dataset()
    b = ClassBalancedSampler(images, labels, samples_per_class=4, seed=11).dataset()
    first_a, first_b = _epoch(a), _epoch(b)
    for (ia, _), (ib, _) in zip(first_a, first_b):
        np.testing.assert_array_equal(ia, ib)
    second_a = _epoch(a)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(first_a, second_a))


def test_repeat_gives_an_endless_stream_of_fresh_epochs():
    images, labels = _data()
    sampler = ClassBalancedSampler(images, labels, samples_per_class=4, seed=2)
    steps = sampler.steps_per_epoch
    stream = [x.numpy()[:, 0] for x, _ in sampler.dataset(repeat=True).take(3 * steps)]
    assert len(stream) == 3 * steps
    assert not np.array_equal(
        np.concatenate(stream[:steps]), np.concatenate(stream[steps : 2 * steps])
    )


def test_relabel_is_followed_without_reloading_images():
    images, labels = _data(counts=(40, 40), ids=(0, 1))
    sampler = ClassBalancedSampler(images, labels, samples_per_class=5, seed=0)
    dataset = sampler.dataset()
    _epoch(dataset)
    # split each class in two sub-classes by parity of the index: 4 classes, same epoch length
    sub = labels * 10 + (np.arange(80) % 2)
    with pytest.warns(UserWarning, match="call dataset"):
        sampler.relabel(sub)
    dataset = sampler.dataset()
    for index, y in _epoch(dataset):
        np.testing.assert_array_equal(y, sub[index])
        assert sorted(np.unique(y).tolist()) == [0, 1, 10, 11]
        assert np.all(np.unique(y, return_counts=True)[1] == 5)
    assert sampler.labels.dtype == tf.int64


def test_dataset_inputs_match_array_inputs():
    images, labels = _data()
    from_arrays = _epoch(class_balanced_batches(images, labels, samples_per_class=3, seed=5))
    tuples = tf.data.Dataset.from_tensor_slices((images, labels))
    dicts = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels, "id": labels})
    for source in (tuples, dicts):
        got = _epoch(class_balanced_batches(source, samples_per_class=3, seed=5))
        for (ia, ya), (ib, yb) in zip(from_arrays, got):
            np.testing.assert_array_equal(ia, ib)
            np.testing.assert_array_equal(ya, yb)


def test_targets_are_yielded_in_place_of_labels():
    images, labels = _data()
    targets = np.eye(8, dtype="float32")[np.arange(len(labels)) % 8]
    for x, t in class_balanced_batches(images, labels, 2, seed=0, targets=targets).take(3):
        np.testing.assert_array_equal(t.numpy(), targets[x.numpy()[:, 0]])


class TestBadInput:
    def test_too_many_classes_named(self):
        images, labels = _data()
        with pytest.raises(
            ValueError, match=r"classes_per_batch=6 but the labels hold only 4 classes"
        ):
            ClassBalancedSampler(images, labels, samples_per_class=2, classes_per_batch=6)

    def test_length_mismatch(self):
        with pytest.raises(ValueError, match="images hold 3 examples but labels hold 2"):
            ClassBalancedSampler(np.zeros((3, 2)), np.array([0, 1]), 2)

    def test_bad_label_rows_named(self):
        with pytest.raises(ValueError, match="row 2 holds nan"):
            ClassBalancedSampler(np.zeros((4, 2)), np.array([0, 1, np.nan, 1]), 2)
        with pytest.raises(ValueError, match="row 1 holds 0.5"):
            ClassBalancedSampler(np.zeros((2, 2)), np.array([0, 0.5]), 2)
        with pytest.raises(ValueError, match="dtype <U1"):
            ClassBalancedSampler(np.zeros((2, 2)), np.array(["a", "b"]), 2)

    def test_nan_images_named(self):
        images = np.zeros((4, 2), "float32")
        images[3, 0] = np.inf
        with pytest.raises(ValueError, match="row 3"):
            ClassBalancedSampler(images, np.array([0, 1, 0, 1]), 2)

    def test_one_class(self):
        with pytest.raises(ValueError, match="at least 2"):
            ClassBalancedSampler(np.zeros((4, 2)), np.zeros(4, "int32"), 2)

    def test_bad_sizes(self):
        with pytest.raises(ValueError, match="samples_per_class"):
            ClassBalancedSampler(np.zeros((4, 2)), np.array([0, 1, 0, 1]), 0)
        with pytest.raises(ValueError, match="classes_per_batch"):
            ClassBalancedSampler(np.zeros((4, 2)), np.array([0, 1, 0, 1]), 2, classes_per_batch=1)

    def test_batched_dataset(self):
        ds = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.array([0, 1, 0, 1]))).batch(2)
        with pytest.raises(ValueError, match="unbatch"):
            ClassBalancedSampler(ds, samples_per_class=2)

    def test_relabel_checks(self):
        sampler = ClassBalancedSampler(np.zeros((4, 2)), np.array([0, 1, 0, 1]), 2)
        with pytest.raises(ValueError, match="3 labels for 4 examples"):
            sampler.relabel(np.array([0, 1, 0]))
        with pytest.raises(ValueError, match="at least 2"):
            sampler.relabel(np.zeros(4, "int64"))
        np.testing.assert_array_equal(sampler.labels.numpy(), [0, 1, 0, 1])  # nothing lost


def test_relabel_during_an_endless_stream_never_mixes_labellings():
    images, labels = _data(counts=(40, 40, 40, 40), ids=(1, 2, 3, 4))
    sampler = ClassBalancedSampler(images, labels, samples_per_class=4, seed=0)
    stream = iter(sampler.dataset(repeat=True))
    seen = [next(stream) for _ in range(3)]
    sub = labels * 10 + (np.arange(160) % 2)  # 8 sub-classes
    with pytest.warns(UserWarning):
        sampler.relabel(sub)
    seen += [next(stream) for _ in range(3 * sampler.steps_per_epoch)]
    new_batches = 0
    for x, y in seen:
        index, y = x.numpy()[:, 0], y.numpy()
        counts = np.unique(y, return_counts=True)[1]
        assert np.all(counts == 4)  # balanced under whichever labelling it carries
        old, new = np.array_equal(y, labels[index]), np.array_equal(y, sub[index])
        assert old or new
        new_batches += new
    assert new_batches > 0


class TestFixedLengthEpochs:
    def test_steps_fixes_the_length_and_keeps_every_batch_balanced(self):
        images, labels = _data()
        sampler = ClassBalancedSampler(images, labels, samples_per_class=5, seed=3)
        natural = sampler.steps_per_epoch
        for steps in (natural - 3, natural, 2 * natural + 1):
            dataset = sampler.dataset(steps=steps)
            assert int(dataset.cardinality()) == steps
            batches = _epoch(dataset)
            assert len(batches) == steps
            for index, y in batches:
                np.testing.assert_array_equal(labels[index], y)
                assert sorted(np.unique(y, return_counts=True)[1].tolist()) == [5] * 4
        # Long enough epochs chain fresh plans: every example is drawn, and the
        # second plan is not a replay of the first.
        drawn = np.concatenate([index for index, _ in _epoch(sampler.dataset(steps=2 * natural))])
        assert set(drawn.tolist()) == set(range(len(labels)))
        first, second = drawn[: natural * 20], drawn[natural * 20 :]
        assert not np.array_equal(first, second)

    def test_relabel_keeps_the_length_and_is_followed_by_the_next_epoch(self):
        images, labels = _data()
        sampler = ClassBalancedSampler(
            images, labels, samples_per_class=2, classes_per_batch=3, seed=0
        )
        steps = sampler.steps_per_epoch
        dataset = sampler.dataset(steps=steps)
        _epoch(dataset)
        split = labels * 2 + (np.arange(len(labels)) % 2)  # every class in two halves
        with pytest.warns(UserWarning, match="batches"):
            sampler.relabel(split)
        batches = _epoch(dataset)  # the same dataset object, iterated again
        assert len(batches) == steps
        for index, y in batches:
            np.testing.assert_array_equal(split[index], y)
            assert np.unique(y, return_counts=True)[1].tolist() == [2, 2, 2]

    @pytest.mark.parametrize("steps", [0, -1, 2.5, True])
    def test_bad_steps(self, steps):
        images, labels = _data()
        sampler = ClassBalancedSampler(images, labels, samples_per_class=5)
        with pytest.raises(ValueError, match="steps"):
            sampler.dataset(steps=steps)


def test_with_classes_yields_current_and_original_labels():
    images, labels = _data()
    sampler = ClassBalancedSampler(images, labels, samples_per_class=2, seed=0)
    split = labels * 2 + (np.arange(len(labels)) % 2)
    with pytest.warns(UserWarning):
        sampler.relabel(split)
    for index, pairs in _epoch(sampler.dataset(steps=3, with_classes=True)):
        assert pairs.shape == (len(index), 2)
        np.testing.assert_array_equal(pairs[:, 0], split[index])
        np.testing.assert_array_equal(pairs[:, 1], labels[index])
    with pytest.raises(ValueError, match="targets"):
        ClassBalancedSampler(images, labels, 2, targets=labels).dataset(with_classes=True)
