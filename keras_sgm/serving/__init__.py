"""Serving: the app's engine, photos and faces, the default model, example photos, the Gradio
page and the Hugging Face Space around it.

- `engine`: `ExpressionDemo`, which answers every tab with NumPy arrays and plain values
  (no Gradio), `FaceResult`, `Match`, `AlbumSummary`;
- `faces`: reading photos safely and finding faces (OpenCV's Haar cascade);
- `default_model`: the model served when none is named (trained once, cached);
- `examples`: example photos drawn from the synthetic faces;
- `app`: the Gradio page (`build_app`, one function per tab; needs `keras-sgm[app]`);
- `space`: a Space folder (`write_space`, `push_space`), from `space_template/`.
"""

from keras_sgm.serving.default_model import DEMO_MODEL_ENV, default_demo_dir, ensure_demo_model
from keras_sgm.serving.engine import AlbumSummary, ExpressionDemo, FaceResult, Match

__all__ = [
    "DEMO_MODEL_ENV",
    "AlbumSummary",
    "ExpressionDemo",
    "FaceResult",
    "Match",
    "default_demo_dir",
    "ensure_demo_model",
]
