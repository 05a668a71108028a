"""The default model of the app: trained once on the synthetic faces, cached, served offline."""

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger("keras_sgm.serving")

DEMO_MODEL_ENV = "KERAS_SGM_DEMO_MODEL"
"""Environment variable naming the directory of the cached default model."""


def default_demo_dir():
    """Where the default model is cached: `$KERAS_SGM_DEMO_MODEL`, else the user cache."""
    if os.environ.get(DEMO_MODEL_ENV):
        return Path(os.environ[DEMO_MODEL_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "keras_sgm" / "demo_synthetic_faces"


def ensure_demo_model(directory=None, config=None, progress=None):
    """The directory of the default model, training and caching it on first use.

    The default model is `scripts/train.py`'s default run (FMPNet trained with
    SGMLoss on the synthetic faces, about 70 s on 2 CPU cores), saved as a
    keras_sgm repo whose gallery is the training split with thumbnails (the
    synthetic faces may be redistributed).

    Args:
        directory: optional path (default `default_demo_dir()`).
        config: optional `keras_sgm.runs.TrainConfig` or dict of its
            fields, overriding the default run (its `output` is ignored).
        progress: optional callable taking a message string.

    Returns:
        The `Path` of the repo directory.
    """
    from keras_sgm import hub, runs

    directory = Path(directory) if directory is not None else default_demo_dir()
    say = progress or logger.info
    if (directory / hub.MARKER).is_file():
        return directory
    if config is None:
        config = runs.TrainConfig()
    values = dict(config) if isinstance(config, dict) else dataclasses.asdict(config)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="keras_sgm_demo_", dir=directory.parent) as tmp:
        values.update(output=str(Path(tmp) / "run"), resume=False, overwrite=False, verbose=0)
        run_config = runs.TrainConfig.from_dict(values)
        say(
            f"Training the demo model ({run_config.arch}, {run_config.epochs} epochs on "
            f"{run_config.dataset}); this happens once and takes about a minute on 2 CPU cores..."
        )
        runs.train(run_config)
        say("Embedding the gallery...")
        gallery = hub.Gallery.from_run(run_config.output, split="train", thumbnails=True)
        staged = Path(tmp) / "repo"
        hub.save_pretrained(run_config.output, staged, gallery=gallery)
        if not (directory / hub.MARKER).is_file():  # another process may have won the race
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(staged, directory)
    say(f"Demo model saved in {directory}.")
    return directory


def ensure_demo_export(directory, runtime):
    """The default model's export for `runtime` (`"onnx"`, `"litert"`) in its cached repo
    (`exports/model.onnx`, ...), written on first use (`keras_sgm.export` needs TensorFlow)."""
    from keras_sgm import deploy, hub
    from keras_sgm.serving.runtime import export_path

    path = export_path(directory, runtime, must_exist=False)
    if not path.is_file():
        path.parent.mkdir(exist_ok=True)
        staged = path.with_name(f".{os.getpid()}{path.suffix}")  # another process may race
        deploy.export(hub.from_pretrained(directory), staged, format=runtime)
        os.replace(staged, path)
    return export_path(directory, runtime)


def ensure_demo_exported(runtime, directory=None, progress=None):
    """The default model's repo with its `runtime` export, trained and exported on first use.

    Training and exporting need Keras on TensorFlow; a process that runs Keras on
    another backend (the app serving an export runs it on NumPy, to import no
    TensorFlow) has a TensorFlow process do both, once, and waits for it.

    Returns:
        The `Path` of the repo directory.
    """
    import keras

    from keras_sgm import hub
    from keras_sgm.serving.runtime import export_path

    directory = Path(directory) if directory is not None else default_demo_dir()
    exported = export_path(directory, runtime, must_exist=False).is_file()
    if (directory / hub.MARKER).is_file() and exported:
        return directory
    if keras.backend.backend() == "tensorflow":
        ensure_demo_export(ensure_demo_model(directory, progress=progress), runtime)
        return directory
    (progress or logger.info)(
        f"Preparing the demo model's {runtime} export in a TensorFlow process (once)..."
    )
    code = (
        "import sys\n"
        "from keras_sgm.serving.default_model import ensure_demo_exported\n"
        "ensure_demo_exported(sys.argv[2], sys.argv[1], progress=print)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, "-c", code, str(directory), runtime], env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"Preparing the demo model's {runtime} export failed (exit {done.returncode}; its "
            "output is above). Run `python apps/app.py` once with the Keras runtime, or pass "
            "--model."
        )
    return directory
