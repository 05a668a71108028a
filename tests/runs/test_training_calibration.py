"""A run calibrates on its validation split, rejects unknowns, and reports both."""

import keras
import numpy as np
import pytest

from keras_sgm.runs import TrainConfig, load_splits, train
from keras_sgm.runs.benchmark import benchmark_markdown


def _config(tmp_path, name, **changes):
    values = dict(
        dataset="digits",
        image_size=32,
        epochs=1,
        val_fraction=0.15,
        holdout_classes="9",
        output=str(tmp_path / name),
        verbose=0,
    )
    return TrainConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("calibration")
    sgm = _config(tmp_path, "sgm")
    ce = _config(tmp_path, "ce", method="ce")
    return {"sgm": (sgm, train(sgm)), "ce": (ce, train(ce))}


def test_the_validation_split_and_the_held_out_class(tmp_path):
    config = _config(tmp_path, "x")
    train_split, val, test, names, extras = load_splits(config, with_extras=True)
    assert 9 not in train_split[1] and 9 not in val[1] and 9 not in test[1]
    held_images, held_labels = extras["held_out_test"]
    assert len(held_labels) > 0 and set(held_labels.tolist()) == {9}
    counts = np.bincount(val[1], minlength=9)
    assert counts.min() >= 2  # calibrate needs two of every class
    everything = load_splits(TrainConfig(dataset="digits", image_size=32))[0]
    assert len(train_split[1]) + len(val[1]) == int(np.sum(everything[1] != 9))
    with pytest.raises(ValueError, match="holdout_classes names 'ten'"):
        load_splits(_config(tmp_path, "y", holdout_classes="ten"))
    with pytest.raises(ValueError, match="val_fraction .* in \\[0, 0.5\\]; received 0.7"):
        TrainConfig.from_dict({"val_fraction": 0.7})


def test_a_run_calibrates_saves_the_sigma_and_scores_unknowns(runs):
    config, metrics = runs["sgm"]
    fit = metrics["calibration_fit"]  # what the validation split fitted
    assert "held_out" not in metrics  # its name before: what it holds is the fit
    sigma = fit["sigma"]
    assert sigma > 0 and fit["nll_after"] <= fit["nll_before"] and fit["validation_images"] > 0
    model = keras.saving.load_model(f"{config.output}/model.keras")
    assert model.posterior_sigma == pytest.approx(sigma) and model.sigma == config.sigma
    assert model.reject_below == pytest.approx(fit["reject_below"])
    assert metrics["posterior_sigma"] == pytest.approx(sigma)
    for key in ("bayes", "knn"):
        scores = metrics["calibration"][key]
        assert 0.0 <= scores["ece"] <= 1.0 and scores["nll"] > 0 and 0 <= scores["brier"] <= 2
    assert metrics["calibration"]["bayes"]["accuracy"] == pytest.approx(metrics["bayes_accuracy"])
    assert set(metrics["open_set"]) == {"noise", "flat", "held_out_class", "other_dataset"}
    for scores in metrics["open_set"].values():
        assert set(scores) == {"gaussian", "max_posterior"}
        assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert 9 not in metrics["classes"]  # the closed-set metrics leave the held-out class out
    assert (np.array(metrics["classes"]) < 9).all()


def test_the_softmax_cnn_is_scored_alike_and_the_tables_show_both(runs):
    config, metrics = runs["ce"]
    softmax = metrics["calibration"]["softmax"]
    assert softmax["accuracy"] == pytest.approx(metrics["classifier_accuracy"])
    assert all("softmax" in scores for scores in metrics["open_set"].values())
    table = benchmark_markdown([runs["sgm"][1], metrics], config)
    assert "## Calibration on the test split of Digits" in table
    ece = 100 * runs["sgm"][1]["calibration"]["bayes"]["ece"]
    assert "| SGMLoss | FMPNet | Bayes posteriors | " in table and f"{ece:.3f}" in table
    assert "| CNN | FMPNet | softmax | " in table
    held = 100 * metrics["open_set"]["held_out_class"]["softmax"]
    assert "## Unknown inputs (AUROC, percent)" in table and f"{held:.3f}" in table


def test_a_run_without_a_validation_split_says_why_it_is_not_calibrated(tmp_path):
    config = _config(tmp_path, "plain", val_fraction=0.0, holdout_classes=None)
    metrics = train(config)
    assert "no validation split" in metrics["calibration_fit"]["skipped"]
    assert keras.saving.load_model(f"{config.output}/model.keras").posterior_sigma is None
    assert "held_out_class" not in metrics["open_set"]


def test_unknown_images_of_another_dataset_and_soft_labels_refuse_a_held_out_class():
    from keras_sgm.runs.datasets import other_dataset_images

    faces = other_dataset_images(TrainConfig(dataset="digits", image_size=32), n=10)
    assert faces.shape == (10, 32, 32, 1) and 0.0 <= faces.min() and faces.max() <= 1.0
    digits = other_dataset_images(TrainConfig(image_size=40, channels=3), n=7)
    assert digits.shape == (7, 40, 40, 3)
    with pytest.raises(ValueError, match="vote distributions.*holdout_classes needs the majority"):
        TrainConfig.from_dict(
            {
                "dataset": "ferplus",
                "data_dir": "x",
                "dataset_config": "48px_probability",
                "holdout_classes": "contempt",
            }
        )
