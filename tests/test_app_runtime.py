"""The app over an exported model (`--runtime onnx` / `litert`): the same answers, without Keras."""

import shutil

import keras
import numpy as np
import pytest

from keras_sgm import deploy, hub, serving
from keras_sgm.data import synthetic_faces
from keras_sgm.serving import faces, runtime
from tests.app_support import app_module

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def exported_repo(app_repo, tmp_path_factory):
    """A copy of the app's test repo with its model exported as ONNX and LiteRT."""
    repo = tmp_path_factory.mktemp("exported") / "repo"
    shutil.copytree(app_repo[0], repo)
    model = hub.from_pretrained(repo)
    for format in ("onnx", "litert"):
        deploy.export(model, deploy.default_path(repo / hub.EXPORTS_DIR, format), format=format)
    return repo


@pytest.fixture(scope="module")
def engines(exported_repo):
    return {
        name: serving.ExpressionDemo.from_pretrained(exported_repo, runtime=name)
        for name in runtime.RUNTIMES
    }


@pytest.fixture(scope="module")
def photos(app_examples):
    data = synthetic_faces.generate(6, size=48, seed=11)
    crops = [
        faces.read_photo(image[..., 0], name=f"face{i}.png")
        for i, image in enumerate(data["image"])
    ]
    return crops, faces.read_photo(app_examples["group"])


@pytest.mark.parametrize("name", ["onnx", "litert"])
def test_an_exported_model_answers_as_the_keras_one(engines, photos, name):
    keras_engine, served = engines["keras"], engines[name]
    assert isinstance(served.model, runtime.ExportedModel) and served.model.runtime == name
    assert served.class_names == keras_engine.class_names
    assert served.uncertain_below == pytest.approx(keras_engine.uncertain_below, abs=1e-6)
    assert served.reject_below == pytest.approx(keras_engine.reject_below, abs=1e-5)
    crops, group = photos
    for photo, whole in [*((c, True) for c in crops), (group, False)]:
        want, got = keras_engine.classify(photo, whole=whole), served.classify(photo, whole=whole)
        assert len(got) == len(want) and len(want) >= 1
        for a, b in zip(want, got, strict=True):
            np.testing.assert_allclose(b.embedding, a.embedding, atol=1e-5)
            assert list(b.posterior) == list(a.posterior)  # the same classes, in the same order
            np.testing.assert_allclose(
                list(b.posterior.values()), list(a.posterior.values()), atol=1e-5
            )
            assert b.knn_votes == a.knn_votes and b.knn_label == a.knn_label
            assert b.known_score == pytest.approx(a.known_score, abs=1e-4)
            assert (b.label, b.rejected) == (a.label, a.rejected)
        first = got[0].embedding
        assert [m.index for m in served.retrieve(first, 8)] == [
            m.index for m in keras_engine.retrieve(first, 8)
        ]


def test_the_onnx_engine_never_runs_the_keras_encoder(engines, photos, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Keras ran a model on the --runtime onnx path")

    monkeypatch.setattr(keras.Model, "predict_on_batch", refuse)
    monkeypatch.setattr(keras.Model, "predict", refuse)
    monkeypatch.setattr(keras.Model, "__call__", refuse)
    served = engines["onnx"]
    crops, group = photos
    assert len(served.classify(group)) == 3
    summary = served.summarize([crops[0].pixels, crops[1].pixels, crops[2].pixels], 2, whole=True)
    assert len(summary.faces) == 2
    groups, kind = served.class_groups("neutral", n_groups=2)
    assert kind == "EM groups" and len(groups) == 2


def test_the_exported_gaussians_browse_the_same_groups(engines):
    a, kind_a = engines["keras"].class_groups("happiness", n_groups=2)
    b, kind_b = engines["onnx"].class_groups("happiness", n_groups=2)
    assert kind_a == kind_b
    assert [g.members.tolist() for g in a] == [g.members.tolist() for g in b]


class TestBadInput:
    def test_a_repo_without_the_export_says_how_to_add_it(self, app_repo):
        with pytest.raises(ValueError, match=r"holds no exports/model.onnx .*--export onnx"):
            serving.ExpressionDemo.from_pretrained(app_repo[0], runtime="onnx")

    def test_an_unknown_runtime(self, app_repo):
        with pytest.raises(ValueError, match=r"Unknown runtime 'tensorrt'; choose one of"):
            serving.ExpressionDemo.from_pretrained(app_repo[0], runtime="tensorrt")

    def test_a_saved_model_is_for_tf_serving(self, tmp_path, exported_repo):
        path = deploy.export(hub.from_pretrained(exported_repo), tmp_path / "sm")
        with pytest.raises(ValueError, match="SavedModel, which TensorFlow Serving serves"):
            runtime.ExportedModel(path)

    def test_the_app_refuses_in_one_line(self, app_repo, capsys):
        assert app_module().main(["--model", str(app_repo[0]), "--runtime", "onnx"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "--export onnx" in err


def test_the_default_model_is_exported_once_for_its_runtime(app_repo, tmp_path, monkeypatch):
    from keras_sgm.serving import default_model

    repo = tmp_path / "demo"
    shutil.copytree(app_repo[0], repo)
    path = default_model.ensure_demo_export(repo, "onnx")
    assert path == repo / "exports" / "model.onnx" and path.is_file()
    monkeypatch.setattr(deploy, "export", lambda *a, **k: pytest.fail("exported twice"))
    assert default_model.ensure_demo_export(repo, "onnx") == path
    assert hub.load_pretrained(repo).model is not None  # the repo still loads
