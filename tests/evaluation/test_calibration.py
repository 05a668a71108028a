"""Calibration measures, the test-time sigma, and the "unknown" answer of `SGMModel`."""

import keras
import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

import keras_sgm
from keras_sgm.evaluation import calibration
from keras_sgm.evaluation.open_set import open_set_aurocs, unknown_inputs
from keras_sgm.model import UNKNOWN


def _probabilities(seed=0, n=400, classes=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in p])  # calibrated by construction
    return p, labels


def test_ece_counts_every_answer_in_its_confidence_bin():
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6], [0.2, 0.8]])
    labels = np.array([0, 1, 0, 1, 1])
    # bins: 0.9 (2 answers, 1 right), 0.6 (2 answers, both right), 0.8 (1 answer, right)
    expected = 2 / 5 * abs(0.5 - 0.9) + 2 / 5 * abs(1.0 - 0.6) + 1 / 5 * abs(1.0 - 0.8)
    assert calibration.expected_calibration_error(p, labels) == pytest.approx(expected)
    curve = calibration.reliability(p, labels)
    assert sum(curve["count"]) == 5 and len(curve["edges"]) == calibration.BINS + 1
    assert curve["count"][13] == 2 and curve["accuracy"][13] == 0.5  # (13/15, 14/15]


def test_a_calibrated_source_has_a_small_ece_and_nll_and_brier_match_their_definitions():
    p, labels = _probabilities()
    scores = calibration.calibration_scores(p, labels)
    assert scores["ece"] < 0.06  # sampled from its own probabilities
    overconfident = np.where(p == p.max(axis=1, keepdims=True), 0.97, 0.01)
    overconfident /= overconfident.sum(axis=1, keepdims=True)
    assert calibration.expected_calibration_error(overconfident, labels) > 3 * scores["ece"]
    assert scores["nll"] == pytest.approx(log_loss(labels, p, labels=range(4)), rel=1e-9)
    truth = np.eye(4)[labels]
    assert scores["brier"] == pytest.approx(np.mean(np.sum((p - truth) ** 2, axis=1)))
    assert scores["accuracy"] == pytest.approx(np.mean(p.argmax(axis=1) == labels))


def test_labels_may_name_the_columns_by_class_id():
    p = np.array([[0.8, 0.2], [0.3, 0.7]])
    by_id = calibration.calibration_scores(p, [7, 40213], classes=[7, 40213])
    by_column = calibration.calibration_scores(p, [0, 1])
    assert by_id["nll"] == by_column["nll"] and by_id["ece"] == by_column["ece"]


@pytest.mark.parametrize(
    "p, labels, classes, message",
    [
        (np.array([[0.5, 0.6]]), [0], None, "row 0 sums to 1.1000"),
        (np.array([[np.nan, 1.0]]), [0], None, "row 0 is not"),
        (np.array([[0.5, 0.5]]), [2], None, "class 2 .row 0."),
        (np.array([[0.5, 0.5]]), [3], [0, 1], "class 3 .row 0."),
        (np.array([[0.5, 0.5]]), [0, 1], None, "probabilities hold 1 rows but labels hold 2"),
        (np.zeros((0, 2)), [], None, "n >= 1"),
    ],
)
def test_bad_probabilities_are_named(p, labels, classes, message):
    with pytest.raises(ValueError, match=message):
        calibration.calibration_scores(p, labels, classes)


def test_vote_share_and_auroc():
    shares = calibration.vote_share([["a", "b", "b", "b"]], classes=["a", "b", "c"])
    assert shares.tolist() == [[0.25, 0.75, 0.0]]
    with pytest.raises(ValueError, match="neighbour label 'z' is not one of the classes"):
        calibration.vote_share([["z"]], classes=["a"])
    rng = np.random.default_rng(1)
    known, unknown = rng.normal(1.0, 1.0, 50), rng.normal(0.0, 1.0, 40)
    expected = roc_auc_score(np.r_[np.ones(50), np.zeros(40)], np.r_[known, unknown])
    assert calibration.auroc(known, unknown) == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown_scores is empty"):
        calibration.auroc(known, [])
    aurocs = open_set_aurocs({"g": known}, {"noise": {"g": unknown, "other": unknown}})
    assert aurocs == {"noise": {"g": pytest.approx(expected)}}


