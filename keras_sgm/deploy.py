"""Export a trained `SGMModel` with its Gaussians, for serving without Python or Keras.

`export(model, path, format=...)` writes one artefact whose single signature takes
a batch of face crops (the encoder's input, `float32`) and returns

- `embedding`: `[n, dim]`, the encoder's output;
- `posteriors`: `[n, classes]`, Bayes' rule over the fitted Gaussians with the
  model's sigma (the calibrated `posterior_sigma` where there is one), summed per
  original class when the Gaussians are DGMS sub-classes: exactly `predict_proba`;
- `class_index`: `[n]` int32, the column of the largest posterior (ties: the first);
- `known_score`: `[n]`, the head's `known_score` (the model answers "unknown"
  below `reject_below`, which the metadata carries).

The artefact carries a JSON metadata record (`read_metadata`): the class names and
ids of the posterior columns, sigma, `reject_below`, the input shape, and which
outputs there are. Formats:

| format        | writes                           | metadata                         |
|---------------|----------------------------------|----------------------------------|
| `saved_model` | a SavedModel folder (TF Serving) | `assets.extra/keras_sgm.json`    |
| `onnx`        | a `.onnx` file                   | `metadata_props["keras_sgm"]`    |
| `litert`      | a `.tflite` file (LiteRT)        | the flatbuffer's `keras_sgm` entry |

ONNX needs tf2onnx and onnx to write, onnxruntime to run; LiteRT runs with
ai-edge-litert: `pip install keras-sgm[export]` installs them.

The graph is traced by TensorFlow, so `export` runs under `KERAS_BACKEND=tensorflow`
(a model trained on JAX or PyTorch exports from its `.keras` file loaded there).
The parity tests (`tests/test_deploy.py`) run each artefact with its own runtime
(TensorFlow, onnxruntime, the LiteRT interpreter) and compare with the Keras model.
"""

import json
from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_sgm._version import __version__
from keras_sgm.gaussian_head import GaussianHead
from keras_sgm.model import SGMModel

FORMATS = ("saved_model", "onnx", "litert")
"""The formats `export` writes."""

OUTPUTS = ("embedding", "posteriors", "class_index", "known_score")
"""The outputs of an exported signature, by name."""

INPUT_NAME = "images"
"""The name of an exported signature's input."""

METADATA_KEY = "keras_sgm"
"""The key (ONNX), entry (LiteRT) and file stem (SavedModel) of the metadata record."""

SCHEMA = "keras_sgm.export/1"
"""The metadata record's `schema`: bumped when its fields change meaning."""

_SUFFIX = {"saved_model": "", "onnx": ".onnx", "litert": ".tflite"}


def _sgm_model(model):
    if not isinstance(model, SGMModel):
        raise ValueError(f"export needs a keras_sgm.SGMModel; received {type(model).__name__}.")
    if len(model.gaussian_ids) == 0:
        raise ValueError(
            "This SGMModel has no Gaussians to export: call "
            "model.fit_gaussians(x_train, y_train) after training."
        )
    return model


def metadata(model):
    """The metadata record `export` writes beside the graph, as a dict (JSON-ready).

    Args:
        model: a `keras_sgm.SGMModel` with Gaussians.

    Returns:
        A dict: `schema`, `input` (name, shape, dtype), `outputs`, `class_ids` and
        `class_names` (one per posterior column), `sigma` (the one the posteriors
        use), `reject_below`, `subclasses` (whether sub-class Gaussians were summed
        per class), and the Gaussians (`gaussian_ids`, `gaussian_classes`,
        `gaussian_means`) with `model_class_names` and `training_sigma`, from which
        `head_from_metadata` rebuilds the head (`ExportedModel.head`).
    """
    model = _sgm_model(model)
    head = model.head
    classes = [int(c) for c in head.classes_]
    return {
        "schema": SCHEMA,
        "keras_sgm_version": __version__,
        "name": model.name,
        "input": {
            "name": INPUT_NAME,
            "shape": [None, *(int(d) for d in model.encoder.input_shape[1:])],
            "dtype": "float32",
        },
        "outputs": list(OUTPUTS),
        "class_ids": classes,
        "class_names": [_column_name(head, c) for c in classes],
        "sigma": float(head.scoring_sigma),
        "reject_below": None if head.reject_below is None else float(head.reject_below),
        "subclasses": bool(len(head.gaussian_ids) > len(classes)),
        "model_class_names": head.class_names,
        "training_sigma": float(head.sigma),
        # the Gaussians themselves: a server browses sub-classes and scores gallery rows
        "gaussian_ids": [int(i) for i in head.gaussian_ids],
        "gaussian_classes": [int(c) for c in head.gaussian_classes],
        "gaussian_means": head.gaussian_means.tolist(),
    }


