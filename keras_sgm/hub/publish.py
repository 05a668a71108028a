"""Publish an `SGMModel`: write its repo folder (`save_pretrained`) or upload it (`push_to_hub`)."""

import os
import shutil
import tempfile
from pathlib import Path

import keras

from keras_sgm import deploy
from keras_sgm._files import write_json
from keras_sgm._version import __version__
from keras_sgm.data.names import REDISTRIBUTABLE_DATASETS
from keras_sgm.hub._safe import safe_load_file
from keras_sgm.hub.card import render_model_card
from keras_sgm.hub.errors import (
    _LOGIN_HINT,
    _http_error,
    _hub_errors,
    _import_hub,
    _network_errors,
    _scrubbed,
    _validate_repo_id,
)
from keras_sgm.hub.gallery import Gallery
from keras_sgm.hub.repo import (
    EXPORTS_DIR,
    FORMAT_VERSION,
    GALLERY_FILE,
    MARKER,
    TRAINING_CONFIG_FILE,
    _read_json,
)
from keras_sgm.model import SGMModel
from keras_sgm.runs.rundir import RunDir

_LOCAL_PATH_KEYS = ("data_dir", "tfds_dir", "output")
"""Run settings that name this machine's folders: left out of a published config."""


def save_pretrained(
    source,
    directory,
    *,
    config=None,
    metrics=None,
    gallery=None,
    allow_thumbnails=None,
    repo_id=None,
    license=None,
    tags=(),
    template=None,
    overwrite=False,
    exports=(),
):
    """Write the Hub repo layout of a model or a training run into a local directory.

    Args:
        source: a run directory written by `keras_sgm.runs.train`
            (`model.keras`, `config.json`, `metrics.json`, `figures/`,
            `history.csv`; `logs/` and `checkpoints/` stay behind), or an
            `SGMModel`.
        directory: where to write; it must not exist or be empty, unless
            `overwrite` and it holds an earlier keras_sgm repo.
        config: optional dict, default None; the training config (default:
            the run's `config.json`). Local paths (`data_dir`, `tfds_dir`,
            `output`) are left out: they name directories of this machine.
        metrics: optional dict, default None; the evaluation (default: the
            run's `metrics.json`).
        gallery: optional `Gallery`, default None; written as `gallery.npz`.
        allow_thumbnails: optional bool, default None. None publishes gallery
            thumbnails only for datasets anyone may redistribute
            (`REDISTRIBUTABLE_DATASETS`); True asserts that the data's licence
            allows it; False never publishes them.
        repo_id: optional str `"ORG/NAME"`, default None; named in the card.
        license: optional str, default None; the card's licence id (e.g.
            `"apache-2.0"`). Weights trained on licensed faces inherit the
            data's terms: choose accordingly.
        tags: extra card tags.
        template: optional path of a Jinja2 card template (default `TEMPLATE`).
        overwrite: bool, default False; replace an earlier keras_sgm repo in
            `directory`.
        exports: formats of `keras_sgm.deploy.FORMATS` (`"onnx"`, `"litert"`,
            `"saved_model"`) to add under `exports/` (`keras_sgm.export`), each
            named in the card with how to run it. Default: none.

    Returns:
        The `directory`, as a `Path`.

    Raises:
        ValueError: an unfinished run, a model that is not an `SGMModel` or
            cannot be loaded safely, thumbnails the licence does not allow, a
            malformed repo id, or a directory in the way.
    """
    hub = _import_hub("Writing a model card")
    if repo_id is not None:
        _validate_repo_id(hub, repo_id, "repo_id is not")
    exports = list(dict.fromkeys([exports] if isinstance(exports, str) else exports))
    for format in exports:  # an unknown format or a missing converter: before anything is written
        deploy.check_can_export(format)
    model, run_config, run_metrics, run = _source(source)
    config = _public_config(config if config is not None else run_config)
    metrics = metrics if metrics is not None else run_metrics
    dataset = (config or {}).get("dataset")
    if gallery is not None:
        gallery = _checked_gallery(gallery, model, dataset, allow_thumbnails)

    out = _prepare_directory(Path(directory), overwrite)
    try:
        model.save(out, zipped=False)
        if _is_empty(out / "assets"):  # Keras makes it even when the model has no assets
            (out / "assets").rmdir()
        if config is not None:
            write_json(out / TRAINING_CONFIG_FILE, config)
        if metrics is not None:
            write_json(out / "metrics.json", metrics)
        if run is not None:
            _copy_run_files(run, out)
        if gallery is not None:
            gallery.save(out / GALLERY_FILE)
        for format in exports:
            deploy.export(model, deploy.default_path(out / EXPORTS_DIR, format), format=format)
        card = render_model_card(
            model,
            config=config,
            metrics=metrics,
            repo_id=repo_id,
            files=_repo_files(out),
            gallery=gallery,
            license=license,
            tags=tags,
            template=template,
        )
        (out / "README.md").write_text(card, encoding="utf-8")
        write_json(out / MARKER, _marker(model, _repo_files(out)))  # written last
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-written repo is left behind
        raise
    return out


