"""keras_sgm.export: each format run by its own runtime matches the Keras model to 1e-5."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_sgm
from keras_sgm import deploy
from keras_sgm.gaussian_head import GaussianHead

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["neutral", "happiness", "surprise"]


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 16, 16, 1)).astype("float32")


def _model(subclasses=True):
    """A small conv SGMModel whose 4 Gaussians (two sub-classes of class 2) sit at the
    embeddings of four inputs, so that the posteriors differ from input to input."""
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(8),
        ],
        name="tiny",
    )
    model = keras_sgm.SGMModel(encoder, sigma=0.5, class_names=NAMES)
    anchors = model.predict(_images(4, seed=1), verbose=0)
    classes = [0, 1, 2, 2] if subclasses else [0, 1, 2, 3]
    model.set_gaussians(anchors, [0, 1, 2, 3], classes)
    model.posterior_sigma = 0.3  # a calibrated sigma: the export must use it
    model.reject_below = -4.0
    return model


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    return {
        f: keras_sgm.export(model, deploy.default_path(folder, f), format=f) for f in deploy.FORMATS
    }


@pytest.mark.parametrize("format", deploy.FORMATS)
@pytest.mark.parametrize("batch", [1, 9])
def test_each_export_matches_the_keras_model(model, exported, format, batch):
    images = _images(batch, seed=2 + batch)
    got = deploy.ExportedModel(exported[format])(images)
    assert set(got) == set(deploy.OUTPUTS)
    embeddings = model.predict(images, verbose=0)
    np.testing.assert_allclose(got["embedding"], embeddings, atol=1e-5)
    np.testing.assert_allclose(got["posteriors"], model.predict_proba(images), atol=1e-5)
    np.testing.assert_allclose(got["known_score"], model.known_score(images), atol=1e-5, rtol=1e-6)
    np.testing.assert_array_equal(got["class_index"], np.argmax(model.predict_proba(images), 1))
    assert got["posteriors"].shape == (batch, 3) and got["class_index"].shape == (batch,)
    assert deploy.compare(model, exported[format], images)["class_index_agreement"] == 1.0


def test_the_answers_vary_so_parity_means_something(model, exported):
    got = deploy.ExportedModel(exported["onnx"])(_images(40, seed=7))
    assert len(np.unique(got["class_index"])) == 3
    assert got["posteriors"].max(axis=1).min() < 0.99  # not all one-hot


def test_sub_class_gaussians_export_as_their_class_summed(model, exported):
    images = _images(12, seed=3)
    gaussian = model.head.gaussian_posterior(model.predict(images, verbose=0))
    summed = np.stack([gaussian[:, 0], gaussian[:, 1], gaussian[:, 2] + gaussian[:, 3]], axis=1)
    for format in deploy.FORMATS:
        posteriors = deploy.ExportedModel(exported[format])(images)["posteriors"]
        np.testing.assert_allclose(posteriors, summed, atol=1e-5)
        np.testing.assert_allclose(posteriors.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("format", deploy.FORMATS)
def test_the_metadata_names_the_classes_and_the_calibrated_sigma(model, exported, format):
    record = deploy.read_metadata(exported[format])
    assert record["schema"] == deploy.SCHEMA
    assert record["class_names"] == NAMES and record["class_ids"] == [0, 1, 2]
    assert record["sigma"] == pytest.approx(0.3) and record["training_sigma"] == 0.5
    assert record["reject_below"] == -4.0 and record["subclasses"] is True
    assert record["input"] == {"name": "images", "shape": [None, 16, 16, 1], "dtype": "float32"}
    assert record["gaussian_classes"] == [0, 1, 2, 2]
    np.testing.assert_allclose(record["gaussian_means"], model.gaussian_means, atol=1e-7)


def test_one_gaussian_per_class_is_not_called_subclasses(tmp_path):
    model = _model(subclasses=False)
    path = keras_sgm.export(model, tmp_path / "m.onnx", format="onnx")
    record = deploy.read_metadata(path)
    assert record["subclasses"] is False and record["class_ids"] == [0, 1, 2, 3]
    assert record["class_names"] == NAMES + ["class 3"]  # a class with no name is named by id


def test_saved_model_serves_one_signature_named_for_tf_serving(exported):
    import tensorflow as tf

    signature = tf.saved_model.load(str(exported["saved_model"])).signatures["serving_default"]
    assert sorted(signature.structured_outputs) == sorted(deploy.OUTPUTS)
    assert (exported["saved_model"] / "assets.extra" / "keras_sgm.json").is_file()


def test_an_export_with_the_same_name_is_replaced_with_its_metadata_once(model, tmp_path):
    import onnx

    path = tmp_path / "m.onnx"
    keras_sgm.export(model, path, format="onnx")
    keras_sgm.export(model, path, format="onnx")
    keys = [p.key for p in onnx.load(str(path)).metadata_props]
    assert keys.count("keras_sgm") == 1


class TestBadInput:
    def test_unknown_format_names_the_choices(self, model, tmp_path):
        with pytest.raises(ValueError, match=r"Unknown export format 'tflite'.*'litert'"):
            keras_sgm.export(model, tmp_path / "m.tflite", format="tflite")

    def test_a_path_with_another_suffix(self, model, tmp_path):
        with pytest.raises(ValueError, match=r"A onnx export is a .onnx file; .*m\.tflite"):
            keras_sgm.export(model, tmp_path / "m.tflite", format="onnx")
        assert not (tmp_path / "m.tflite").exists()

    def test_a_model_without_gaussians(self, tmp_path):
        encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        with pytest.raises(ValueError, match="no Gaussians to export: call model.fit_gaussians"):
            keras_sgm.export(keras_sgm.SGMModel(encoder), tmp_path / "sm")

    def test_not_an_sgm_model(self, tmp_path):
        with pytest.raises(ValueError, match="needs a keras_sgm.SGMModel; received Sequential"):
            keras_sgm.export(keras.Sequential([keras.Input((4,))]), tmp_path / "sm")

    def test_a_missing_converter_names_the_extra(self, model, tmp_path, monkeypatch):
        monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import fails as if not installed
        with pytest.raises(ImportError, match=r"needs tf2onnx: `pip install keras-sgm\[export\]`"):
            keras_sgm.export(model, tmp_path / "m.onnx", format="onnx")
        assert not (tmp_path / "m.onnx").exists()

    def test_read_metadata_of_what_export_did_not_write(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="No exported model at"):
            deploy.read_metadata(tmp_path / "none.onnx")
        (tmp_path / "plain").mkdir()
        with pytest.raises(ValueError, match="holds no keras_sgm metadata"):
            deploy.read_metadata(tmp_path / "plain")
        (tmp_path / "x.txt").write_text("x")
        with pytest.raises(ValueError, match="is not an export"):
            deploy.read_metadata(tmp_path / "x.txt")

    def test_running_an_onnx_file_export_did_not_write(self, exported, tmp_path):
        import onnx

        proto = onnx.load(str(exported["onnx"]))
        del proto.metadata_props[:]
        onnx.save(proto, str(tmp_path / "plain.onnx"))
        with pytest.raises(ValueError, match="plain.onnx holds no keras_sgm metadata"):
            deploy.ExportedModel(tmp_path / "plain.onnx")
        with pytest.raises(FileNotFoundError, match="No exported model at"):
            deploy.ExportedModel(tmp_path / "missing.onnx")

    def test_a_batch_of_the_wrong_shape_names_both(self, exported):
        with pytest.raises(ValueError, match=r"takes a batch of shape \[None, 16, 16, 1\]"):
            deploy.ExportedModel(exported["litert"])(np.zeros((2, 8, 8, 1), "float32"))


def test_scripts_export_writes_every_format_from_a_keras_file_and_checks_it(model, tmp_path):
    model.save(tmp_path / "model.keras")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export.py"), str(tmp_path / "model.keras")]
        + ["--format", "onnx", "litert", "--output", str(out), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "model.onnx").is_file() and (out / "model.tflite").is_file()
    assert "largest difference" in result.stdout and "class index agreement 1.000" in result.stdout
    report = json.loads((out / "export_check.json").read_text())
    assert set(report) == {"onnx", "litert"}
    assert all(r["posteriors"] <= 1e-5 for r in report.values())


def test_scripts_export_refuses_what_is_not_a_model(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export.py"), str(tmp_path / "missing")]
        + ["--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "missing" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("format", deploy.FORMATS)
def test_the_model_its_export_and_the_served_head_are_one_classifier(model, exported, format):
    images = _images(10, seed=9)
    embeddings = model.predict(images, verbose=0)
    served = deploy.ExportedModel(exported[format])
    assert isinstance(served.head, GaussianHead)
    assert served.head.get_config() | {"name": None} == model.head.get_config() | {"name": None}
    for name in ("gaussian_means", "gaussian_ids", "gaussian_classes"):
        np.testing.assert_array_equal(getattr(served.head, name), getattr(model.head, name))
    want = model.predict_proba(images)
    np.testing.assert_allclose(model.head.posterior(embeddings), want, atol=1e-6)
    np.testing.assert_allclose(served(images)["posteriors"], want, atol=1e-5)
    np.testing.assert_allclose(served.head.posterior(embeddings), want, atol=1e-6)
    np.testing.assert_allclose(
        served.head.known_score(embeddings), model.known_score(images), rtol=1e-5
    )
    assert served.embedding_dim == model.embedding_dim and served.class_names == NAMES
    np.testing.assert_allclose(served.predict(images, batch_size=4), embeddings, atol=1e-5)
