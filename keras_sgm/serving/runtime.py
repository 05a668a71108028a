"""Serve an exported model (`keras_sgm.export`) instead of the Keras one: `--runtime onnx`.

`ExportedModel` answers what `ExpressionDemo` asks of an `SGMModel` (embeddings,
posteriors, the known score, the Gaussians for the group browser) from an ONNX
(or LiteRT) file: the face crops go through the exported graph, encoder and
Gaussian head together, run by onnxruntime (or the LiteRT interpreter); Keras
never runs the encoder. The Gaussians travel in the file's metadata, so the gallery's
posteriors and the sub-class browser need nothing else.

`apps/app.py --runtime onnx` runs Keras on NumPy (its launcher chooses
`KERAS_BACKEND=numpy` before Keras is imported), and then nothing imports
TensorFlow: not the exported graph, not the Keras ops of the gallery-side maths, and
not `keras_sgm.retrieval.ExactIndex`, which searches in NumPy in a process without
TensorFlow (`tests/test_app_runtime.py` checks `sys.modules`). In a process that
runs Keras on TensorFlow, `ExportedModel` still runs the encoder with onnxruntime.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition.
"""

from pathlib import Path

import keras
import numpy as np

from keras_sgm import deploy

RUNTIMES = ("keras", "onnx", "litert")
"""What the app can run a model with: the `.keras` model, or one of its exports."""


class ExportedModel:
    """An exported keras_sgm model served like an `SGMModel` (the parts the app uses).

    Args:
        path: a `.onnx` or `.tflite` file written by `keras_sgm.export`.

    Attributes:
        name, class_names, sigma, posterior_sigma, reject_below, input_shape,
        embedding_dim, classes_, gaussian_means, gaussian_ids, gaussian_classes,
        runtime (`"onnx"` or `"litert"`).

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: a file `export` did not write, or a SavedModel (served by
            TensorFlow Serving, not by the app).
        ImportError: its runtime is not installed (names the extra).
    """

    def __init__(self, path):
        path = Path(path)
        if path.is_dir():
            raise ValueError(
                f"{path} is a SavedModel, which TensorFlow Serving serves; the app serves "
                "model.onnx (--runtime onnx) or model.tflite (--runtime litert)."
            )
        self._exported = deploy.Exported(path)
        meta = self._exported.metadata
        self.path = path
        self.runtime = self._exported.format
        self.name = meta["name"]
        self.input_shape = tuple(meta["input"]["shape"])
        means = np.asarray(meta["gaussian_means"], "float32")
        # the gallery-side maths (posteriors and known scores of stored embeddings, the
        # sub-class browser) are SGMModel's own, on an encoder that passes embeddings through
        from keras_sgm.model import SGMModel

        identity = keras.Sequential(
            [keras.Input((means.shape[1],)), keras.layers.Identity()], name="embeddings"
        )
        names = meta["model_class_names"]
        head = SGMModel(identity, sigma=meta["training_sigma"], class_names=names)
        head.set_gaussians(means, meta["gaussian_ids"], meta["gaussian_classes"])
        head.posterior_sigma, head.reject_below = meta["sigma"], meta["reject_below"]
        self._head = head

    def __repr__(self):
        return f"ExportedModel({str(self.path)!r}, runtime={self.runtime!r})"

    # what the engine reads of an SGMModel
    class_names = property(lambda self: self._head.class_names)
    sigma = property(lambda self: self._head.sigma)
    posterior_sigma = property(lambda self: self._head.posterior_sigma)
    reject_below = property(lambda self: self._head.reject_below)
    classes_ = property(lambda self: self._head.classes_)
    gaussian_means = property(lambda self: self._head.gaussian_means)
    gaussian_ids = property(lambda self: self._head.gaussian_ids)
    gaussian_classes = property(lambda self: self._head.gaussian_classes)
    embedding_dim = property(lambda self: self._head.embedding_dim)

    def infer(self, images):
        """The export's outputs for a batch: `{embedding, posteriors, class_index,
        known_score}` as numpy arrays (one run of the exported graph)."""
        return self._exported(images)

    def predict_on_batch(self, images):
        return self.infer(images)["embedding"]

    def predict(self, images, batch_size=256, verbose=0):
        """Embeddings `[n, dim]`, `batch_size` images at a time."""
        images = np.asarray(images, "float32")
        starts = range(0, len(images), batch_size)
        parts = [self.predict_on_batch(images[i : i + batch_size]) for i in starts]
        return np.concatenate(parts) if parts else np.zeros((0, self.embedding_dim), "float32")

    def posterior_from_embeddings(self, embeddings):
        return self._head.posterior_from_embeddings(embeddings)

    def gaussian_posterior_from_embeddings(self, embeddings, gaussians=None):
        return self._head.gaussian_posterior_from_embeddings(embeddings, gaussians)

    def known_score_from_embeddings(self, embeddings):
        return self._head.known_score_from_embeddings(embeddings)


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
    from keras_sgm.hub import EXPORTS_DIR

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
