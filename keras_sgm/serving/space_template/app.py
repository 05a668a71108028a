"""A Hugging Face Space's entry point (written by scripts/make_space.py): keras_sgm's app.

The model served is the first of `models:` in this folder's README.md.
"""

import os
import sys
from pathlib import Path


def _backend(argv):
    """Keras' backend for this launch, chosen before Keras is imported: NumPy when an export
    serves the model (`--runtime onnx` or `litert`, or $KERAS_SGM_RUNTIME), so that no
    TensorFlow is imported; TensorFlow otherwise."""
    runtime = os.environ.get("KERAS_SGM_RUNTIME", "keras")
    for i, arg in enumerate(argv):
        if arg == "--runtime" and i + 1 < len(argv):
            runtime = argv[i + 1]
        elif arg.startswith("--runtime="):
            runtime = arg.split("=", 1)[1]
    return "numpy" if runtime in ("onnx", "litert") else "tensorflow"


os.environ.setdefault("KERAS_BACKEND", _backend(sys.argv[1:]))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from keras_sgm.serving.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], app_dir=Path(__file__).parent))
