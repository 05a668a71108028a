"""Serve keras_sgm's Gradio app from a clone: `python apps/app.py [--model ORG/NAME | DIR]`.

The app is `keras_sgm.serving.app`; `python apps/app.py --help` lists its flags.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.serving.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], app_dir=Path(__file__).parent))
