"""Host the Gradio app as a Hugging Face Space: write the Space folder, and push it.

A Space runs `python app.py` in a folder holding `README.md` (front matter
`sdk: gradio`, `app_file: app.py`, `models: [...]`), `requirements.txt` and the
app. Those three ship inside the package (`space_template/`), so a wheel
install writes Spaces as a clone does. keras_sgm is not on PyPI, so
`write_space` copies the installed package (with its data: the model-card
template and these files) beside `app.py`; the Space's `models:` names the
model it serves, which the app reads at start-up (`space_model`).

Reference:
    https://huggingface.co/docs/hub/spaces-config-reference (front matter keys).
"""

import shutil
import tempfile
from pathlib import Path

from keras_sgm.hub import errors
from keras_sgm.hub.errors import _import_hub, _validate_repo_id

PACKAGE = Path(__file__).resolve().parent.parent
"""The installed keras_sgm package (a clone's, or a wheel's in site-packages)."""

TEMPLATE_DIR = Path(__file__).resolve().parent / "space_template"
SPACE_FILES = ("app.py", "README.md", "requirements.txt")
"""The files of `space_template/` a Space needs."""

_NOT_COPIED = ("__pycache__", "*.pyc", "*.pyi")


def front_matter(path):
    """The YAML front matter of a Markdown file (`---` ... `---` at its top), as a dict."""
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    if end < 0:
        raise ValueError(f"{path}: the front matter opened by '---' is never closed.")
    values = yaml.safe_load(text[4:end]) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: the front matter is not a mapping of keys.")
    return values


def space_model(app_dir):
    """The model a Space serves: the first entry of `models:` in `app_dir/README.md`, or None."""
    readme = Path(app_dir) / "README.md"
    if not readme.is_file():
        return None
    models = front_matter(readme).get("models") or []
    if isinstance(models, str):
        models = [models]
    return str(models[0]) if models else None


def _with_models(text, model):
    """README text whose front matter's `models:` line names `model` (or nothing)."""
    lines = text.split("\n")
    close = lines.index("---", 1)
    for i in range(1, close):
        if lines[i].startswith("models:"):
            lines[i] = f"models: [{model}]" if model else "models: []"
            return "\n".join(lines)
    raise ValueError("The Space README's front matter has no 'models:' line to fill.")


def write_space(directory, model=None, overwrite=False):
    """Write a folder that runs as a Hugging Face Space (Gradio SDK).

    Args:
        directory: where to write; it must not exist or be empty, unless
            `overwrite` and it holds an earlier Space written here.
        model: optional str, the keras_sgm model repo the Space serves (a Hub
            id `"ORG/NAME"`); written into `models:`. None serves the default
            model, trained on the Space's first start.
        overwrite: bool, default False.

    Returns:
        The `Path` of the folder: `app.py`, `README.md`, `requirements.txt`,
        `keras_sgm/` (the installed package, with its data files).

    Raises:
        ValueError: a malformed model id, or a directory in the way.
    """
    if model is not None:
        model = str(model).removeprefix("hf://")
        _validate_repo_id(_import_hub("Checking the model id"), model, "model is not")
    out = Path(directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (overwrite and (out / "app.py").is_file() and (out / "keras_sgm").is_dir()):
            raise ValueError(f"{out} is not empty; choose a new directory (or overwrite a Space).")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPACE_FILES:
        shutil.copyfile(TEMPLATE_DIR / name, out / name)
    readme = out / "README.md"
    readme.write_text(_with_models(readme.read_text(encoding="utf-8"), model), encoding="utf-8")
    shutil.copytree(PACKAGE, out / "keras_sgm", ignore=shutil.ignore_patterns(*_NOT_COPIED))
    return out


def push_space(repo_id, model=None, *, token=None, private=False, commit_message=None):
    """Write the Space into a temporary folder and upload it to `repo_id` (a Gradio Space).

    Token handling and errors are those of `keras_sgm.hub.push_to_hub`.

    Returns:
        The Space's URL, a str.
    """
    huggingface_hub = errors._import_hub("Pushing a Space")
    repo_id = str(repo_id).removeprefix("hf://")
    errors._validate_repo_id(huggingface_hub, repo_id, "The Space id is not")
    token = token or huggingface_hub.get_token()
    if not token:
        raise ValueError(f"No Hugging Face token: {errors._LOGIN_HINT}.")
    with tempfile.TemporaryDirectory(prefix="keras_sgm_space_") as tmp:
        folder = write_space(Path(tmp) / "space", model=model)
        api = huggingface_hub.HfApi(token=token, library_name="keras_sgm")
        try:
            url = api.create_repo(
                repo_id,
                repo_type="space",
                space_sdk="gradio",
                private=True if private else None,
                exist_ok=True,
            )
            api.upload_folder(
                repo_id=getattr(url, "repo_id", None) or repo_id,
                folder_path=folder,
                repo_type="space",
                commit_message=commit_message or "Upload the keras_sgm app",
            )
        except errors._hub_errors() as error:
            raise errors._http_error(error, f"pushing the Space {repo_id!r}", token) from None
        except errors._network_errors() as error:
            raise ConnectionError(
                f"Could not push the Space {repo_id!r}: the Hugging Face Hub was unreachable "
                f"({errors._scrubbed(error, token)}). Write it offline with "
                "scripts/make_space.py DIR and upload it later."
            ) from None
    return str(url)
