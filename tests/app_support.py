"""A small keras_sgm repo on the synthetic faces, trained in seconds, for the app's tests."""

import contextlib
import importlib.util
import socket

import keras

import keras_sgm
from keras_sgm import hub
from keras_sgm.data import synthetic_faces
from keras_sgm.data.expressions import FERPLUS_CLASSES


def small_encoder(size=48, dim=16, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(dim)(x), name="small_encoder")


def make_repo(directory, per_class=40, epochs=30, seed=0):
    """Train a small SGM model on synthetic faces; save it with a thumbnail gallery.

    Returns:
        `(directory, gallery images float32 [n, 48, 48, 1], labels [n])`.
    """
    data = synthetic_faces.generate(per_class, size=48, seed=seed)
    x = data["image"].astype("float32") / 255.0
    y = data["label"]
    model = keras_sgm.SGMModel(small_encoder(seed=seed), class_names=list(FERPLUS_CLASSES))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    batches = keras_sgm.data.class_balanced_batches(x, y, samples_per_class=8, seed=seed)
    model.fit(batches, epochs=epochs, verbose=0)
    model.fit_gaussians(x, y)
    gallery = hub.Gallery.from_images(model, x, y, thumbnails=True)
    hub.save_pretrained(
        model,
        directory,
        config={"dataset": "synthetic_faces"},
        metrics={"knn_accuracy": 0.5},
        gallery=gallery,
    )
    return directory, x, y


def app_module():
    """The app, `keras_sgm.serving.app` (imported on first use: it needs Gradio)."""
    return importlib.import_module("keras_sgm.serving.app")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(repo_dir, concurrency=4, queue_size=64, runtime=None):
    """Serve the app over `repo_dir` (run by `runtime`) on a free localhost port; yields its URL."""
    app_lib = app_module()
    engine = app_lib.load_engine(str(repo_dir), runtime=runtime)
    blocks = app_lib.build_app(engine)
    port = free_port()
    app_lib.launch(
        blocks, "127.0.0.1", port, concurrency, queue_size, prevent_thread_lock=True, quiet=True
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        blocks.close()
