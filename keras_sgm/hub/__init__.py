"""Hugging Face Hub: publish a trained `SGMModel` with a model card, and load it back.

A keras_sgm model repo is a folder, on the Hub or on disk (its layout:
`keras_sgm.hub.repo`). The package:

- `repo`: the layout, `check_repo`, `load_pretrained` / `from_pretrained`;
- `publish`: `save_pretrained` (write a repo folder), `push_to_hub` (upload one);
- `gallery`: `Gallery`, the embeddings of a labelled set for retrieval;
- `card`: the model card, from `model_card_template.md` (shipped in the package);
- `errors`: `huggingface_hub` on demand and the Hub's errors as plain messages.

`huggingface_hub` (`pip install 'keras-sgm[hub]'`) is needed to write cards,
push and download; loading a local directory needs only keras_sgm.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition.
"""

from keras_sgm.data.names import REDISTRIBUTABLE_DATASETS
from keras_sgm.hub.card import CARD_TAGS, TEMPLATE, evaluation_results, render_model_card
from keras_sgm.hub.gallery import Gallery
from keras_sgm.hub.publish import push_to_hub, save_pretrained
from keras_sgm.hub.repo import (
    EXPORTS_DIR,
    FORMAT_VERSION,
    GALLERY_FILE,
    MARKER,
    MODEL_FILES,
    TRAINING_CONFIG_FILE,
    Pretrained,
    check_repo,
    from_pretrained,
    load_model,
    load_pretrained,
)

__all__ = [
    "CARD_TAGS",
    "EXPORTS_DIR",
    "FORMAT_VERSION",
    "GALLERY_FILE",
    "MARKER",
    "MODEL_FILES",
    "REDISTRIBUTABLE_DATASETS",
    "TEMPLATE",
    "TRAINING_CONFIG_FILE",
    "Gallery",
    "Pretrained",
    "check_repo",
    "evaluation_results",
    "from_pretrained",
    "load_model",
    "load_pretrained",
    "push_to_hub",
    "render_model_card",
    "save_pretrained",
]