def _column_name(head, class_id):
    name = head.class_name(class_id)
    return name if isinstance(name, str) else f"class {class_id}"


def head_from_metadata(record):
    """The `GaussianHead` an export was written with, rebuilt from its metadata record.

    Args:
        record: the dict `read_metadata` returns (or `ExportedModel.metadata`).

    Returns:
        A `GaussianHead` with the export's Gaussians, class names, training sigma,
        calibrated sigma and reject threshold: its `posterior` and `known_score` of
        an embedding are the export's `posteriors` and `known_score`.
    """
    head = GaussianHead(record["training_sigma"], class_names=record["model_class_names"])
    head.set_gaussians(
        np.asarray(record["gaussian_means"], "float32"),
        record["gaussian_ids"],
        record["gaussian_classes"],
    )
    if record["sigma"] != record["training_sigma"]:
        head.posterior_sigma = record["sigma"]
    head.reject_below = record["reject_below"]
    return head


def serving_model(model):
    """A functional Keras model from face crops to the four outputs of an export.

    Args:
        model: a `keras_sgm.SGMModel` with Gaussians.

    Returns:
        A `keras.Model` whose input is named `images` and whose outputs are the
        dict `{embedding, posteriors, class_index, known_score}` (see the module).
    """
    model = _sgm_model(model)
    images = keras.Input(model.encoder.input_shape[1:], name=INPUT_NAME, dtype="float32")
    embedding = model.encoder(images)
    posteriors, known_score = model.head(embedding)  # the model's own head, not a copy
    # top_k, not argmax: Keras' argmax on TensorFlow adds a NaN check (Bitcast,
    # BitwiseAnd) that neither ONNX nor LiteRT has; top_k keeps the first of ties too.
    class_index = ops.top_k(posteriors, 1)[1][:, 0]
    outputs = dict(zip(OUTPUTS, (embedding, posteriors, class_index, known_score), strict=True))
    return keras.Model(images, outputs, name=f"{model.name}_serving")


def _check_format(format):
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; choose one of {list(FORMATS)}.")


def check_can_export(format):
    """Raise what `export` would raise for `format` before it converts anything: an
    unknown format (`ValueError`), another backend (`RuntimeError`), a converter
    that is not installed (`ImportError`, naming the extra)."""
    _check_format(format)
    _require(format)


