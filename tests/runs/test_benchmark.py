"""scripts/benchmark.py, keras_sgm.runs.benchmark: seeds, cross-domain Table 1, Table 2, figures."""

import json
import shutil

import keras
import numpy as np
import pytest

from keras_sgm import evaluation
from keras_sgm.data.image_folder import load_image_folder
from keras_sgm.runs import TrainConfig, benchmark
from keras_sgm.runs.benchmark import EvalDataset, benchmark_markdown, match_classes, plan_runs
from tests.runs.test_training import _script, make_image_folder


def _flags(folder, out, *extra):
    return [
        "--dataset",
        "image_folder",
        "--data-dir",
        str(folder),
        "--epochs",
        "1",
        "--samples-per-class",
        "4",
        "--image-size",
        "32",
        "--embedding-dim",
        "8",
        "--knn-k",
        "3",
        "--output",
        str(out),
        "--verbose",
        "0",
        *extra,
    ]


def test_benchmark_seeds_cross_domain_tables_and_figures(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "data")
    # Another domain: two of the three classes, named in other case.
    other = make_image_folder(tmp_path / "other", n_train=2, n_test=5, classes=("BARS", "Disc"))
    shutil.rmtree(other / "train")  # an evaluation set needs its test split only
    out = tmp_path / "bench"
    code = _script("benchmark").main(
        _flags(folder, out)
        + ["--methods", "sgm", "ce", "--archs", "fmpnet", "--seeds", "0", "1"]
        + ["--eval-datasets", f"image_folder={folder}", f"image_folder={other}"]
    )
    assert code == 0
    results = json.loads((out / "benchmark.json").read_text())
    assert [(r["method"], r["seed"]) for r in results] == [
        ("sgm", 0),
        ("ce", 0),
        ("sgm", 1),
        ("ce", 1),
    ]
    for r in results:
        run = out / f"{r['method']}_fmpnet" / f"seed_{r['seed']}"
        assert json.loads((run / "config.json").read_text())["seed"] == r["seed"]
        cross = r["cross_domain"]
        assert list(cross) == ["image_folder:data", "image_folder:other"]
        assert cross["image_folder:data"]["k"] == 3 and cross["image_folder:other"]["k"] == 2
        assert cross["image_folder:other"]["examples"] == 10
        # The in-domain column is the run's own test NMI (same model, same k-means seed).
        assert cross["image_folder:data"]["nmi"] == pytest.approx(r["nmi"])
        # ... and the other column recomputes from the saved model, its labels in the model's ids.
        model = keras.saving.load_model(run / "model.keras")
        images, labels, names = load_image_folder(other / "test", 32, 1)
        ids = match_classes(names, labels, model.class_names, "other")
        assert sorted(set(ids.tolist())) == [0, 2]  # bars, disc
        assert (
            benchmark.cross_domain_scores(model, images, ids, seed=r["seed"])
            == cross["image_folder:other"]
        )
        assert json.loads((run / "metrics.json").read_text())["cross_domain"] == cross
    ce = [r for r in results if r["method"] == "ce"]
    for r in ce:
        for key in ("accuracy", "precision", "recall", "f1", "macro_f1"):
            assert 0.0 <= r[f"classifier_{key}"] <= 1.0
        p, rec = r["classifier_precision"], r["classifier_recall"]
        assert r["classifier_f1"] == pytest.approx(evaluation.f1_of(p, rec))
    # The CNN row is the softmax head's own predictions, recomputed from classifier.keras.
    classifier = keras.saving.load_model(out / "ce_fmpnet" / "seed_0" / "classifier.keras")
    images, labels, _ = load_image_folder(folder / "test", 32, 1)
    predicted = np.argmax(classifier.predict(images, verbose=0), axis=1)
    assert ce[0]["classifier_accuracy"] == pytest.approx(np.mean(predicted == labels))
    scores = evaluation.knn_scores(labels, predicted, classes=np.arange(3))
    assert ce[0]["classifier_confusion_matrix"] == scores["confusion_matrix"].tolist()
    table = (out / "benchmark.md").read_text()
    table_2 = table.split("## Table 2")[1].split("## Training time")[0]
    head = next(line for line in table_2.splitlines() if line.startswith("| CNN | FMPNet |"))
    accuracies = [100 * r["classifier_accuracy"] for r in ce]
    assert head.split(" | ")[2] == f"{np.mean(accuracies):.3f} ± {np.std(accuracies, ddof=1):.3f}"
    knn = next(line for line in table_2.splitlines() if line.startswith("| CNN features + kNN"))
    accuracies = [100 * r["knn_accuracy"] for r in ce]
    assert knn.split(" | ")[2] == f"{np.mean(accuracies):.3f} ± {np.std(accuracies, ddof=1):.3f}"
    assert "2 seed(s) per row" in table
    assert "| Method | Arch. | image_folder:data | image_folder:other | Seeds |" in table
    assert "| SGMLoss | FMPNet |" in table and "| CNN features + kNN | FMPNet |" in table
    sgm_nmi = [
        r["cross_domain"]["image_folder:other"]["nmi"] for r in results if r["method"] == "sgm"
    ]
    mean, sd = 100 * np.mean(sgm_nmi), 100 * np.std(sgm_nmi, ddof=1)
    assert f"{mean:.3f} ± {sd:.3f} | 0, 1 |" in table
    for name in ("retrieval_fmpnet.png", "f1_vs_k_fmpnet.png"):
        assert (out / "figures" / name).stat().st_size > 1000
        assert f"figures/{name}" in table

    # --resume reads the finished runs back (nothing retrains: the history is untouched) ...
    history = (out / "sgm_fmpnet" / "seed_1" / "history.csv").stat().st_mtime_ns
    again = (
        _flags(folder, out)
        + ["--methods", "sgm", "ce", "--archs", "fmpnet", "--seeds", "0", "1", "--resume"]
        + ["--eval-datasets", f"image_folder={other}"]
    )
    assert _script("benchmark").main(again) == 0
    assert (out / "sgm_fmpnet" / "seed_1" / "history.csv").stat().st_mtime_ns == history
    reused = json.loads((out / "benchmark.json").read_text())
    assert [r["knn_accuracy"] for r in reused] == [r["knn_accuracy"] for r in results]
    # ... but never under other settings.
    capsys.readouterr()
    assert _script("benchmark").main(again + ["--learning-rate", "0.001"]) == 2
    assert "holds a finished run with other settings (learning_rate: 0.0001 -> 0.001)" in (
        capsys.readouterr().err
    )


