"""GaussianHead: Bayes' rule over class Gaussians as a Keras layer (Eq. 2 of the paper)."""

import keras
import numpy as np
import pytest

import keras_sgm
from keras_sgm.gaussian_head import UNKNOWN, GaussianHead
from tests import reference
from tests.testing import TestCase, jit, to_numpy

NAMES = ["neutral", "happiness", "sadness"]


def _embeddings(n=40, dim=3, seed=0):
    """Three blobs; class 0 in two clumps (two DGMS sub-classes: ids 0 and 3)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    sub = rng.integers(0, 4, size=n)
    x = centres[sub, :dim] + 0.4 * rng.normal(size=(n, dim))
    return x.astype("float32"), sub, np.where(sub == 3, 0, sub)


def _head(posterior_sigma=None, reject_below=None):
    """A head fitted on `_embeddings()` (fitting clears the calibration: set it after)."""
    x, sub, _ = _embeddings()
    head = GaussianHead(sigma=0.5, class_names=NAMES)
    head.fit(x, sub, class_map={0: 0, 1: 1, 2: 2, 3: 0})
    head.posterior_sigma, head.reject_below = posterior_sigma, reject_below
    return head


class TestGaussianHead(TestCase):
    def test_config_round_trip(self):
        init = {"sigma": 0.5, "class_names": NAMES, "posterior_sigma": 0.3, "reject_below": -2.0}
        clone = self.assert_config_round_trip(GaussianHead(**init), init)
        assert clone.scoring_sigma == 0.3 and clone.dtype == "float32"

    def test_fit_takes_the_mean_of_each_label_and_maps_sub_classes(self):
        x, sub, _ = _embeddings()
        head = _head(posterior_sigma=0.3, reject_below=-1.0)
        head.fit(x, sub, class_map={0: 0, 1: 1, 2: 2, 3: 0})
        assert head.posterior_sigma is None and head.reject_below is None  # fitted to others
        np.testing.assert_array_equal(head.gaussian_ids, [0, 1, 2, 3])
        np.testing.assert_array_equal(head.gaussian_classes, [0, 1, 2, 0])
        np.testing.assert_array_equal(head.classes_, [0, 1, 2])
        for g in range(4):
            np.testing.assert_allclose(head.gaussian_means[g], x[sub == g].mean(0), atol=1e-6)

    @pytest.mark.parametrize("posterior_sigma", [None, 0.3])
    def test_posteriors_are_eq_2_summed_per_class(self, posterior_sigma):
        head = _head(posterior_sigma=posterior_sigma)
        x, _, _ = _embeddings(12, seed=1)
        want = reference.class_posterior(
            x, head.gaussian_means, head.gaussian_classes, posterior_sigma or 0.5
        )
        posteriors, known = (to_numpy(t) for t in head(x))
        np.testing.assert_allclose(posteriors, want, atol=1e-6)
        np.testing.assert_allclose(head.posterior(x), want, atol=1e-6)
        np.testing.assert_allclose(posteriors.sum(1), 1.0, atol=1e-6)
        sq = ((x[:, None, :] - head.gaussian_means[None]) ** 2).sum(-1)
        np.testing.assert_allclose(known, -sq.min(1) / (2 * head.scoring_sigma**2), rtol=1e-5)
        assert len(np.unique(posteriors.argmax(1))) == 3  # the answers vary

    def test_the_head_compiles_as_a_train_step_does(self):
        head = _head()
        x, _, _ = _embeddings(6, seed=2)
        posteriors = to_numpy(jit(lambda e: head(e)[0])(x))
        np.testing.assert_allclose(posteriors, head.posterior(x), atol=1e-6)

    def test_gaussian_posterior_among_some_gaussians(self):
        head = _head()
        x, _, _ = _embeddings(5, seed=3)
        among = head.gaussian_posterior(x, gaussians=[0, 3])  # the sub-classes of class 0
        want = reference.class_posterior(x, head.gaussian_means[[0, 3]], [0, 3], 0.5)
        np.testing.assert_allclose(among, want, atol=1e-6)

    def test_saved_in_a_keras_file_with_its_gaussians(self, tmp_path):
        head = _head(posterior_sigma=0.4, reject_below=-3.0)
        inputs = keras.Input((3,))
        model = keras.Model(inputs, head(inputs)[0])
        x, _, _ = _embeddings(8, seed=4)
        model.save(tmp_path / "head.keras")
        loaded = keras.saving.load_model(tmp_path / "head.keras")
        back = loaded.layers[-1]
        assert isinstance(back, GaussianHead) and back.class_names == NAMES
        assert back.posterior_sigma == 0.4 and back.reject_below == -3.0
        np.testing.assert_array_equal(back.gaussian_means, head.gaussian_means)
        np.testing.assert_array_equal(back.gaussian_classes, head.gaussian_classes)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), head.posterior(x), atol=1e-6)

    def test_float32_under_a_mixed_precision_policy(self):
        x, _, _ = _embeddings(8, seed=5)
        want = _head().posterior(x)
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            head = _head()
            posteriors = head(keras.ops.cast(x, "float16"))[0]
        finally:
            keras.mixed_precision.set_global_policy("float32")
        assert head.compute_dtype == "float32"
        assert keras.backend.standardize_dtype(posteriors.dtype) == "float32"
        np.testing.assert_allclose(to_numpy(posteriors), want, atol=1e-3)

    def test_calibrate_and_reject(self):
        head = _head()
        x, _, classes = _embeddings(60, seed=6)
        result = head.calibrate(x, classes)
        assert result["nll_after"] <= result["nll_before"]
        assert head.posterior_sigma == result["sigma"] and head.sigma == 0.5
        threshold = head.fit_reject_threshold(x, accept=0.9)
        assert head.reject_below == threshold
        answers = head.predict_classes(x, reject=True)
        assert np.mean(answers != UNKNOWN) >= 0.9
        far = head.predict_classes(np.full((2, 3), 50.0, "float32"), reject=True)
        np.testing.assert_array_equal(far, [UNKNOWN, UNKNOWN])


class TestTheModelsHead:
    def test_sgm_model_classifies_with_its_head(self):
        x, sub, _ = _embeddings()
        encoder = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
        model = keras_sgm.SGMModel(encoder, sigma=0.5, class_names=NAMES)
        model.fit_gaussians(x, sub, class_map={0: 0, 1: 1, 2: 2, 3: 0})
        assert isinstance(model.head, GaussianHead) and model.head.sigma == model.sigma
        np.testing.assert_allclose(model.predict_proba(x), _head().posterior(x), atol=1e-5)
        model.posterior_sigma = 0.7  # the model's settings are the head's
        assert model.head.posterior_sigma == 0.7 and model.head.scoring_sigma == 0.7


class TestBadInput:
    def test_no_gaussians_yet_says_what_to_call(self):
        with pytest.raises(ValueError, match=r"no Gaussians yet: call model.fit_gaussians"):
            GaussianHead().posterior(np.zeros((1, 3), "float32"))

    def test_mismatched_counts_and_unmapped_labels(self):
        x, sub, _ = _embeddings(10)
        with pytest.raises(ValueError, match="10 inputs but 9 labels"):
            GaussianHead().fit(x, sub[:9])
        with pytest.raises(ValueError, match=r"class_map has no original class for label ids"):
            GaussianHead().fit(x, sub, class_map={0: 0})

    def test_non_finite_embeddings_name_the_row(self):
        x, sub, _ = _embeddings(10)
        x[4, 1] = np.nan
        with pytest.raises(ValueError, match=r"first: input 4"):
            GaussianHead().fit(x, sub)

    def test_bad_state_shapes_and_settings(self):
        with pytest.raises(ValueError, match=r"means \[G, dim\], ids \[G\] and classes \[G\]"):
            GaussianHead().set_gaussians(np.zeros((3, 2)), [0, 1])
        with pytest.raises(ValueError, match="Gaussian ids must be distinct"):
            GaussianHead().set_gaussians(np.zeros((2, 2)), [1, 1])
        with pytest.raises(ValueError, match="sigma"):
            GaussianHead(sigma=0.0)
