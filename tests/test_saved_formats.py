"""Files saved by earlier keras_sgm code still load and answer as they did.

`tests/fixtures/` holds a `.keras` file and a Hub repo folder written by the code from
before the Gaussian head became a layer of its own (commit 954445f;
`tests/fixtures/make_v0_files.py` says how), and the answers that code gave
(`v0_expected.npz`). Today's code must read both and give the same answers.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

import keras_sgm
from keras_sgm import hub

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(FIXTURES / "v0_expected.npz"))


def _assert_answers_as_before(model, expected):
    assert isinstance(model, keras_sgm.SGMModel)
    assert model.class_names == ["neutral", "happiness", "sadness"]
    assert model.sigma == float(expected["sigma"])
    assert model.posterior_sigma == pytest.approx(float(expected["posterior_sigma"]))
    assert model.reject_below == pytest.approx(float(expected["reject_below"]))
    for name in ("gaussian_means", "gaussian_ids", "gaussian_classes"):
        np.testing.assert_array_equal(getattr(model.head, name), expected[name], err_msg=name)
    assert len(model.gaussian_ids) == 4  # two sub-classes of class 0
    x = expected["x"]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected["embeddings"], atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(x), expected["posteriors"], atol=1e-6)
    np.testing.assert_allclose(model.known_score(x), expected["known_score"], rtol=1e-5)
    np.testing.assert_array_equal(model.predict_classes(x, reject=True), expected["classes"])


def test_a_keras_file_of_the_earlier_format_loads_and_answers_as_before(expected):
    model = keras.saving.load_model(FIXTURES / "v0_model.keras")
    _assert_answers_as_before(model, expected)


def test_a_hub_repo_of_the_earlier_format_loads_and_answers_as_before(expected):
    model = hub.from_pretrained(FIXTURES / "v0_repo")
    _assert_answers_as_before(model, expected)
    repo = hub.load_pretrained(FIXTURES / "v0_repo")
    assert repo.gallery.embeddings.shape == (60, 3)


def test_an_earlier_file_saved_again_keeps_its_answers(expected, tmp_path):
    model = keras.saving.load_model(FIXTURES / "v0_model.keras")
    model.save(tmp_path / "again.keras")
    _assert_answers_as_before(keras.saving.load_model(tmp_path / "again.keras"), expected)
