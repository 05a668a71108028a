"""Serving: the app's engine, photos and faces, the default model, example photos, the Gradio
page and the Hugging Face Space around it.

- `engine`: `ExpressionEngine`, which answers every tab with NumPy arrays and plain values
  (no Gradio), `FaceResult`, `Match`, `AlbumSummary`;
- `faces`: reading photos safely and finding faces (OpenCV's Haar cascade);
- `runtime`: what the app runs a model with (`RUNTIMES`), and where a repo keeps each export
  (`export_path`; `keras_sgm.deploy.ExportedModel` runs it in place of the Keras model);
- `default_model`: the model served when none is named (trained once, cached);
- `examples`: example photos drawn from the synthetic faces;
- `handlers`: what each button of the page answers, over an engine (no Gradio);
- `drawing`: the classify answer's image, the photo with each face boxed and captioned;
- `app`: the Gradio page (`build_app`, one function per tab) and `main`; with
  `response_files`, Gradio's image outputs with files of their own per response (both need
  `keras-sgm[app]`);
- `space`: a Space folder (`write_space`, `push_space`), from `space_template/`, whose
  `app.py` is also the launcher `apps/app.py` runs.
"""

from keras_sgm.serving.default_model import (
    DEFAULT_MODEL_ENV,
    default_model_dir,
    ensure_default_model,
)
from keras_sgm.serving.engine import AlbumSummary, ExpressionEngine, FaceResult, Match

__all__ = [
    "DEFAULT_MODEL_ENV",
    "AlbumSummary",
    "ExpressionEngine",
    "FaceResult",
    "Match",
    "default_model_dir",
    "ensure_default_model",
]