def _require(format):
    """Import what `format` needs, or say which extra installs it."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"keras_sgm.export ({format}) needs KERAS_BACKEND=tensorflow; this process runs "
            f"Keras on {backend!r}. Save the model (model.save('model.keras')) and export it "
            "from a TensorFlow process: KERAS_BACKEND=tensorflow python scripts/export.py "
            "--model model.keras ..."
        )
    needs = {"onnx": ["tf2onnx", "onnx"], "litert": ["flatbuffers"]}.get(format, [])
    for module in needs:
        try:
            __import__(module)
        except ImportError as error:
            raise ImportError(
                f"Exporting to {format} needs {module}: `pip install keras-sgm[export]` "
                f"(installs tf2onnx, onnx, onnxruntime and ai-edge-litert)."
            ) from error


def default_path(directory, format):
    """Where `export` writes `format` inside `directory`: `model.onnx`, `model.tflite`,
    or the folder `saved_model`."""
    _check_format(format)
    name = "saved_model" if format == "saved_model" else f"model{_SUFFIX[format]}"
    return Path(directory) / name


def export(model, path, format="saved_model", verbose=False):
    """Write `model` (with its Gaussian head and metadata) to `path` in `format`.

    Args:
        model: a `keras_sgm.SGMModel` with Gaussians (`fit_gaussians`).
        path: the SavedModel folder, or the `.onnx` / `.tflite` file, to write;
            its parent folders are made.
        format: `"saved_model"` (default), `"onnx"` or `"litert"`.
        verbose: bool, default False; let the converter print.

    Returns:
        The `Path` written.

    Raises:
        ValueError: not an `SGMModel`, no Gaussians, an unknown format, or a file
            suffix that is not the format's.
        ImportError: the format's converter is not installed (names the extra).
        RuntimeError: Keras runs on another backend than TensorFlow.

    Examples:
        >>> import keras, numpy as np, keras_sgm, tempfile
        >>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
        ...                             keras.layers.Dense(2)])
        >>> x = np.random.default_rng(0).uniform(size=(6, 8, 8, 1)).astype("float32")
        >>> model = keras_sgm.SGMModel(encoder, class_names=["neutral", "happiness"])
        >>> model = model.fit_gaussians(x, [0, 1, 0, 1, 0, 1])
        >>> folder = keras_sgm.export(model, tempfile.mkdtemp() + "/sm")
        >>> keras_sgm.deploy.read_metadata(folder)["class_names"]
        ['neutral', 'happiness']
    """
    _check_format(format)
    path = Path(path)
    suffix = _SUFFIX[format]
    if suffix and path.suffix != suffix:
        raise ValueError(f"A {format} export is a {suffix} file; received the path {path}.")
    _require(format)
    record = metadata(model)
    graph = serving_model(model)
    graph(np.zeros((1, *record["input"]["shape"][1:]), "float32"))  # converters want a call
    path.parent.mkdir(parents=True, exist_ok=True)
    keras_format = {"saved_model": "tf_saved_model"}.get(format, format)
    graph.export(str(path), format=keras_format, verbose=verbose)
    text = json.dumps(record, indent=1)
    if format == "saved_model":
        extra = path / "assets.extra"
        extra.mkdir(exist_ok=True)
        (extra / f"{METADATA_KEY}.json").write_text(text + "\n")
    elif format == "onnx":
        _onnx_set_metadata(path, text)
    else:
        _litert_set_metadata(path, text)
    return path


def read_metadata(path):
    """The metadata record of an artefact `export` wrote (a SavedModel folder, `.onnx`
    or `.tflite` file), as a dict; no TensorFlow needed.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the artefact holds no keras_sgm record (not written by `export`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No exported model at {path}.")
    if path.is_dir():
        file = path / "assets.extra" / f"{METADATA_KEY}.json"
        text = file.read_text() if file.exists() else None
    elif path.suffix == ".onnx":
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
        text = props.get(METADATA_KEY)
    elif path.suffix == ".tflite":
        text = _litert_metadata(path)
    else:
        raise ValueError(
            f"{path} is not an export: a SavedModel folder, a .onnx or a .tflite file."
        )
    return _record(text, path)


def _record(text, path):
    """The metadata record from its JSON text (None: the artefact at `path` has none)."""
    if text is None:
        raise ValueError(f"{path} holds no {METADATA_KEY} metadata: it was not written by export.")
    return json.loads(text)


def _onnx_set_metadata(path, text):
    import onnx

    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.add(key=METADATA_KEY, value=text)
    onnx.save(proto, str(path))


def _litert_schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError as error:
            raise ImportError(
                "Reading a .tflite file's metadata needs ai-edge-litert: "
                "`pip install keras-sgm[export]`."
            ) from error
    return schema


def _litert_set_metadata(path, text):
    """Add the record as the flatbuffer's metadata entry `keras_sgm` (one more buffer)."""
    import flatbuffers

    schema = _litert_schema()
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(text.encode(), np.uint8)
    model.buffers = list(model.buffers or []) + [buffer]
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    names = (METADATA_KEY, METADATA_KEY.encode())
    others = [m for m in model.metadata or [] if m.name not in names]
    model.metadata = others + [entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def _litert_metadata(path):
    schema = _litert_schema()
    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == METADATA_KEY:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode()
    return None


class ExportedModel:
    """An export run by its own runtime, served in place of the `SGMModel` it came from.

    The face crops go through the exported graph (encoder and Gaussian head together)
    run by TensorFlow (SavedModel), onnxruntime (ONNX) or the LiteRT interpreter
    (`.tflite`); Keras never runs the encoder. The Gaussians travel in the metadata, and
    `head` is the `GaussianHead` rebuilt from them, for what is computed on stored
    embeddings (a gallery's posteriors, the sub-class browser): the same layer, and the
    same numbers, as the model's own head.

    Args:
        path: what `export` wrote.

    Attributes:
        path: the artefact's `Path`.
        format: `"saved_model"`, `"onnx"` or `"litert"`.
        metadata: its record (`read_metadata`).
        name: the model's name.
        input_shape: `(None, height, width, channels)`.
        head: the `GaussianHead` rebuilt from the record (`head_from_metadata`).

    Call it on a `float32` batch of the model's input to get the dict of `OUTPUTS`
    as numpy arrays. Not thread-safe for LiteRT: hold a lock around calls.

    Raises:
        FileNotFoundError: nothing at `path`.
        ValueError: an artefact `export` did not write.
        ImportError: its runtime is not installed (names the extra).
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"No exported model at {self.path}.")
        if self.path.is_dir():
            self.format = "saved_model"
            self.metadata = read_metadata(self.path)
            self._run = _saved_model_runner(self.path)
        elif self.path.suffix == ".onnx":
            self.format = "onnx"
            self._run, self.metadata = _onnx_runner(self.path)
        else:
            self.format = "litert"
            self.metadata = read_metadata(self.path)
            self._run = _litert_runner(self.path)
        self.name = self.metadata["name"]
        self.input_shape = tuple(self.metadata["input"]["shape"])
        self.head = head_from_metadata(self.metadata)

    def __repr__(self):
        return f"ExportedModel({str(self.path)!r}, format={self.format!r})"

    @property
    def class_names(self):
        return self.head.class_names

    @property
    def embedding_dim(self):
        return int(self.head.gaussian_means.shape[1])

    def __call__(self, images):
        images = np.asarray(images, "float32")
        if images.shape[1:] != self.input_shape[1:]:
            raise ValueError(
                f"{self.path} takes a batch of shape {list(self.input_shape)}; received "
                f"{list(images.shape)}."
            )
        outputs = self._run(images)
        return {name: np.asarray(outputs[name]) for name in OUTPUTS}

    def predict_on_batch(self, images):
        """The embeddings `[n, dim]` of one batch."""
        return self(images)["embedding"]

    def predict(self, images, batch_size=256, verbose=0):
        """Embeddings `[n, dim]`, `batch_size` images at a time (`verbose` is ignored: it
        is there to be called like `keras.Model.predict`)."""
        images = np.asarray(images, "float32")
        starts = range(0, len(images), batch_size)
        parts = [self.predict_on_batch(images[i : i + batch_size]) for i in starts]
        return np.concatenate(parts) if parts else np.zeros((0, self.embedding_dim), "float32")


def _saved_model_runner(path):
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda images: {k: v.numpy() for k, v in signature(images=images).items()}


def _onnx_runner(path):
    """`(run, metadata)`: the record from the session's own parse of the file, not a
    second one by onnx (serving needs onnxruntime alone)."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            "Running an ONNX export needs onnxruntime: `pip install keras-sgm[export]`."
        ) from error
    options = onnxruntime.SessionOptions()
    # no busy-waiting threads between calls: a server does other work in between
    # (face detection, the gallery search), which spinning threads would slow down
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    record = _record(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path)
    return lambda images: dict(zip(names, session.run(None, {INPUT_NAME: images}))), record


def _litert_runner(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        raise ImportError(
            "Running a LiteRT export needs ai-edge-litert: `pip install keras-sgm[export]`."
        ) from error
    runner = Interpreter(str(path)).get_signature_runner()
    return lambda images: runner(**{INPUT_NAME: images})


def compare(model, path, images):
    """How far an export's outputs are from the Keras model's on `images`.

    Args:
        model: the `SGMModel` that was exported.
        path: the artefact (`export`'s return value).
        images: a `float32` batch of the model's input.

    Returns:
        A dict: the largest absolute difference of `embedding`, `posteriors` and
        `known_score`, and `class_index_agreement` (the share of equal answers).
    """
    got = ExportedModel(path)(images)
    embeddings = model.predict(images, verbose=0)
    want = {
        "embedding": embeddings,
        "posteriors": model.head.posterior(embeddings),
        "known_score": model.head.known_score(embeddings),
    }
    result = {k: float(np.max(np.abs(got[k] - v))) for k, v in want.items()}
    answers = np.argmax(want["posteriors"], axis=1)
    result["class_index_agreement"] = float(np.mean(got["class_index"] == answers))
    return result
