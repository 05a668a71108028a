"""The app over an exported model (`--runtime onnx` / `litert`): the same answers, without Keras."""

import shutil

import keras
import numpy as np
import pytest

from keras_sgm import deploy, hub, serving
from keras_sgm.data import synthetic_faces
from keras_sgm.serving import faces, runtime
from keras_sgm.serving.handlers import Handlers
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
        name: serving.ExpressionEngine.from_pretrained(exported_repo, runtime=name)
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


def test_an_engine_serves_a_saved_model_run_by_tensorflow_too(engines, photos, tmp_path):
    keras_engine = engines["keras"]
    path = deploy.export(keras_engine.model, tmp_path / "sm")
    served = serving.ExpressionEngine(deploy.ExportedModel(path), gallery=keras_engine.gallery)
    assert served.class_names == keras_engine.class_names
    crop = photos[0][0]
    want, got = keras_engine.classify(crop, whole=True), served.classify(crop, whole=True)
    np.testing.assert_allclose(got[0].embedding, want[0].embedding, atol=1e-5)
    assert got[0].posterior == pytest.approx(want[0].posterior, abs=1e-5)


@pytest.mark.parametrize("name", ["onnx", "litert"])
def test_an_exported_model_answers_as_the_keras_one(engines, photos, name):
    keras_engine, served = engines["keras"], engines[name]
    assert isinstance(served.model, deploy.ExportedModel) and served.model.format == name
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
            serving.ExpressionEngine.from_pretrained(app_repo[0], runtime="onnx")

    def test_an_unknown_runtime(self, app_repo):
        with pytest.raises(ValueError, match=r"Unknown runtime 'tensorrt'; choose one of"):
            serving.ExpressionEngine.from_pretrained(app_repo[0], runtime="tensorrt")

    def test_the_app_refuses_in_one_line(self, app_repo, capsys):
        assert app_module().main(["--model", str(app_repo[0]), "--runtime", "onnx"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "--export onnx" in err


def test_the_default_model_is_exported_once_for_its_runtime(app_repo, tmp_path, monkeypatch):
    from keras_sgm.serving import default_model

    repo = tmp_path / "default"
    shutil.copytree(app_repo[0], repo)  # a cached default model, not exported yet
    assert default_model.ensure_default_model(repo, runtime="onnx") == repo
    assert (repo / "exports" / "model.onnx").is_file()
    monkeypatch.setattr(deploy, "export", lambda *a, **k: pytest.fail("exported twice"))
    assert default_model.ensure_default_model(repo, runtime="onnx") == repo
    assert hub.load_pretrained(repo).model is not None  # the repo still loads


def _run_without_tensorflow(code, env=None):
    """Run `code` in a fresh process after `python apps/app.py --runtime onnx --help` (with
    KERAS_BACKEND unset: the launcher chooses it, then imports the app); its last line of
    output, as JSON."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    launcher = str(Path(__file__).resolve().parents[2] / "apps" / "app.py")
    prelude = (
        "import json, runpy, sys\n"
        "sys.argv = ['app.py', '--runtime', 'onnx', '--help']\n"
        "try:\n"
        f"    runpy.run_path({launcher!r}, run_name='__main__')\n"
        "except SystemExit as done:  # --help: the flags printed, exit 0\n"
        "    assert done.code == 0, done.code\n"
        "import keras\n"
        "from keras_sgm.serving import app, handlers\n"
    )
    env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k != "KERAS_BACKEND"}
    done = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--runtime {keras,onnx,litert}" in done.stdout  # the app's own --help
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_app_serving_an_export_imports_no_tensorflow(exported_repo, app_examples, engines):
    code = (
        f"engine = app.load_engine({str(exported_repo)!r}, runtime='onnx')\n"
        "answer = handlers.Handlers(engine)\n"
        "app.build_app(engine)\n"
        f"boxed, label, rows, status = answer.classify({str(app_examples['group'])!r})\n"
        f"_, items, matches, found = answer.retrieve({str(app_examples['group'])!r})\n"
        "grid, figure, browsed = answer.browse('neutral', 2)\n"
        f"album = [{', '.join(repr(str(p)) for p in app_examples['album'][:6])}]\n"
        "_, summary = answer.summarize(album, 3, handlers.WHOLE)\n"
        "print(json.dumps({'backend': keras.backend.backend(),\n"
        "    'tensorflow': 'tensorflow' in sys.modules, 'rows': rows, 'matches': matches,\n"
        "    'status': [status, found, browsed, summary]}))\n"
    )
    out = _run_without_tensorflow(code)
    assert out["backend"] == "numpy" and out["tensorflow"] is False
    assert all(text.startswith(("- ", "**")) for text in out["status"]), out["status"]
    # the same answers as the Keras runtime in this (TensorFlow) process
    handlers = Handlers(engines["keras"])
    _, _, rows, _ = handlers.classify(str(app_examples["group"]))
    _, _, matches, _ = handlers.retrieve(str(app_examples["group"]))
    assert [r[:2] + r[3:] for r in out["rows"]] == [r[:2] + r[3:] for r in rows]
    np.testing.assert_allclose([r[2] for r in out["rows"]], [r[2] for r in rows], atol=2e-4)
    assert [m[3] for m in out["matches"]] == [m[3] for m in matches]  # the same gallery rows


def test_the_default_model_is_exported_by_a_tensorflow_process_once(app_repo, tmp_path):
    default_dir = tmp_path / "default"
    shutil.copytree(app_repo[0], default_dir)  # a cached default model, not exported yet
    code = (
        "engine = app.load_engine(None, runtime='onnx')\n"
        "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules,\n"
        "    'runtime': engine.model.format}))\n"
    )
    out = _run_without_tensorflow(code, env={"KERAS_SGM_DEMO_MODEL": str(default_dir)})
    assert out == {"tensorflow": False, "runtime": "onnx"}
    assert (default_dir / "exports" / "model.onnx").is_file()
