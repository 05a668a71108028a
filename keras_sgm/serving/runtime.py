"""What the app runs a model with: the `.keras` model, or one of its exports.

`--runtime onnx` (or `litert`) serves `keras_sgm.deploy.ExportedModel` in place of
the Keras model: the face crops go through the exported graph, encoder and Gaussian
head together, run by onnxruntime (or the LiteRT interpreter), and the gallery-side
maths (its posteriors, the sub-class browser) run on the `GaussianHead` rebuilt from
the export's metadata. `export_path` says where a repo keeps each export.

`apps/app.py --runtime onnx` runs Keras on NumPy (its launcher chooses
`KERAS_BACKEND=numpy` before Keras is imported), and then nothing imports
TensorFlow: not the exported graph, not the Keras ops of the head, and not
`keras_sgm.retrieval.ExactIndex`, which searches in NumPy in a process without
TensorFlow (`tests/test_app_runtime.py` checks `sys.modules`).
"""

from pathlib import Path

from keras_sgm import deploy
from keras_sgm.hub import EXPORTS_DIR

RUNTIMES = ("keras", "onnx", "litert")
"""What the app can run a model with: the `.keras` model, or one of its exports."""


def export_path(repo_dir, runtime, must_exist=True):
    """The export a repo folder holds for `runtime` (`exports/model.onnx`, ...): the file
    `push_to_hub.py --export` writes for the format of the same name.

    Args:
        repo_dir: the repo folder.
        runtime: `"onnx"` or `"litert"`.
        must_exist: bool, default True; refuse a repo without that export.

    Raises:
        ValueError: an unknown runtime, or a repo without that export (says how to add it).
    """
    if runtime not in RUNTIMES or runtime == "keras":
        raise ValueError(f"Unknown runtime {runtime!r}; choose one of {list(RUNTIMES)}.")
    folder = Path(repo_dir) / EXPORTS_DIR
    path = deploy.default_path(folder, runtime)
    if must_exist and not path.is_file():
        raise ValueError(
            f"{repo_dir} holds no {EXPORTS_DIR}/{path.name} to serve with "
            f"--runtime {runtime}: publish it with scripts/push_to_hub.py --export {runtime}, "
            f"or write it with scripts/export.py {repo_dir} --format {runtime} "
            f"--output {folder}."
        )
    return path
