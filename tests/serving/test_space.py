"""keras_sgm.serving.space and scripts/make_space.py: the app as a Hugging Face Space, offline;
the Space's launcher, which a clone's apps/app.py runs too."""

import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

import gradio
import huggingface_hub
import pytest

from keras_sgm.serving import space

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_SpaceTokenNeverShown0123456789"


def _script():
    spec = importlib.util.spec_from_file_location("make_space", ROOT / "scripts" / "make_space.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_space_template_is_a_gradio_space():
    card = space.front_matter(space.TEMPLATE_DIR / "README.md")
    assert card["sdk"] == "gradio" and card["app_file"] == "app.py"
    assert (space.TEMPLATE_DIR / card["app_file"]).is_file()
    assert card["sdk_version"].split(".")[0] == gradio.__version__.split(".")[0]
    assert card["models"] == [] and space.space_model(space.TEMPLATE_DIR) is None


def test_one_launcher_chooses_the_backend_for_the_space_and_the_clone(monkeypatch):
    launcher = runpy.run_path(str(space.TEMPLATE_DIR / "app.py"))  # imports no keras_sgm
    # a clone's apps/app.py runs the Space's launcher, whose README names no model: the default
    clone = runpy.run_path(str(ROOT / "apps" / "app.py"))  # defines LAUNCHER, launches nothing
    assert clone["LAUNCHER"] == space.TEMPLATE_DIR / "app.py"
    runtime_of, choose_backend = launcher["runtime_of"], launcher["choose_backend"]
    monkeypatch.delenv("KERAS_SGM_RUNTIME", raising=False)
    assert runtime_of([]) == "keras"
    assert runtime_of(["--model", "org/fer", "--runtime", "onnx"]) == "onnx"
    assert runtime_of(["--runtime=litert", "--port", "7861"]) == "litert"
    monkeypatch.setenv("KERAS_SGM_RUNTIME", "onnx")
    assert runtime_of([]) == "onnx" and runtime_of(["--runtime", "keras"]) == "keras"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # restored after the test, like the rest
    for argv, backend in [([], "numpy"), (["--runtime", "keras"], "tensorflow")]:
        monkeypatch.delenv("KERAS_BACKEND", raising=False)
        choose_backend(argv)
        assert os.environ["KERAS_BACKEND"] == backend
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    choose_backend(["--runtime", "onnx"])  # a backend set by hand is kept
    assert os.environ["KERAS_BACKEND"] == "jax" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_space_requirements_cover_the_package_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["datasets"], *extras["hub"], *extras["app"]]
    lines = (space.TEMPLATE_DIR / "requirements.txt").read_text().splitlines()
    listed = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    missing = [r for r in wanted if not r.startswith(("keras-sgm", "gradio")) and r not in listed]
    assert missing == []


def test_write_space_copies_app_package_and_names_the_model(tmp_path):
    out = space.write_space(tmp_path / "space", model="hf://org/fer-sgm")
    assert (out / "app.py").read_text() == (space.TEMPLATE_DIR / "app.py").read_text()
    card = space.front_matter(out / "README.md")
    assert card["models"] == ["org/fer-sgm"] and card["sdk"] == "gradio"
    assert space.space_model(out) == "org/fer-sgm"
    package = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "keras_sgm").rglob("*.py"))
    copied = sorted(p.relative_to(out).as_posix() for p in (out / "keras_sgm").rglob("*.py"))
    assert copied == package and "keras_sgm/serving/app.py" in copied
    assert not list(out.rglob("__pycache__"))
    # the package data travels with the code: the card template and the Space's own files
    assert (out / "keras_sgm" / "hub" / "model_card_template.md").is_file()
    assert (out / "keras_sgm" / "serving" / "space_template" / "README.md").is_file()
    # Inside the Space, `import keras_sgm` finds the copy beside app.py.
    found = subprocess.run(
        [sys.executable, "-c", "import keras_sgm.serving.space as s; print(s.PACKAGE.parent)"],
        cwd=out,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONSAFEPATH": ""},
    )
    assert Path(found.stdout.strip()) == out


def test_write_space_refuses_bad_ids_and_occupied_folders(tmp_path):
    with pytest.raises(ValueError, match="model is not a valid Hub repo id"):
        space.write_space(tmp_path / "a", model="not an id")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty"):
        space.write_space(tmp_path / "b", overwrite=True)
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"
    first = space.write_space(tmp_path / "c", model="org/one")
    space.write_space(first, model="org/two", overwrite=True)
    assert space.space_model(first) == "org/two"


def test_unclosed_front_matter_is_an_error(tmp_path):
    (tmp_path / "README.md").write_text("---\nsdk: gradio\n")
    with pytest.raises(ValueError, match="never closed"):
        space.space_model(tmp_path)


@pytest.fixture
def fake_hub(monkeypatch):
    sent = {}

    def create_repo(self, repo_id, **kwargs):
        sent["create"] = {"repo_id": repo_id, "token": self.token, **kwargs}
        return huggingface_hub.RepoUrl(f"https://huggingface.co/spaces/{repo_id}")

    def upload_folder(self, repo_id, folder_path, **kwargs):
        files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*"))
        sent["upload"] = {"repo_id": repo_id, "files": files, **kwargs}

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return sent


def test_push_space_creates_a_gradio_space_and_uploads_the_folder(fake_hub):
    url = space.push_space("org/demo", model="org/fer-sgm", token=TOKEN, private=True)
    assert url == "https://huggingface.co/spaces/org/demo"
    create, upload = fake_hub["create"], fake_hub["upload"]
    assert create["repo_type"] == "space" and create["space_sdk"] == "gradio"
    assert create["private"] is True and create["token"] == TOKEN
    assert upload["repo_type"] == "space" and upload["repo_id"] == "org/demo"
    expected = {"app.py", "README.md", "requirements.txt", "keras_sgm/serving/engine.py"}
    assert expected <= set(upload["files"])


def test_push_space_without_a_token_stops_before_the_network(fake_hub, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(ValueError, match="No Hugging Face token"):
        space.push_space("org/demo")
    assert fake_hub == {}


def test_script_writes_pushes_and_never_prints_the_token(tmp_path, fake_hub, monkeypatch, capsys):
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    script = _script()
    out = tmp_path / "space"
    args = [str(out), "--model", "org/fer", "--push", "org/demo", "--token-env", "MY_TOKEN"]
    assert script.main(args) == 0
    printed = capsys.readouterr()
    assert f"Wrote the Space to {out}/" in printed.out
    assert "Pushed to https://huggingface.co/spaces/org/demo" in printed.out
    assert TOKEN not in printed.out + printed.err and fake_hub["create"]["token"] == TOKEN
    assert script.main([str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err
    monkeypatch.delenv("MY_TOKEN")
    args = [str(tmp_path / "s2"), "--push", "org/demo", "--token-env", "MY_TOKEN"]
    assert script.main(args) == 2
    assert "MY_TOKEN is unset or empty" in capsys.readouterr().err
