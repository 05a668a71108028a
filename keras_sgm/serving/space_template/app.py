"""A Hugging Face Space's entry point (written by scripts/make_space.py): keras_sgm's app.

The model served is the first of `models:` in this folder's README.md.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from keras_sgm.serving.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], app_dir=Path(__file__).parent))
