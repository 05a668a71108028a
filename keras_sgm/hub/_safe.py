"""Loading a model as `from_pretrained` does: Keras' `safe_mode` on, an `SGMModel` or nothing."""

import keras

from keras_sgm.model import SGMModel


def safe_load_file(path):
    """A `.keras` file about to be published, loaded as `from_pretrained` would load it."""
    return safe_load(
        path,
        refusal=f"Refused to publish {path}: its model holds a Python lambda (e.g. a Lambda "
        "layer), which keras_sgm.from_pretrained would refuse to load under safe_mode; "
        "replace it with a registered layer or function.",
    )


def safe_load(path, refusal, damaged=None):
    """Keras' `load_model` with `safe_mode` on and no optimizer; the model must be an SGMModel.

    Args:
        path: a `.keras` file or a directory in Keras' `hf://` layout.
        refusal: the `ValueError` message for a model holding a Python lambda.
        damaged: optional callable, load error -> `ValueError` message for any
            other failure to load; without it those errors propagate as raised.
    """
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds on a damaged file
        if isinstance(error, ValueError) and (
            "safe_mode" in str(error) or "lambda" in str(error).lower()
        ):
            raise ValueError(refusal) from error
        if damaged is None:
            raise
        raise ValueError(damaged(error)) from error
    if not isinstance(model, SGMModel):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a keras_sgm SGMModel.")
    return model
