"""Collection rules for the whole repository (the doctests of `keras_sgm/` and `tests/`).

Each module of `keras_sgm/steps/` other than `common.py` imports its backend (`jax`, `torch`,
`tensorflow`) at the top, and is imported by `keras_sgm.steps` only under that backend. The
doctest collector would import all of them: torch is not installed in CI, and the PyPI wheels of
TensorFlow and PyTorch crash when TensorFlow is loaded first. So only the current backend's
step module is collected.
"""

import os
from pathlib import Path

_STEP_MODULES = {
    "tensorflow_steps.py": "tensorflow",
    "jax_steps.py": "jax",
    "torch_steps.py": "torch",
}


def pytest_ignore_collect(collection_path: Path, config):
    backend = _STEP_MODULES.get(collection_path.name)
    if backend is None or collection_path.parent.name != "steps":
        return None
    return backend != os.environ.get("KERAS_BACKEND", "tensorflow")
