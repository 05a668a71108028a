"""Shared helpers, in the spirit of keras-hub's TestCase: fit, save, reload, compare."""

import keras
import numpy as np


def toy_data(n_per_class=24, classes=(0, 3, 40213), dim=6, seed=0, spread=0.3):
    """Gaussian blobs, one per class id, as float32 inputs and int labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(classes), dim)) * 2.0
    x = np.concatenate([c + spread * rng.normal(size=(n_per_class, dim)) for c in centres])
    y = np.repeat(np.asarray(classes), n_per_class)
    order = rng.permutation(len(y))
    return x[order].astype("float32"), y[order]


def encoder(input_dim=6, embedding_dim=4, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_dim,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(embedding_dim)(hidden), name="encoder")


def save_and_reload(model, path):
    """Save to `.keras`, load back (after `import keras_sgm`), return the loaded model."""
    model.save(path)
    return keras.saving.load_model(path)


def assert_same_outputs(a, b, x, atol=1e-6):
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), atol=atol)
