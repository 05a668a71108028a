"""Serve keras_sgm's Gradio app from a clone: `python apps/app.py [--model ORG/NAME | DIR]`.

The app is `keras_sgm.serving.app`; `python apps/app.py --help` lists its flags.
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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.serving.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], app_dir=Path(__file__).parent))
