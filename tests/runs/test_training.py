"""scripts/train.py, evaluate.py and benchmark.py end to end on a generated image folder."""

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_sgm
from keras_sgm.runs import TrainConfig, load_splits, read_settings_file, train

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script(name):
    """scripts/NAME.py as a module (scripts are files, not a package; none imports another)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pattern(kind, rng, size=32):
    image = rng.uniform(0, 40, size=(size, size))
    if kind == 0:
        image[::4, :] += 200  # horizontal stripes
    elif kind == 1:
        image[:, ::4] += 200  # vertical stripes
    else:
        yy, xx = np.mgrid[:size, :size]
        image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2] += 200
    return np.clip(image, 0, 255).astype("uint8")[..., None]


def make_image_folder(root, n_train=8, n_test=4, classes=("bars", "columns", "disc")):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for kind, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                png = tf.io.encode_png(_pattern(kind, rng)).numpy()
                (folder / f"{i:03d}.png").write_bytes(png)
    return root


@pytest.fixture
def folder(tmp_path):
    return make_image_folder(tmp_path / "data")


def _config(folder, out, **kw):
    values = dict(
        dataset="image_folder",
        data_dir=str(folder),
        arch="fmpnet",
        epochs=2,
        samples_per_class=4,
        image_size=32,
        embedding_dim=8,
        output=str(out),
        verbose=0,
    )
    values.update(kw)
    return values


def test_train_script_runs_end_to_end(folder, tmp_path):
    out = tmp_path / "run"
    code = _script("train").main(
        [
            "--dataset",
            "image_folder",
            "--data-dir",
            str(folder),
            "--arch",
            "fmpnet",
            "--epochs",
            "3",
            "--samples-per-class",
            "4",
            "--image-size",
            "32",
            "--embedding-dim",
            "8",
            "--learning-rate",
            "0.003",
            "--output",
            str(out),
            "--verbose",
            "0",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "nmi",
        "cluster_f1",
        "recall_at_k",
        "acc_at_k",
        "knn_accuracy",
        "knn_precision",
        "knn_recall",
        "knn_f1",
        "f1_vs_k",
        "bayes_accuracy",
        "train_seconds_per_epoch",
    ):
        assert key in metrics
    assert 0.0 <= metrics["nmi"] <= 1.0 and 0.0 <= metrics["knn_accuracy"] <= 1.0
    assert metrics["recall_at_k"]["1"] <= metrics["recall_at_k"]["4"]
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 3 and config["learning_rate"] == 0.003
    for name in (
        "model.keras",
        "history.csv",
        "checkpoints/last.keras",
        "figures/tsne.png",
        "figures/retrieval.png",
        "figures/f1_vs_k.png",
        "figures/confusion.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "backup").exists()  # a finished run leaves no backup
    model = keras.saving.load_model(out / "model.keras")
    assert isinstance(model, keras_sgm.SGMModel) and model.class_names == [
        "bars",
        "columns",
        "disc",
    ]
    assert model.predict_proba(np.zeros((1, 32, 32, 1), "float32")).shape == (1, 3)
    # the saved model evaluates the same way from scripts/evaluate.py
    eval_out = tmp_path / "eval"
    # with no data flags it reads the run's config.json (dataset, data_dir, seed, ...)
    code = _script("evaluate").main(
        ["--model", str(out / "model.keras"), "--output", str(eval_out)]
    )
    assert code == 0
    again = json.loads((eval_out / "metrics.json").read_text())
    assert again["knn_accuracy"] == pytest.approx(metrics["knn_accuracy"])
    assert again["nmi"] == pytest.approx(metrics["nmi"])


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("simulated crash after epoch 2")


def test_a_run_saved_before_dgms_pca_dims_existed_resumes_as_it_was(tmp_path):
    from keras_sgm.runs import RunDir

    config = TrainConfig.from_dict({"dataset": "digits", "dgms_pca_dims": None})
    saved = config.to_dict()
    del saved["dgms_pca_dims"]  # a config.json written before the setting was added
    (tmp_path / "config.json").write_text(json.dumps(saved))
    run = RunDir(tmp_path)
    resumed = run.resumed_config()
    assert resumed.dgms.pca_dims is None  # its splits clustered every column
    assert run.changed_settings(resumed) == ""
    changed = run.changed_settings(run.resumed_config(dgms_pca_dims=64))
    assert changed == "dgms_pca_dims: None -> 64"
    # 0 is what a flag can say for None
    assert TrainConfig.from_dict({"dataset": "digits", "dgms_pca_dims": 0}).dgms.pca_dims is None


def test_each_method_has_its_embedding_radius_and_config_json_records_it(folder, tmp_path):
    from keras_sgm.runs import RunDir, build_models

    assert TrainConfig().radius == 2.0 and TrainConfig(method="triplet").radius == 0.0
    assert TrainConfig(method="ce").radius == 0.0
    assert TrainConfig(embedding_radius=0).radius == 0.0  # SGM unnormalised, on request
    assert TrainConfig(method="triplet", embedding_radius=3).radius == 3.0
    with pytest.raises(ValueError, match="embedding_radius must be a number >= 0"):
        TrainConfig.from_dict({"embedding_radius": -1.0})
    names = lambda m: {layer.name for layer in m.encoder.layers}  # noqa: E731
    sgm = build_models(TrainConfig(image_size=32, embedding_dim=8), (32, 32, 1), ["a", "b"])[1]
    assert "embedding_radius" in names(sgm)
    tri = build_models(TrainConfig(method="triplet", image_size=32), (32, 32, 1), ["a", "b"])[1]
    assert "embedding_radius" not in names(tri)
    out = tmp_path / "run"
    train(_config(folder, out, epochs=1))
    assert json.loads((out / "config.json").read_text())["embedding_radius"] == 2.0
    # a config.json written when null meant "unnormalised" is read as it was meant
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**saved, "embedding_radius": None}))
    assert "embedding_radius: 0.0 -> 2.0" in RunDir(out).changed_settings(
        TrainConfig.from_dict(saved)
    )
    assert RunDir(out).resumed_config().radius == 0.0


def test_resume_continues_from_the_last_finished_epoch(folder, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_config(folder, out, epochs=4), callbacks=[Interrupt()])
    assert (out / "backup").is_dir() and not (out / "metrics.json").exists()
    from keras_sgm.runs import RunDir, training_data

    assert RunDir(out).finished_epochs() == 2
    # the resumed epochs draw a new order instead of replaying the first epoch's
    config = TrainConfig.from_dict(_config(folder, out))
    split = load_splits(config)[0]
    first = np.concatenate([x.numpy().ravel() for x, _ in training_data(config, split, None)[0]])
    later = training_data(config, split, None, start_epoch=2)[0]
    assert not np.array_equal(first, np.concatenate([x.numpy().ravel() for x, _ in later]))
    with pytest.raises(ValueError, match="interrupted run"):
        train(_config(folder, out, epochs=4))
    with pytest.raises(ValueError, match=r"different settings \(arch: 'fmpnet' -> 'cvgg13'\)"):
        train(_config(folder, out, epochs=4, arch="cvgg13", resume=True))
    # as documented: only --output and --resume; the run's own config.json does the rest
    # (the output path may be spelled differently)
    assert _script("train").main(["--output", f"{out}/", "--resume", "--verbose", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run_in_this_session"] == 2  # epochs 3 and 4 only
    assert json.loads((out / "config.json").read_text())["dataset"] == "image_folder"
    epochs = [
        int(line.split(",")[0]) for line in (out / "history.csv").read_text().splitlines()[1:]
    ]
    assert epochs == [0, 1, 2, 3]
    assert not (out / "backup").exists()
    with pytest.raises(ValueError, match="already holds a finished run"):
        train(_config(folder, out))


@pytest.mark.parametrize("rerun", ["plain", "resume"])
def test_a_run_stopped_while_it_evaluates_is_evaluated_again_not_retrained(
    folder, tmp_path, monkeypatch, rerun
):
    from keras_sgm.runs import training

    out = tmp_path / "run"
    real = training.evaluate_model

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt("stopped during the evaluation")

    monkeypatch.setattr(training, "evaluate_model", stopped)
    with pytest.raises(KeyboardInterrupt):
        train(_config(folder, out, epochs=2))
    assert not (out / "metrics.json").exists()
    assert (out / "backup").is_dir()  # kept until the metrics are written
    trained = keras.saving.load_model(out / "model.keras").get_weights()
    monkeypatch.setattr(training, "evaluate_model", real)
    metrics = train(_config(folder, out, epochs=2, resume=rerun == "resume"))
    assert metrics["epochs_run_in_this_session"] == 0  # nothing trained again
    again = keras.saving.load_model(out / "model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(trained, again, strict=True))
    assert (out / "metrics.json").exists() and not (out / "backup").exists()
    epochs = [line.split(",")[0] for line in (out / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1"]
    with pytest.raises(ValueError, match="already holds a finished run"):
        train(_config(folder, out, epochs=2))
    with pytest.raises(ValueError, match="Nothing to resume.*finished run"):
        train(_config(folder, out, epochs=2, resume=True))


def test_a_trained_model_without_metrics_is_not_replaced_without_overwrite(folder, tmp_path):
    out = tmp_path / "run"
    train(_config(folder, out, epochs=1))
    (out / "metrics.json").unlink()  # e.g. a run of an older version that died evaluating
    before = (out / "model.keras").read_bytes()
    with pytest.raises(ValueError, match="already holds a trained model; pass --overwrite"):
        train(_config(folder, out, epochs=1))
    assert (out / "model.keras").read_bytes() == before
    assert train(_config(folder, out, epochs=1, overwrite=True))["epochs_run_in_this_session"] == 1


@pytest.mark.parametrize("method", ["triplet", "ce"])
def test_baseline_methods_train_and_save_an_embedder(folder, tmp_path, method):
    metrics = train(_config(folder, tmp_path / method, method=method, epochs=1))
    assert metrics["method"] == method
    assert (tmp_path / method / "model.keras").exists()
    assert (tmp_path / method / "classifier.keras").exists() == (method == "ce")
    if method == "ce":  # the softmax CNN reloads as itself, its logits one per class
        classifier = keras.saving.load_model(tmp_path / method / "classifier.keras")
        assert isinstance(classifier, keras_sgm.SoftmaxClassifier)
        assert classifier.output.shape[-1] == len(metrics["class_names"])


class TestBadInput:
    def test_empty_folder(self, tmp_path, capsys):
        (tmp_path / "data" / "train").mkdir(parents=True)
        code = _script("train").main(
            [
                "--dataset",
                "image_folder",
                "--data-dir",
                str(tmp_path / "data"),
                "--output",
                str(tmp_path / "o"),
            ]
        )
        assert code == 2
        assert "holds no images" in capsys.readouterr().err
        assert not (tmp_path / "o" / "metrics.json").exists()

    def test_class_with_one_image(self, folder, tmp_path):
        for extra in sorted((folder / "train" / "disc").iterdir())[1:]:
            extra.unlink()
        with pytest.raises(ValueError, match="'disc': 1"):
            train(_config(folder, tmp_path / "o"))

    def test_unreadable_image_named(self, folder, tmp_path):
        bad = folder / "train" / "bars" / "broken.png"
        bad.write_text("this is not an image")
        with pytest.raises(ValueError, match="broken.png"):
            train(_config(folder, tmp_path / "o"))

    def test_every_unreadable_image_is_listed_and_can_be_skipped(self, folder, tmp_path):
        (folder / "train" / "bars" / "broken.png").write_text("this is not an image")
        (folder / "train" / "disc" / "empty.jpg").write_bytes(b"")
        out = tmp_path / "o"
        with pytest.raises(ValueError) as caught:
            train(_config(folder, out))
        message = str(caught.value)
        assert "2 unreadable image(s)" in message and "--skip-unreadable" in message
        assert "broken.png" in message and "empty.jpg" in message
        assert "function_node" not in message and "[Op:" not in message
        assert not out.exists()  # a failed run leaves no folder behind
        with pytest.warns(UserWarning, match="skipped 2 unreadable image"):
            metrics = train(_config(folder, out, skip_unreadable=True, epochs=1))
        assert metrics["knn_accuracy"] >= 0  # trained on the 22 readable images

    def test_an_empty_class_folder_is_reported_and_the_counts_printed(
        self, folder, tmp_path, capsys
    ):
        (folder / "train" / "nothing").mkdir()
        with pytest.warns(UserWarning, match=r"without images, left out: \['nothing'\]"):
            train(_config(folder, tmp_path / "o", epochs=1, verbose=2))
        printed = capsys.readouterr().out
        assert "3 classes; train 24 images (bars 8, columns 8, disc 8); test 12" in printed

    def test_a_class_folder_not_named_in_utf8_trains_and_is_shown_decoded(self, folder, tmp_path):
        import os

        for split in ("train", "test"):
            (folder / split / "disc").rename(folder / split / os.fsdecode(b"caf\xe9"))
        with pytest.warns(UserWarning, match="not UTF-8; read as 'café'"):
            metrics = train(_config(folder, tmp_path / "o", epochs=1))
        assert metrics["class_names"] == ["bars", "café", "columns"]
        saved = json.loads((tmp_path / "o" / "metrics.json").read_text(encoding="utf-8"))
        assert saved["class_names"][1] == "café"
        assert (tmp_path / "o" / "figures" / "confusion.png").stat().st_size > 0

    def test_a_figure_that_fails_is_skipped_not_the_metrics(self, folder, tmp_path, monkeypatch):
        from keras_sgm import viz

        def broken(*args, **kwargs):
            raise RuntimeError("no font for this name")

        monkeypatch.setattr(viz, "plot_confusion_matrix", broken)
        with pytest.warns(UserWarning, match="confusion.png not drawn: RuntimeError"):
            metrics = train(_config(folder, tmp_path / "o", epochs=1))
        assert metrics["figures_not_drawn"] == {
            "confusion.png": "RuntimeError: no font for this name"
        }
        assert json.loads((tmp_path / "o" / "metrics.json").read_text())["knn_accuracy"] >= 0
        assert (tmp_path / "o" / "figures" / "tsne.png").exists()

    @pytest.mark.parametrize(
        ("name", "text", "message"),
        [
            ("missing.yaml", None, "Config file .*missing.yaml does not exist"),
            ("bad.yaml", "epochs: [1, 2\n", "bad.yaml is not valid YAML/JSON"),
            ("list.yaml", "- epochs: 3\n", "must hold a mapping of settings.*not a list"),
            ("bad.json", "{epochs: 3}", "bad.json is not valid YAML/JSON"),
            ("resume.yaml", "resume: 'no'\n", "'resume' must be true or false; received 'no'"),
            ("epochs.yaml", "epochs: true\n", "'epochs' must be an integer; received True"),
            ("lr.yaml", "learning_rate: 1e-3\n", "'learning_rate' must be a number.*'1e-3'"),
            ("arch.yaml", "arch: null\n", "'arch' must be a str; received None"),
            ("typo.yaml", "epoch: 3\n", r"Unknown config keys \['epoch'\]"),
        ],
    )
    def test_config_files_are_read_strictly(self, tmp_path, capsys, name, text, message):
        import re

        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        assert _script("train").main(["--config", str(path), "--output", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
        assert "Traceback" not in err and not (tmp_path / "o").exists()

    def test_a_wrong_number_is_named(self, capsys):
        assert _script("train").main(["--sigma", "-1"]) == 2
        assert "sigma must be a positive number; received -1.0" in capsys.readouterr().err
        assert _script("train").main(["--learning-rate", "nan"]) == 2
        assert "learning_rate must be a positive number; received nan" in capsys.readouterr().err

    def test_unknown_names(self, folder, tmp_path, capsys):
        with pytest.raises(ValueError, match="Unknown arch 'vgg99'.*resnet18"):
            TrainConfig.from_dict({"arch": "vgg99"})
        with pytest.raises(ValueError, match="Unknown method 'arcface'"):
            TrainConfig.from_dict({"method": "arcface"})
        with pytest.raises(ValueError, match=r"Unknown config keys \['epoch'\]"):
            TrainConfig.from_dict({"epoch": 3})
        with pytest.raises(ValueError, match="'epochs' needs a int; received 'many'"):
            TrainConfig.from_dict({"epochs": "many"})
        assert _script("train").main(["--method", "arcface"]) == 2
        assert "Unknown method" in capsys.readouterr().err

    def test_config_file_sets_defaults_and_flags_win(self, folder, tmp_path, capsys):
        script = _script("train")
        bad = tmp_path / "bad.yaml"
        bad.write_text("epochs: 7\nbogus: 1\n")
        assert script.main(["--config", str(bad)]) == 2
        assert "Unknown config keys ['bogus']" in capsys.readouterr().err
        good = tmp_path / "good.yaml"
        good.write_text(
            f"dataset: image_folder\ndata-dir: {folder}\nepochs: 7\nlearning_rate: 0.01\n"
            "samples_per_class: 4\nimage_size: 32\nembedding_dim: 8\nverbose: 0\n"
        )
        out = tmp_path / "o"
        assert script.main(["--config", str(good), "--epochs", "1", "--output", str(out)]) == 0
        resolved = json.loads((out / "config.json").read_text())
        assert (resolved["epochs"], resolved["learning_rate"]) == (1, 0.01)


def test_default_example_trains_on_the_synthetic_faces(tmp_path):
    """`python scripts/train.py` with no data flags trains on the embedded synthetic faces."""
    out = tmp_path / "faces"
    flags = "--max-train-samples 1200 --epochs 3 --verbose 0"
    code = _script("train").main(
        flags.split() + ["--tfds-dir", str(tmp_path / "tfds"), "--output", str(out)]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "synthetic_faces"
    assert metrics["class_names"][:3] == ["neutral", "happiness", "surprise"]
    assert len(metrics["confusion_matrix"]) == 8
    assert metrics["knn_accuracy"] > 0.5  # 8 classes: chance is 0.125


def test_named_datasets_need_their_manual_download():
    with pytest.raises(ValueError, match="manual download: pass data_dir"):
        TrainConfig.from_dict({"dataset": "ferplus"})


def test_digits_split_does_not_depend_on_the_training_seed():
    from keras_sgm.runs import load_splits

    a = load_splits(TrainConfig(dataset="digits", seed=0, image_size=32))
    b = load_splits(TrainConfig(dataset="digits", seed=1, image_size=32))
    np.testing.assert_array_equal(a[2][0], b[2][0])  # the same test images


def test_image_folder_reads_gray_alpha_and_16_bit_images(tmp_path):
    from PIL import Image

    from keras_sgm.data.image_folder import load_image_folder

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    gray = np.full((20, 20), 117, "uint8")
    Image.fromarray(np.stack([gray, np.full_like(gray, 9)], -1), "LA").save(tmp_path / "a/la.png")
    Image.fromarray(gray).save(tmp_path / "a/plain.png")
    sixteen = np.full((20, 20), 30000, "uint16")
    Image.fromarray(sixteen).save(tmp_path / "b/deep.tif")
    Image.fromarray(sixteen).save(tmp_path / "b/deep.png")
    images, labels, names = load_image_folder(tmp_path, image_size=16)
    assert names == ["a", "b"] and images.shape == (4, 16, 16, 1)
    np.testing.assert_allclose(images[:2].mean(axis=(1, 2, 3)), 117 / 255, atol=1e-3)
    np.testing.assert_allclose(images[2:].mean(axis=(1, 2, 3)), 30000 / 65535, atol=3e-3)


def test_train_script_reads_a_named_dataset_from_its_manual_download(tmp_path):
    from tests.data.test_jaffe import write_fake_jaffe

    manual = write_fake_jaffe(tmp_path / "manual")  # fake files in JAFFE's own format
    out = tmp_path / "jaffe_run"
    flags = "--dataset jaffe --dataset-config 64px --epochs 1 --samples-per-class 2"
    flags += " --embedding-dim 8 --verbose 0"
    code = _script("train").main(
        flags.split()
        + ["--data-dir", str(manual), "--tfds-dir", str(tmp_path / "tfds"), "--output", str(out)]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "jaffe" and len(metrics["class_names"]) == 8
    assert metrics["classes"] == list(range(7))  # FER+ order; JAFFE has no contempt
    assert len(metrics["confusion_matrix"]) == 7
    assert (out / "figures" / "confusion.png").stat().st_size > 0


class CrashAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.crash_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.crash_epoch:
            raise RuntimeError(f"simulated crash after epoch {epoch + 1}")


def test_dgms_run_finds_the_hidden_digits_and_resumes_in_its_phase(tmp_path):
    """digit_pairs: real images, classes 0|1, 2|3, ... whose hidden groups are the digits."""
    out = tmp_path / "dgms"
    config = dict(
        dataset="digit_pairs",
        image_size=32,
        epochs=3,
        dgms_levels=1,
        dgms_every=1,
        dgms_clusters=2,
        output=str(out),
        verbose=0,
    )
    with pytest.raises(RuntimeError, match="after epoch 2"):
        train(config, callbacks=[CrashAfter(1)])
    state = json.loads((out / "dgms_state.json").read_text())
    assert state["level"] == 1 and len(state["class_of"]) == 10  # split after epoch 1
    assert _script("train").main(["--output", str(out), "--resume", "--verbose", "0"]) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    dgms = metrics["dgms"]
    assert dgms["representation"] == "pixels" and dgms["subclasses"] == 10
    assert dgms["loss"] == "subclass"  # the default: every sub-class trained as a class
    assert len(dgms["levels"]) == 1 and dgms["levels"][0]["epoch"] == 1  # not split again
    # The split recovers the hidden digits (the target: NMI >= 0.5).
    assert dgms["subclass_nmi_vs_hidden"] >= 0.5
    assert metrics["hidden_group_nmi"] >= 0.5  # and the trained embedding keeps them
    assert dgms["levels"][0]["knn_accuracy_before_split"] > 0.5
    assert metrics["knn_accuracy"] > 0.8  # 5 classes: chance is 0.2
    for figure in ("tsne_subclasses.png", "subclass_groups.png"):
        assert (out / "figures" / figure).stat().st_size > 0
    # The model holds the sub-class Gaussians and reports the 5 original classes.
    model = keras.saving.load_model(out / "model.keras")
    assert len(model.gaussian_ids) == 10
    assert np.bincount(model.gaussian_classes).tolist() == [2] * 5
    x_test = load_splits(TrainConfig.from_dict({**config, "verbose": 0}))[2][0][:7]
    assert model.predict_proba(x_test).shape == (7, 5)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dgms_levels": 2, "dgms_every": 2, "epochs": 4}, "epochs must exceed 4"),
        ({"dgms_levels": 1, "method": "ce"}, "metric loss"),
        ({"dgms_levels": 1, "dgms_representation": "logits"}, "logits"),
        ({"dgms_levels": 1, "dgms_clusters": 1}, "dgms_clusters"),
        ({"dgms_levels": 1, "dgms_pca_dims": -1}, "dgms_pca_dims must be a positive int or None"),
        ({"dgms_covariance": "round"}, r"Unknown dgms_covariance 'round'.*'full'"),
        ({"dgms_max_subclasses": 0}, "dgms_max_subclasses must be a positive int; received 0"),
        ({"dgms_levels": 1, "dgms_loss": "sum"}, r"Unknown dgms_loss 'sum'"),
    ],
)
def test_bad_dgms_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict({"dataset": "digits", **changes})


@pytest.mark.parametrize(
    "changes, derived",
    [
        ({}, (False, 0.0, "subclass")),
        ({"dgms_levels": 1, "dgms_loss": "mixture"}, (True, 0.0, "mixture")),
        ({"dgms_levels": 1, "dgms_loss": "both"}, (True, 1.0, "both")),
        ({"dgms_levels": 1, "dgms_loss": "both", "method": "triplet"}, (False, 0.0, "subclass")),
        ({"dgms_levels": 0, "dgms_loss": "both"}, (False, 0.0, "subclass")),
    ],
)
def test_the_dgms_loss_a_run_trains_with_is_derived_from_its_config(changes, derived):
    config = TrainConfig.from_dict({"dataset": "digits", "epochs": 4, **changes})
    assert (config.trains_mixture, config.subclass_weight, config.trained_dgms_loss) == derived
    assert config.dgms.enabled == bool(changes.get("dgms_levels"))


def test_a_dgms_typo_is_refused_even_when_dgms_is_off():
    with pytest.raises(ValueError, match=r"Unknown dgms_method 'kmean'"):
        TrainConfig.from_dict({"dataset": "digits", "dgms_method": "kmean"})


@pytest.mark.parametrize("name", ["paper.yaml", "paper_dgms.yaml"])
def test_shipped_configs_are_valid(name):
    root = Path(__file__).resolve().parents[2]
    values = read_settings_file(root / "configs" / name)
    config = TrainConfig.from_dict({**values, "dataset": "ferplus", "data_dir": "/data/ferplus"})
    assert (config.learning_rate, config.samples_per_class, config.embedding_dim) == (1e-4, 30, 64)
    if name == "paper_dgms.yaml":  # the authors' code: 2, 3, 4 groups of the embedding, by EM
        assert (config.dgms.schedule, config.dgms.representation) == ("recluster", "embedding")
        assert (config.dgms.method, config.dgms.covariance_type) == ("em", "full")
        assert config.dgms_loss == "subclass" and config.dgms.levels == 3
        assert config.dgms.every * 3 < config.epochs and config.dgms.pca_dims is None


def test_paper_dgms_config_runs_the_authors_schedule(tmp_path):
    """configs/paper_dgms.yaml, shortened, re-clusters each class into 2, 3, 4 by full EM."""
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "paper_dgms"
    flags = ["--config", str(root / "configs" / "paper_dgms.yaml"), "--dataset", "digit_pairs"]
    flags += ["--arch", "fmpnet", "--image-size", "32", "--embedding-dim", "16"]
    flags += ["--samples-per-class", "6", "--epochs", "4", "--dgms-every", "1"]
    flags += ["--max-train-samples", "300"]
    flags += ["--output", str(out), "--verbose", "0"]
    assert _script("train").main(flags) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    dgms = metrics["dgms"]
    assert (dgms["representation"], dgms["method"]) == ("embedding", "em")
    assert (dgms["schedule"], dgms["covariance_type"], dgms["loss"]) == (
        "recluster",
        "full",
        "subclass",
    )
    asked = [level["groups_asked"] for level in dgms["levels"]]
    assert [sorted(set(a.values())) for a in asked] == [[2], [3], [4]]
    assert dgms["subclasses"] <= 5 * 4 and len(dgms["subclasses_per_class"]) == 5
    state = json.loads((out / "dgms_state.json").read_text())
    assert state["schedule"] == "recluster" and state["level"] == 3


def test_a_killed_dgms_run_resumes_from_its_last_epoch_in_its_phase(tmp_path):
    """SIGKILL a training process after its DGMS split; --resume loses no finished epoch."""
    out = tmp_path / "killed"
    script = Path(__file__).resolve().parents[2] / "scripts" / "train.py"
    args = [sys.executable, str(script), "--output", str(out), "--verbose", "0"]
    flags = ["--dataset", "digit_pairs", "--image-size", "32", "--epochs", "5"]
    flags += ["--dgms-levels", "1", "--dgms-every", "2", "--dgms-clusters", "2"]
    process = subprocess.Popen([*args, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history = out / "history.csv"
    deadline = time.monotonic() + 240
    try:
        # Keras writes the backup of an epoch before CSVLogger's row: 3 rows, 3 backed up.
        while time.monotonic() < deadline and process.poll() is None:
            if history.is_file() and len(history.read_text().splitlines()) >= 4:
                break
            time.sleep(0.1)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    finished = json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"]
    assert finished == 3  # epochs 1-3 done, the split after epoch 2 among them
    state = json.loads((out / "dgms_state.json").read_text())
    assert state["level"] == 1 and len(state["class_of"]) == 10

    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run_in_this_session"] == 2  # epochs 4 and 5 only
    rows = history.read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == [0, 1, 2, 3, 4]
    levels = metrics["dgms"]["levels"]
    assert len(levels) == 1 and levels[0]["epoch"] == 2  # the phase was kept, not redone
    assert metrics["dgms"]["subclasses"] == 10 and not (out / "backup").exists()
