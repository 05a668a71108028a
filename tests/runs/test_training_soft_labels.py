"""FER+ vote distributions from the command line: SGMLoss trains on them as soft labels."""

import json

import numpy as np
import pytest

from keras_sgm.runs import TrainConfig, load_splits, train, training_data
from tests.data.test_ferplus import votes, write_ferplus
from tests.runs.test_training import _script

# Constant images: row i is all 10 i + 5 (pixel (0, 1) excepted), so a batch names its rows.
ROWS = (
    [
        ("Training", f"fer{i:07d}.png", votes(happiness=6 + i % 3, neutral=4 - i % 3))
        for i in range(4)
    ]
    + [("Training", f"fer{i:07d}.png", votes(neutral=7, sadness=3)) for i in range(4, 8)]
    + [("Training", f"fer{i:07d}.png", votes(surprise=8, fear=2)) for i in range(8, 12)]
    # No majority: only the probability configs keep these, labelled by their argmax (neutral).
    + [("Training", f"fer{i:07d}.png", votes(neutral=5, happiness=5)) for i in range(12, 14)]
    + [("PublicTest", "fer0000014.png", votes(happiness=10))]
    + [("PublicTest", "fer0000015.png", votes(neutral=10))]
    + [("PrivateTest", f"fer{i:07d}.png", votes(happiness=9)) for i in range(16, 18)]
    + [("PrivateTest", f"fer{i:07d}.png", votes(neutral=9)) for i in range(18, 20)]
    + [("PrivateTest", f"fer{i:07d}.png", votes(surprise=9)) for i in range(20, 22)]
)


@pytest.fixture(scope="module")
def ferplus_dir(tmp_path_factory):
    return write_ferplus(tmp_path_factory.mktemp("ferplus") / "manual", rows=ROWS)


def _config(ferplus_dir, out, **changes):
    values = dict(
        dataset="ferplus",
        data_dir=str(ferplus_dir),
        tfds_dir=str(ferplus_dir.parent / "tfds"),
        dataset_config="48px_probability",
        epochs=1,
        samples_per_class=2,
        embedding_dim=8,
        knn_k=3,
        output=str(out),
        verbose=0,
    )
    return TrainConfig.from_dict({**values, **changes})


def test_probability_config_batches_are_vote_distributions_balanced_on_the_majority(
    ferplus_dir, tmp_path
):
    config = _config(ferplus_dir, tmp_path / "run")
    train_split, val, _, names, extras = load_splits(config, with_extras=True)
    soft = extras["soft_labels"]
    assert soft.shape == (14, 8) and np.allclose(soft.sum(axis=1), 1.0)
    np.testing.assert_array_equal(np.argmax(soft, axis=1), train_split[1])
    assert np.bincount(train_split[1], minlength=8)[:3].tolist() == [6, 4, 4]  # 2 ties: neutral
    data, _, sampler = training_data(config, train_split, val, soft_labels=soft)
    for images, targets in data.take(3):
        images, targets = images.numpy(), targets.numpy()
        assert targets.shape == (3 * 2, 8)
        rows = np.rint((images[:, 1, 1, 0] * 255 - 5) / 10).astype(int)
        by_row = {int(i): k for k, i in enumerate(extras["index"])}
        np.testing.assert_allclose(targets, soft[[by_row[r] for r in rows]])
        # balanced on the majority label: two of each of the three training classes
        assert np.bincount(train_split[1][[by_row[r] for r in rows]]).tolist() == [2, 2, 2]


def test_train_script_trains_sgm_on_vote_distributions(ferplus_dir, tmp_path, capsys):
    out = tmp_path / "sgm"
    config = _config(ferplus_dir, out)
    flags = [
        "--dataset", "ferplus",
        "--dataset-config", "48px_probability",
        "--data-dir", config.data_dir,
        "--tfds-dir", config.tfds_dir,
        "--epochs", "2",
        "--samples-per-class", "2",
        "--embedding-dim", "8",
        "--knn-k", "3",
        "--output", str(out),
        "--verbose", "0",
    ]  # fmt: skip
    assert _script("train").main(flags) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["soft_labels"] is True and metrics["dataset"] == "ferplus"
    assert np.isfinite(metrics["knn_accuracy"])
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 3 and all(np.isfinite(float(r.split(",")[1])) for r in history[1:])


def test_the_loss_sees_the_distributions_not_the_majority(ferplus_dir, tmp_path):
    """One SGMLoss value on the same batch with soft and with hard labels differs."""
    import keras

    import keras_sgm

    config = _config(ferplus_dir, tmp_path / "run")
    train_split, val, _, _, extras = load_splits(config, with_extras=True)
    soft, _, _ = training_data(config, train_split, val, soft_labels=extras["soft_labels"])
    hard, _, _ = training_data(config, train_split, val)
    (x, y_soft), (x_hard, y_hard) = next(iter(soft)), next(iter(hard))
    np.testing.assert_array_equal(x, x_hard)  # the same seed draws the same images
    np.testing.assert_array_equal(np.argmax(y_soft, axis=1), y_hard)
    embeddings = keras.random.normal((x.shape[0], 8), seed=0)
    loss = keras_sgm.SGMLoss()
    assert float(loss(y_soft, embeddings)) != pytest.approx(float(loss(y_hard, embeddings)))


def test_softmax_cnn_trains_on_the_distributions(ferplus_dir, tmp_path):
    metrics = train(_config(ferplus_dir, tmp_path / "ce", method="ce"))
    assert metrics["soft_labels"] is True
    assert 0.0 <= metrics["classifier_accuracy"] <= 1.0
    assert len(metrics["classifier_confusion_matrix"]) == 8


def test_majority_config_and_triplet_train_on_hard_labels(ferplus_dir, tmp_path):
    config = _config(ferplus_dir, tmp_path / "run", dataset_config="48px")
    train_split, _, _, _, extras = load_splits(config, with_extras=True)
    assert "soft_labels" not in extras and len(train_split[1]) == 12
    metrics = train(_config(ferplus_dir, tmp_path / "triplet", method="triplet"))
    assert metrics["soft_labels"] is False


def test_dgms_with_vote_distributions_is_refused(ferplus_dir, tmp_path):
    with pytest.raises(ValueError, match="DGMS splits need hard labels"):
        _config(ferplus_dir, tmp_path / "run", epochs=3, dgms_levels=1)
