"""The model the app serves when none is named: trained once on the synthetic faces, cached.

Any machine can serve it offline: it is `scripts/train.py`'s default run
(FMPNet trained with SGMLoss on the synthetic faces), saved as a keras_sgm repo
whose gallery is the training split with thumbnails (the synthetic faces may be
redistributed). It is trained on first use rather than shipped: its weights do
not belong in git, and the training code is what keras_sgm offers.
"""

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from keras_sgm import deploy, hub, runs
from keras_sgm.serving.runtime import export_path

logger = logging.getLogger("keras_sgm.serving")

DEFAULT_MODEL_ENV = "KERAS_SGM_DEMO_MODEL"
"""The environment variable naming the directory of the cached default model (its name, like
the cache folder's, is what users set and what caches on disk hold)."""


def default_model_dir():
    """Where the default model is cached: `$KERAS_SGM_DEMO_MODEL`, else the user cache."""
    if os.environ.get(DEFAULT_MODEL_ENV):
        return Path(os.environ[DEFAULT_MODEL_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "keras_sgm" / "demo_synthetic_faces"


def ensure_default_model(directory=None, config=None, progress=None, runtime="keras"):
    """The directory of the default model, trained (and exported) on first use.

    Training takes about 70 s on 2 CPU cores. With `runtime` `"onnx"` or
    `"litert"` the repo also holds that export (`exports/model.onnx`, ...),
    written on first use. Training and exporting need Keras on TensorFlow: a
    process that runs Keras on another backend (the app serving an export runs
    it on NumPy, to import no TensorFlow) has a TensorFlow process do both, and
    waits for it.

    Args:
        directory: optional path (default `default_model_dir()`).
        config: optional `keras_sgm.runs.TrainConfig` or dict of its
            fields, overriding the default run (its `output` is ignored).
        progress: optional callable taking a message string.
        runtime: str, default `"keras"`; `"onnx"` or `"litert"` to export too.

    Returns:
        The `Path` of the repo directory.

    Raises:
        RuntimeError: the TensorFlow process failed (its output is above).
    """
    import keras

    directory = Path(directory) if directory is not None else default_model_dir()
    say = progress or logger.info
    trained = (directory / hub.MARKER).is_file()
    exported = runtime == "keras" or export_path(directory, runtime, must_exist=False).is_file()
    if trained and exported:
        return directory
    if runtime != "keras" and keras.backend.backend() != "tensorflow":
        _in_tensorflow(directory, config, runtime, say)
        return directory
    if not trained:
        _train(directory, config, say)
    if not exported:
        _export(directory, runtime)
    return directory


def _train(directory, config, say):
    """Train the default run and save it as a repo in `directory`, staged beside it."""
    if config is None:
        config = runs.TrainConfig()
    values = dict(config) if isinstance(config, dict) else dataclasses.asdict(config)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="keras_sgm_default_", dir=directory.parent) as tmp:
        values.update(output=str(Path(tmp) / "run"), resume=False, overwrite=False, verbose=0)
        run_config = runs.TrainConfig.from_dict(values)
        say(
            f"Training the default model ({run_config.arch}, {run_config.epochs} epochs on "
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
    say(f"Default model saved in {directory}.")


def _export(directory, runtime):
    """Write the repo's `runtime` export (`keras_sgm.export`), staged beside it."""
    path = export_path(directory, runtime, must_exist=False)
    path.parent.mkdir(exist_ok=True)
    staged = path.with_name(f".{os.getpid()}{path.suffix}")  # another process may race
    deploy.export(hub.from_pretrained(directory), staged, format=runtime)
    os.replace(staged, path)


def _in_tensorflow(directory, config, runtime, say):
    """Run `ensure_default_model` in a child process with KERAS_BACKEND=tensorflow."""
    say(f"Preparing the default model's {runtime} export in a TensorFlow process (once)...")
    if config is not None and not isinstance(config, dict):
        config = dataclasses.asdict(config)
    code = (
        "import json, sys\n"
        "from keras_sgm.serving.default_model import ensure_default_model\n"
        "ensure_default_model(sys.argv[1], json.loads(sys.argv[2]), print, sys.argv[3])\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    args = [str(directory), json.dumps(config), runtime]
    done = subprocess.run([sys.executable, "-c", code, *args], env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"Preparing the default model's {runtime} export failed (exit {done.returncode}; "
            "its output is above). Run `python apps/app.py` once with the Keras runtime, or "
            "pass --model."
        )
