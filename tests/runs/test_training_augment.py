"""--augment: every method's training batches pass through the same augmentation."""

import json

import numpy as np
import pytest

from keras_sgm.runs import TrainConfig, load_splits, training_data
from tests.runs.test_training import _config, _script, make_image_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("augment") / "data")


def test_augment_is_off_by_default():
    assert TrainConfig().augment is False


@pytest.mark.parametrize("method", ["sgm", "triplet", "ce"])
def test_every_method_gets_the_same_augmented_images(folder, tmp_path, method):
    plain = TrainConfig.from_dict(_config(folder, tmp_path, method=method))
    augmented = TrainConfig.from_dict(_config(folder, tmp_path, method=method, augment=True))
    train, val, _, _ = load_splits(plain)
    x, y = next(iter(training_data(plain, train, val)[0]))
    x_aug, y_aug = next(iter(training_data(augmented, train, val)[0]))
    np.testing.assert_array_equal(y, y_aug)  # same draw, labels untouched
    assert x.shape == x_aug.shape and float(np.abs(x - x_aug).mean()) > 0.01
    assert 0.0 <= float(np.min(x_aug)) and float(np.max(x_aug)) <= 1.0
    # The same seed gives every method the same augmentation of the same image.
    reference = TrainConfig.from_dict(_config(folder, tmp_path, method="sgm", augment=True))
    x_ref, _ = next(iter(training_data(reference, train, val)[0]))
    if method != "ce":  # the softmax CNN's batches are shuffled, not class-balanced
        np.testing.assert_allclose(x_aug, x_ref, atol=1e-6)


def test_train_script_augment_flag(folder, tmp_path):
    out = tmp_path / "run"
    flags = [
        "--dataset", "image_folder", "--data-dir", str(folder), "--epochs", "1",
        "--samples-per-class", "4", "--image-size", "32", "--embedding-dim", "8",
        "--output", str(out), "--verbose", "0", "--augment",
    ]  # fmt: skip
    assert _script("train").main(flags) == 0
    assert json.loads((out / "config.json").read_text())["augment"] is True
    assert json.loads((out / "metrics.json").read_text())["augment"] is True
