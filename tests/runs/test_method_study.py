"""scripts/method_study.py, keras_sgm.runs.method_study: regimes x grid x methods, tuned alike."""

import json

import pytest

from keras_sgm.runs import TrainConfig
from keras_sgm.runs import method_study as study
from tests.runs.test_training import _script


def test_regimes_and_grid_points_are_read_and_checked():
    assert study.parse_regimes([["n30", "train_per_class=30", "epochs=4"], ["full"]]) == {
        "n30": ["train_per_class=30", "epochs=4"],
        "full": [],
    }
    assert study.parse_regimes(None) == {"default": []}
    with pytest.raises(ValueError, match="given twice"):
        study.parse_regimes([["a"], ["a", "epochs=2"]])
    with pytest.raises(ValueError, match="the first word names the regime"):
        study.parse_regimes([["epochs=2"]])
    points = study.grid_points(["learning_rate=1e-4,3e-4", "sigma=1,2"])
    assert points == [
        ["learning_rate=1e-4", "sigma=1"],
        ["learning_rate=1e-4", "sigma=2"],
        ["learning_rate=3e-4", "sigma=1"],
        ["learning_rate=3e-4", "sigma=2"],
    ]
    assert study.grid_points(None) == [[]]
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        study.grid_points(["learning_rate"])
    with pytest.raises(ValueError, match="names a setting twice"):
        study.grid_points(["sigma=1", "sigma=2"])


def _metrics(method, seed, knn, nmi, head=None):
    values = {"method": method, "arch": "fmpnet", "seed": seed, "knn_accuracy": knn, "nmi": nmi}
    if head is not None:
        values["classifier_accuracy"] = head
    return values


def test_the_margins_compare_sgm_with_the_better_baseline_of_the_same_backbone():
    results = [
        _metrics("sgm", 0, 0.90, 0.80),
        _metrics("sgm", 1, 0.92, 0.84),
        _metrics("triplet", 0, 0.89, 0.83),
        _metrics("triplet", 1, 0.91, 0.83),
        _metrics("ce", 0, 0.88, 0.79, head=0.905),
        _metrics("ce", 1, 0.86, 0.77, head=0.905),
    ]
    summary = study.summarize(results)
    sgm = summary["rows"]["sgm/fmpnet"]["knn_accuracy"]
    assert sgm["mean"] == pytest.approx(91.0) and sgm["sd"] == pytest.approx(1.41421356)
    assert summary["rows"]["sgm/fmpnet"]["classifier_accuracy"] is None
    targets = summary["targets"]["fmpnet"]
    assert targets["knn_minus_ce"] == pytest.approx(91.0 - 90.5)  # the head beats kNN on features
    assert targets["knn_minus_triplet"] == pytest.approx(1.0)
    assert targets["nmi_minus_best"] == pytest.approx(82.0 - 83.0)
    text = study.markdown([{"regime": "n30", "point": "defaults", **summary}], TrainConfig())
    assert "| sgm/fmpnet | 91.00 ± 1.41 | 82.00 ± 2.83 | - | - | 2 |" in text
    assert "| fmpnet | +0.50 (met) | +1.00 (met) | -1.00 (not met) |" in text


def test_the_script_runs_every_regime_and_point_and_reuses_finished_runs(tmp_path, capsys):
    script = _script("method_study")
    out = tmp_path / "study"
    argv = [
        "--dataset", "digits", "--image-size", "32", "--epochs", "1", "--verbose", "0",
        "--methods", "sgm", "ce", "--seeds", "0", "--output", str(out),
        "--regime", "n6", "train_per_class=6", "--grid", "learning_rate=1e-4,3e-4",
    ]  # fmt: skip
    assert script.main(argv) == 0
    cells = json.loads((out / "study.json").read_text())
    assert [(c["regime"], c["point"]) for c in cells] == [
        ("n6", "learning_rate=1e-4"),
        ("n6", "learning_rate=3e-4"),
    ]
    config = json.loads((out / "n6/learning_rate=3e-4/ce_fmpnet/seed_0/config.json").read_text())
    assert config["train_per_class"] == 6 and config["learning_rate"] == 3e-4
    assert set(cells[0]["rows"]) == {"sgm/fmpnet", "ce/fmpnet"}
    assert "## n6, learning_rate=3e-4" in (out / "study.md").read_text()
    model = out / "n6/learning_rate=1e-4/sgm_fmpnet/seed_0/model.keras"
    stamp = model.stat().st_mtime_ns
    capsys.readouterr()
    assert script.main(argv) == 0  # everything is finished: read back, nothing retrained
    assert model.stat().st_mtime_ns == stamp
    assert json.loads((out / "study.json").read_text()) == cells
    assert script.main([*argv[:-2], "--grid", "epochs=0"]) == 2
    assert "epochs must be >= 1" in capsys.readouterr().err