def push_to_hub(
    source,
    repo_id,
    *,
    token=None,
    private=False,
    commit_message=None,
    **save_options,
):
    """Publish a model or training run to the Hugging Face Hub, with its model card.

    Writes the layout of `save_pretrained` into a temporary directory, then
    creates the repo (if needed) and uploads the directory in one commit.

    Args:
        source: a run directory or an `SGMModel` (see `save_pretrained`).
        repo_id: str, `"ORG/NAME"`.
        token: optional str, default None: huggingface_hub's stored login or
            the HF_TOKEN environment variable. It is sent to the Hub only,
            never printed nor written to a file.
        private: bool, default False; create the repo private (False: the
            Hub's default visibility, public unless the organisation says
            otherwise). An existing repo keeps its visibility.
        commit_message: optional str.
        **save_options: `config`, `metrics`, `gallery`, `allow_thumbnails`,
            `license`, `tags`, `template`, `exports` (see `save_pretrained`).

    Returns:
        The repo's URL, a str.

    Raises:
        ValueError: no token, a malformed repo id, or what `save_pretrained` raises.
        PermissionError: the Hub refused the token (HTTP 401 / 403).
        ConnectionError: the Hub was unreachable.
        OSError: another HTTP failure of the Hub (its message, token masked).
    """
    hub = _import_hub("Pushing to the Hub")
    repo_id = str(repo_id).removeprefix("hf://")
    _validate_repo_id(hub, repo_id, "repo_id is not")
    token = token or hub.get_token()
    if not token:
        raise ValueError(f"No Hugging Face token: {_LOGIN_HINT}.")

    with tempfile.TemporaryDirectory(prefix="keras_sgm_hub_") as tmp:
        folder = save_pretrained(source, Path(tmp) / "repo", repo_id=repo_id, **save_options)
        api = hub.HfApi(token=token, library_name="keras_sgm", library_version=__version__)
        try:
            # private=None leaves the visibility to the Hub (its default, or the org's policy)
            url = api.create_repo(
                repo_id, private=True if private else None, exist_ok=True, repo_type="model"
            )
            api.upload_folder(
                repo_id=getattr(url, "repo_id", None) or repo_id,
                folder_path=folder,
                repo_type="model",
                commit_message=commit_message or "Upload keras_sgm model",
            )
        except _hub_errors() as error:
            raise _http_error(error, f"pushing to {repo_id!r}", token) from None
        except _network_errors() as error:
            raise ConnectionError(
                f"Could not push to {repo_id!r}: the Hugging Face Hub was unreachable "
                f"({_scrubbed(error, token)}). Check the network; to prepare the repo "
                "offline, use keras_sgm.hub.save_pretrained (scripts/push_to_hub.py --dry-run)."
            ) from None
    return str(url)


