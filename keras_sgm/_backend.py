"""Which parts of keras_sgm need the TensorFlow backend, said at once and by name.

The losses, the metric, `SGMModel`'s Gaussian classifier (`fit_gaussians`,
`predict_proba`, `calibrate`, saving and loading) are written in `keras.ops`
and run on every Keras 3 backend. `SGMModel`'s train and test steps and
`tf.distribute` are TensorFlow's in this release: under another backend they
fail here, before anything runs, instead of deep inside a traced function.
"""

import keras


def require_tensorflow(part):
    """Raise a `RuntimeError` naming `part` and the backend unless Keras runs on TensorFlow."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{part} needs KERAS_BACKEND=tensorflow; this process runs Keras on {backend!r}. "
            "On every backend, keras_sgm.SGMLoss and keras_sgm.TripletLoss train any "
            "keras.Model (model.compile(loss=keras_sgm.SGMLoss())), and SGMModel classifies "
            "(fit_gaussians, predict_proba) and loads models saved under TensorFlow."
        )
