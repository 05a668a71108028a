"""Launch keras_sgm's Gradio app: a Hugging Face Space's `app.py`, and what `apps/app.py` runs.

The model served is the first of `models:` in the README.md beside this file
(a Space's front matter; the template's names none, so a clone serves the
default model); `--help` lists the flags of `keras_sgm.serving.app.main`.

Keras' backend is chosen here, before Keras is imported: Keras reads
KERAS_BACKEND once, when it is first imported, and `import keras_sgm.<anything>`
runs keras_sgm/__init__.py, which imports Keras. So the choice cannot live in
the package; it lives in this file, which imports no keras_sgm until it has
chosen, and the other launchers run it (`runpy.run_path`) instead of writing it
again: `apps/app.py` in a clone, and `bench/app_latency.py`.
"""

import os
import sys
from pathlib import Path

EXPORT_RUNTIMES = ("onnx", "litert")
"""The runtimes that serve an export, with Keras on NumPy (TensorFlow never imported)."""


def runtime_of(argv):
    """The runtime `argv` asks for: `--runtime X` or `--runtime=X`, else $KERAS_SGM_RUNTIME,
    else `"keras"`."""
    runtime = os.environ.get("KERAS_SGM_RUNTIME") or "keras"
    for i, arg in enumerate(argv):
        if arg == "--runtime" and i + 1 < len(argv):
            runtime = argv[i + 1]
        elif arg.startswith("--runtime="):
            runtime = arg.split("=", 1)[1]
    return runtime


def choose_backend(argv):
    """Set KERAS_BACKEND for the runtime `argv` asks for, unless it is set already.

    NumPy when an export serves the model (`--runtime onnx` or `litert`), so
    that no TensorFlow is imported; TensorFlow otherwise (training the default
    model and the Keras runtime need it). TensorFlow's C++ logging is kept to
    warnings and errors (TF_CPP_MIN_LOG_LEVEL=2, read when TensorFlow loads).
    """
    backend = "numpy" if runtime_of(argv) in EXPORT_RUNTIMES else "tensorflow"
    os.environ.setdefault("KERAS_BACKEND", backend)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv):
    """Choose the backend, then serve the app (`keras_sgm.serving.app.main`)."""
    choose_backend(argv)
    from keras_sgm.serving.app import main as serve  # imports Keras: after the choice

    return serve(argv, app_dir=Path(__file__).parent)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