def _source(source):
    """`(model, config, metrics, run)` of a run directory (a `RunDir`) or of a model (run None)."""
    if isinstance(source, keras.Model):
        if not isinstance(source, SGMModel):
            raise ValueError(
                f"Only keras_sgm SGMModels can be published; received a {type(source).__name__}."
            )
        with tempfile.TemporaryDirectory(prefix="keras_sgm_hub_") as tmp:
            # Round trip through a safe load: drops the optimizer, and refuses a
            # model that from_pretrained could not load (a Python lambda).
            source.save(Path(tmp) / "model.keras")
            return safe_load_file(Path(tmp) / "model.keras"), None, None, None
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(
            f"source must be an SGMModel or a run directory; received {type(source).__name__}."
        )
    run = RunDir(source)
    if not run.path.is_dir():
        raise ValueError(f"{run.path} is neither an SGMModel nor a run directory.")
    if not run.model_path.is_file():
        raise ValueError(f"{run.path} is not a training run: it has no model.keras.")
    if run.backup.is_dir() or not run.finished:
        raise ValueError(
            f"The run in {run.path} did not finish (no metrics.json, which training writes "
            "last): finish or resume it before publishing."
        )
    model = safe_load_file(run.model_path)
    return model, _read_json(run.config_path), _read_json(run.metrics_path), run


def _public_config(config):
    if config is None:
        return None
    return {k: v for k, v in dict(config).items() if k not in _LOCAL_PATH_KEYS}


def _checked_gallery(gallery, model, dataset, allow_thumbnails):
    if not isinstance(gallery, Gallery):
        raise ValueError(f"gallery must be a keras_sgm.hub.Gallery; received {type(gallery)}.")
    if gallery.embeddings.shape[1] != model.embedding_dim:
        raise ValueError(
            f"The gallery holds {gallery.embeddings.shape[1]}-d embeddings but the model "
            f"embeds in {model.embedding_dim} dimensions."
        )
    if gallery.thumbnails is None:
        return gallery
    if allow_thumbnails is False:
        return Gallery(gallery.embeddings, gallery.labels)
    if not (allow_thumbnails or dataset in REDISTRIBUTABLE_DATASETS):
        raise ValueError(
            f"The gallery holds thumbnails of the {dataset or 'unknown'!r} dataset, whose "
            "licence may forbid redistributing its images: leave the thumbnails out, or pass "
            "allow_thumbnails=True if the licence allows publishing them."
        )
    return gallery


def _prepare_directory(out, overwrite):
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; pass a directory to write the repo into.")
    if out.is_dir() and any(out.iterdir()):
        if not (overwrite and (out / MARKER).is_file()):
            raise ValueError(
                f"{out} is not empty; choose a new directory"
                + (" (overwrite replaces only an earlier keras_sgm repo)." if overwrite else ".")
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _copy_run_files(run, out):
    """history.csv and figures/*.png of a `RunDir`; logs/, checkpoints/ and backup/ stay behind."""
    if run.history_path.is_file():
        shutil.copyfile(run.history_path, out / RunDir.HISTORY)
    figures = sorted(run.figures.glob("*.png"))
    if figures:
        (out / RunDir.FIGURES).mkdir()
        for figure in figures:
            shutil.copyfile(figure, out / RunDir.FIGURES / figure.name)


def _repo_files(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def _is_empty(directory):
    return directory.is_dir() and not any(directory.iterdir())


def _marker(model, files):
    return {
        "library": "keras_sgm",
        "format_version": FORMAT_VERSION,
        "keras_sgm_version": __version__,
        "keras_version": keras.__version__,
        "model_class": "SGMModel",
        "class_names": model.class_names,
        "input_shape": list(model.encoder.input_shape[1:]),
        "embedding_dim": model.embedding_dim,
        "num_gaussians": int(len(model.gaussian_ids)),
        "files": files,
    }
