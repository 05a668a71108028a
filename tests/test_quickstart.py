"""The README's first command runs scripts/quickstart.py: it must train to a useful model."""

import importlib.util
from pathlib import Path

import keras
import numpy as np

import keras_sgm

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "quickstart.py"


def test_quickstart_trains_saves_and_classifies(tmp_path):
    spec = importlib.util.spec_from_file_location("quickstart", SCRIPT)
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    metrics = quickstart.main(["--epochs", "6", "--output", str(tmp_path), "--verbose", "0"])
    assert metrics["test_bayes_accuracy"] >= 0.85
    assert metrics["test_knn11_accuracy"] >= 0.85
    assert (tmp_path / "metrics.json").exists()
    model = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(model, keras_sgm.SGMModel)
    assert model.class_names == [str(d) for d in range(10)]
    proba = model.predict_proba(np.zeros((2, 8, 8, 1), "float32"))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