def test_unknown_inputs_are_noise_and_flat_images_in_range():
    images = unknown_inputs((6, 6, 1), n=5, seed=3)
    assert images["noise"].shape == (5, 6, 6, 1) and images["flat"].dtype == np.float32
    assert 0.0 <= images["noise"].min() and images["noise"].max() <= 1.0
    assert [float(v) for v in images["flat"][:, 0, 0, 0]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert np.all(images["flat"] == images["flat"][:, :1, :1, :])  # one gray level each


def _blobs(sigma=0.5, n=60, seed=0):
    """Embeddings drawn from three Gaussians of standard deviation `sigma`, an identity encoder."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]])
    x = np.concatenate([m + sigma * rng.normal(size=(n, 2)) for m in means]).astype("float32")
    y = np.repeat([0, 1, 2], n)
    encoder = keras.Sequential([keras.Input((2,)), keras.layers.Identity()])
    return encoder, x, y


def test_calibrate_recovers_the_data_sigma_and_leaves_the_training_sigma(tmp_path):
    encoder, x, y = _blobs(sigma=0.5)
    model = keras_sgm.SGMModel(encoder, sigma=0.05, class_names=["a", "b", "c"])
    model.fit_gaussians(x, y)
    before = calibration.calibration_scores(model.predict_proba(x), y)
    _, x_val, y_val = _blobs(sigma=0.5, seed=1)
    fitted = model.calibrate(x_val, y_val)
    assert fitted["sigma"] == pytest.approx(0.5, rel=0.2) and model.sigma == 0.05
    assert fitted["nll_after"] < fitted["nll_before"]
    after = calibration.calibration_scores(model.predict_proba(x), y)
    assert after["nll"] < before["nll"] and after["ece"] < before["ece"]
    assert model.posterior_sigma == fitted["sigma"]
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.posterior_sigma == model.posterior_sigma and loaded.sigma == 0.05
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-6)


def test_calibrate_refuses_a_split_it_cannot_fit_on():
    encoder, x, y = _blobs()
    model = keras_sgm.SGMModel(encoder, class_names=["neutral", "happiness", "surprise"])
    model.fit_gaussians(x, y)
    with pytest.raises(ValueError, match=r"has none of \['surprise'\]"):
        model.calibrate(x[:120], y[:120])
    with pytest.raises(ValueError, match=r"at least 2 held-out examples.*\['happiness'\]"):
        model.calibrate(x[[0, 1, 60, 120, 121]], y[[0, 1, 60, 120, 121]])
    with pytest.raises(ValueError, match=r"no Gaussian of: \[7\]"):
        model.calibrate(x[:3], [0, 1, 7])
    with pytest.raises(ValueError, match="hold 180 rows but calibrate's y_val hold 2"):
        model.calibrate(x, [0, 1])


def test_inputs_far_from_every_mean_are_rejected_as_unknown():
    encoder, x, y = _blobs()
    model = keras_sgm.SGMModel(encoder).fit_gaussians(x, y)
    with pytest.raises(ValueError, match="call model.fit_reject_threshold"):
        model.predict_classes(x, reject=True)
    threshold = model.fit_reject_threshold(x, accept=0.9)
    answers = model.predict_classes(x, reject=True)
    assert np.mean(answers == UNKNOWN) == pytest.approx(0.1, abs=0.01)
    assert np.all((answers == UNKNOWN) | (answers == model.predict_classes(x)))
    far = np.array([[20.0, 20.0], [-9.0, 4.0]], "float32")
    assert model.predict_classes(far, reject=True).tolist() == [UNKNOWN, UNKNOWN]
    assert model.predict_classes(far).tolist() != [UNKNOWN, UNKNOWN]
    assert model.known_score(far).max() < threshold <= model.known_score(x).max()
    top = float(model.known_score(x).max())
    with pytest.raises(ValueError, match=rf"would reject all 180 held-out inputs.*{top:.4g}\]"):
        model.fit_reject_threshold(x, threshold=top + 1.0)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="accept"):
            model.fit_reject_threshold(x, accept=bad)
    assert model.reject_below == threshold  # a refused threshold leaves the old one


def test_new_gaussians_clear_the_fitted_sigma_and_a_later_calibration_keeps_the_kept_share():
    encoder, x, y = _blobs(sigma=0.5)
    model = keras_sgm.SGMModel(encoder, sigma=0.05).fit_gaussians(x, y)
    model.fit_reject_threshold(x, accept=0.9)
    rejected = model.predict_classes(x, reject=True) == UNKNOWN
    model.calibrate(x, y)  # sigma 0.05 -> about 0.5: the threshold is rescaled with it
    np.testing.assert_array_equal(model.predict_classes(x, reject=True) == UNKNOWN, rejected)
    assert model.local_copy().posterior_sigma == model.posterior_sigma
    model.fit_gaussians(x, y)
    assert model.posterior_sigma is None and model.reject_below is None
    with pytest.raises(ValueError, match="bins must be a whole number >= 1; received 0"):
        calibration.reliability(np.eye(2), [0, 1], bins=0)


def test_a_class_numbered_like_unknown_refuses_reject():
    encoder, x, y = _blobs()
    model = keras_sgm.SGMModel(encoder).fit_gaussians(x, y - 1)  # classes -1, 0, 1
    with pytest.raises(ValueError, match="has a class -1, the id reject= answers"):
        model.predict_classes(x, reject=0.0)


def test_scores_leave_out_test_classes_without_a_column():
    from keras_sgm.evaluation.report import probability_scores

    encoder, x, y = _blobs()
    model = keras_sgm.SGMModel(encoder).fit_gaussians(x[y < 2], y[y < 2])
    scores = probability_scores(model, x[y < 2], y[y < 2], x, y)
    assert scores["bayes"]["test_images_without_a_class_column"] == 60
    assert scores["knn"]["test_images_without_a_class_column"] == 60
