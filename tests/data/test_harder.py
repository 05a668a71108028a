"""keras_sgm.data.harder: fewer images per class and noisy labels, and a run trained on them."""

import numpy as np
import pytest

from keras_sgm.data import harder
from keras_sgm.runs import TrainConfig, load_splits


def test_take_per_class_keeps_count_of_each_class_drawn_by_the_seed():
    labels = np.repeat([0, 1, 2], [10, 3, 7])
    rows = harder.take_per_class(labels, 5, seed=1)
    assert np.bincount(labels[rows]).tolist() == [5, 3, 5]  # a small class keeps all it has
    assert np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, harder.take_per_class(labels, 5, seed=1))
    assert not np.array_equal(rows, harder.take_per_class(labels, 5, seed=2))


@pytest.mark.parametrize("count", [0, -3, 2.5, True, "4"])
def test_take_per_class_refuses_a_count_that_is_not_a_whole_positive_number(count):
    with pytest.raises(ValueError, match=f"count must be a whole number >= 1; received {count!r}"):
        harder.take_per_class(np.array([0, 1]), count)


def test_flip_labels_moves_the_share_to_other_classes_uniformly():
    labels = np.repeat(np.arange(4), 1000)
    noisy, flipped = harder.flip_labels(labels, 0.3, 4, seed=0)
    assert flipped.sum() == 1200 and np.all(noisy[flipped] != labels[flipped])
    assert np.array_equal(noisy[~flipped], labels[~flipped])
    # each wrong label is one of the three other classes, about equally often
    offsets = (noisy[flipped] - labels[flipped]) % 4
    counts = np.bincount(offsets, minlength=4)
    assert counts[0] == 0 and counts[1:].min() > 330, counts
    again, _ = harder.flip_labels(labels, 0.3, 4, seed=0)
    assert np.array_equal(noisy, again)
    assert np.array_equal(harder.flip_labels(labels, 0.0, 4)[0], labels)


@pytest.mark.parametrize(
    "share, classes, labels, message",
    [
        (1.0, 3, [0, 1], r"share must be a number in \[0, 1\); received 1.0"),
        (-0.1, 3, [0, 1], r"share must be a number in \[0, 1\); received -0.1"),
        (0.1, 1, [0, 0], "at least 2 classes; received 1"),
        (0.1, 2, [0, 1, 2], "class 2 at row 2, not below num_classes 2"),
        (0.1, 3, [0, 1.5], "row 1 holds 1.5"),
    ],
)
def test_flip_labels_names_what_it_cannot_use(share, classes, labels, message):
    with pytest.raises(ValueError, match=message):
        harder.flip_labels(np.array(labels), share, classes)


def test_a_run_trains_on_the_harder_split_and_tests_on_the_untouched_one():
    plain = TrainConfig(dataset="digits", image_size=8, seed=3)
    (x, y), _, test, names = load_splits(plain)
    config = plain.updated(train_per_class=12, label_noise=0.25)
    train, val, hard_test, hard_names, extras = load_splits(config, with_extras=True)
    assert names == hard_names and val is None
    assert len(train[1]) == 120 and np.array_equal(hard_test[1], test[1])
    assert np.array_equal(hard_test[0], test[0])
    flipped = extras["label_flipped"]
    assert flipped.sum() == 30
    # the images are a subset of the plain training split, and the clean labels are theirs
    index = {row.tobytes(): label for row, label in zip(x, y, strict=True)}
    clean = np.array([index[row.tobytes()] for row in train[0]])
    assert np.array_equal(clean[~flipped], train[1][~flipped])
    assert np.all(clean[flipped] != train[1][flipped])
    assert np.bincount(clean).tolist() == [12] * 10


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"train_per_class": 1}, "train_per_class must be >= 2 .*received 1"),
        ({"label_noise": 1.0}, r"label_noise is the share .* in \[0, 1\); received 1.0"),
        ({"label_noise": -0.2}, r"label_noise is the share .* in \[0, 1\); received -0.2"),
    ],
)
def test_the_config_refuses_settings_it_cannot_train_with(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(settings)
