"""A keras_sgm model repo (a folder, on disk or on the Hub): its layout, checks, and loading.

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
    exports/              optional: model.onnx, model.tflite, saved_model/ (keras_sgm.export)

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
import json
from pathlib import Path

from keras_sgm._version import __version__
from keras_sgm.hub._safe import safe_load
from keras_sgm.hub.errors import _http_error, _import_hub, _network_errors, _validate_repo_id
from keras_sgm.hub.gallery import Gallery
from keras_sgm.model import SGMModel
from keras_sgm.runs.rundir import RunDir

FORMAT_VERSION = 1
"""Version of the repo layout; `load_pretrained` refuses a newer one."""

MARKER = "keras_sgm.json"
"""The file that marks a directory as a keras_sgm model repo."""

MODEL_FILES = ("config.json", "metadata.json", "model.weights.h5")
"""Keras' unzipped model layout, the one its `hf://` saving writes."""

EXPORTS_DIR = "exports"
"""Where `save_pretrained(..., exports=...)` puts `keras_sgm.export` files."""

GALLERY_FILE = "gallery.npz"
TRAINING_CONFIG_FILE = "training_config.json"


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

    Examples:
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
    if gallery is not None and gallery.embeddings.shape[1] != model.embedding_dim:
        raise ValueError(
            f"{path / GALLERY_FILE} holds {gallery.embeddings.shape[1]}-d embeddings but the "
            f"model embeds in {model.embedding_dim} dimensions."
        )
    return Pretrained(model, path, info, config, metrics, gallery)


def load_model(source):
    """The `SGMModel` of a `.keras` file, a training run's folder (`scripts/train.py
    --output`), a keras_sgm repo folder or a Hub repo id, loaded with `safe_mode` on.

    What `scripts/export.py` reads.

    Raises:
        ValueError: a missing file, or something that holds no `SGMModel`.
    """

    path = Path(source).expanduser()
    refusal = f"Refused to load {path}: it holds a Python lambda, which safe_mode forbids."
    if path.suffix == ".keras":
        if not path.is_file():
            raise ValueError(f"No model file {path}.")
        return safe_load(path, refusal=refusal)
    run = RunDir(path)
    if path.is_dir() and run.model_path.is_file() and run.config_path.is_file():
        return safe_load(run.model_path, refusal=refusal)
    return from_pretrained(source)


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

    try:
        snapshot = hub.snapshot_download(
            repo_id,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            library_name="keras_sgm",
            library_version=__version__,
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

    return safe_load(
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