def _fake(method, arch, seed, nmi, acc):
    return {
        "method": method,
        "arch": arch,
        "seed": seed,
        "nmi": nmi,
        "cluster_f1": nmi / 2,
        "knn_accuracy": acc,
        "knn_precision": acc,
        "knn_recall": acc,
        "knn_f1": acc,
        "knn_macro_f1": acc,
        "train_seconds_per_epoch": 2.0,
        "cross_domain": {"JAFFE": {"nmi": nmi / 3, "k": 7}},
    }


def test_markdown_mean_and_sample_spread_per_row():
    results = [
        _fake("triplet", "resnet18", 0, 0.5, 0.8),
        _fake("triplet", "resnet18", 1, 0.7, 0.9),
        _fake("triplet", "resnet18", 2, 0.6, 0.85),
    ]
    text = benchmark_markdown(results, TrainConfig(), ["JAFFE"])
    assert "3 seed(s) per row" in text
    assert "| TripletLoss | ResNet18 | 60.000 ± 10.000 | 30.000 ± 5.000 | 0, 1, 2 |" in text
    assert "| TripletLoss | ResNet18 | 20.000 ± 3.333 | 0, 1, 2 |" in text  # Table 1, JAFFE
    assert "JAFFE: k = 7" in text
    assert "| TripletLoss | ResNet18 | 85.000 ± 5.000 |" in text
    single = benchmark_markdown(results[:1], TrainConfig())
    assert "| TripletLoss | ResNet18 | 50.000 | 25.000 | 0 |" in single
    assert "± " not in single.split("## ")[1]  # no spread from one seed


def test_match_classes_by_expression_name():
    ids = match_classes(
        ["Happy", "angry", "neutral"], [0, 1, 2, 0], ["neutral", "happiness", "anger"], "x"
    )
    assert ids.tolist() == [1, 2, 0, 1]
    # A class absent from the test split needs no match.
    assert match_classes(["fear", "happy"], [1, 1], ["happiness"], "x").tolist() == [0, 0]
    with pytest.raises(ValueError, match=r"Evaluation dataset x: its classes \['fear', 'smirk'\]"):
        match_classes(["fear", "happy", "smirk"], [0, 1, 2], ["happiness", "anger"], "x")


def test_eval_dataset_spec():
    assert EvalDataset.parse("jaffe") == EvalDataset("jaffe", None)
    assert EvalDataset.parse("ckplus=/d/ck") == EvalDataset("ckplus", "/d/ck")
    assert EvalDataset.parse("jaffe").label == "JAFFE"
    with pytest.raises(ValueError, match="has no name"):
        EvalDataset.parse("=/d")


class TestRefusedBeforeTraining:
    """Bad plans fail with exit code 2 and a named cause, and nothing trains."""

    @pytest.mark.parametrize(
        "extra, message",
        [
            (["--seeds", "0", "1", "0"], r"seeds lists \[0\] more than once"),
            (["--methods", "sgm", "tripplet"], r"Unknown method\(s\) \['tripplet'\]"),
            (["--archs", "fmpnet", "resnet81"], r"Unknown arch 'resnet81'"),
            (["--archs", "fmpnet", "fmpnet"], r"archs lists \['fmpnet'\] more than once"),
        ],
    )
    def test_plan(self, tmp_path, capsys, extra, message):
        import re

        folder = make_image_folder(tmp_path / "data", n_train=2, n_test=1)
        out = tmp_path / "bench"
        assert _script("benchmark").main(_flags(folder, out) + extra) == 2
        assert re.search(message, capsys.readouterr().err)
        assert not out.exists()

    def test_eval_dataset_whose_classes_do_not_match(self, tmp_path, capsys):
        folder = make_image_folder(tmp_path / "data", n_train=2, n_test=1)
        other = make_image_folder(
            tmp_path / "faces", n_train=2, n_test=2, classes=("bars", "happy")
        )
        out = tmp_path / "bench"
        flags = _flags(folder, out) + [
            "--methods",
            "sgm",
            "--eval-datasets",
            f"image_folder={other}",
        ]
        assert _script("benchmark").main(flags) == 2
        err = capsys.readouterr().err
        assert "image_folder:faces: its classes ['happy'] match none of the model's 3" in err
        assert "['bars', 'columns', 'disc']" in err
        assert not out.exists()

    def test_image_folder_without_its_folder(self, tmp_path, capsys):
        flags = ["--dataset", "digits", "--output", str(tmp_path / "b")]
        assert _script("benchmark").main(flags + ["--eval-datasets", "image_folder"]) == 2
        assert "needs its folder: write image_folder=DIR" in capsys.readouterr().err
        assert _script("benchmark").main(flags + ["--eval-datasets", "jaffe"]) == 2
        assert "Evaluation dataset 'jaffe'" in capsys.readouterr().err
        assert not (tmp_path / "b").exists()

    def test_digits_model_on_faces(self, tmp_path, capsys):
        flags = [
            "--dataset",
            "digits",
            "--output",
            str(tmp_path / "b"),
            "--eval-datasets",
            "synthetic_faces",
        ]
        assert _script("benchmark").main(flags) == 2
        assert "Synthetic faces: its classes ['neutral', 'happiness'" in capsys.readouterr().err


def test_plan_runs_orders_and_places_runs(tmp_path):
    config = TrainConfig(output=str(tmp_path))
    runs = plan_runs(config, ["sgm", "triplet"], ["fmpnet"], seeds=[3, 4])
    assert [(r.seed, r.method) for r in runs] == [
        (3, "sgm"),
        (3, "triplet"),
        (4, "sgm"),
        (4, "triplet"),
    ]
    assert runs[3].output == str(tmp_path / "triplet_fmpnet" / "seed_4")
    (single,) = plan_runs(config, ["sgm"], ["fmpnet"])
    assert single.output == str(tmp_path / "sgm_fmpnet") and single.seed == config.seed
    with pytest.raises(ValueError, match="Seeds must be integers"):
        plan_runs(config, ["sgm"], ["fmpnet"], seeds=[0, 1.5])
    assert benchmark.METHODS["ce"] == "CNN"
