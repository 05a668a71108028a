"""keras_sgm: deep metric structured learning for facial expressions, in Keras 3.

Public names:

- `SGMLoss`, `TripletLoss`: metric-learning losses (`keras_sgm.losses`).
- `CentroidAccuracy`: batch metric (`keras_sgm.metrics`).
- `SGMModel`: encoder + train step + Gaussian head (`keras_sgm.model`);
  `SoftmaxClassifier`, the softmax CNN baseline.
- `GaussianHead`: the paper's Bayes classifier over class Gaussians, a Keras layer
  (`keras_sgm.gaussian_head`): posteriors, the known score, calibration, rejection.
- `keras_sgm.data`: class-balanced `tf.data` batches.
- `keras_sgm.dgms`: DGMS sub-class splitting (`SubclassSplitter`), EM groups
  with medoids and Top-k, album summarization.
- `keras_sgm.hub`, `from_pretrained`: publish to / load from the Hugging Face Hub.
- `keras_sgm.deploy`, `export`: a trained model with its Gaussians as a SavedModel,
  ONNX or LiteRT file.

Imports point one way: the core (losses, metrics, model, data, backbones, dgms,
evaluation, retrieval) <- runs <- hub <- serving. `import keras_sgm` loads the
core alone, and with it every custom object a saved model names; `hub`,
`from_pretrained`, `deploy` and `export` are imported on first use. The other
layers are imported by name: `keras_sgm.evaluation` (the paper's protocol),
`keras_sgm.runs` (training runs: `TrainConfig`, `train`, `RunDir`, benchmarks),
`keras_sgm.serving` (the Gradio app's engine, the app and its Space).

No module of the package imports this one: the version is `keras_sgm._version`,
and the Keras versions this release is tested with are in `keras_sgm._compat`
(and pyproject.toml).

Example:

    >>> import keras_sgm
    >>> keras_sgm.SGMLoss().name
    'sgm_loss'
    >>> keras_sgm.export is keras_sgm.deploy.export
    True
"""

import importlib

from keras_sgm import _compat
from keras_sgm._version import __version__ as __version__

_compat.check_keras_version()

from keras_sgm import data, dgms, losses, metrics  # noqa: E402
from keras_sgm.dgms import SubclassSplitter  # noqa: E402
from keras_sgm.gaussian_head import GaussianHead  # noqa: E402
from keras_sgm.losses import SGMLoss, TripletLoss, sgm_loss, triplet_loss  # noqa: E402
from keras_sgm.metrics import CentroidAccuracy, centroid_accuracy  # noqa: E402
from keras_sgm.model import SGMModel, SoftmaxClassifier, StopOnNonFinite  # noqa: E402

_LAZY = {
    "deploy": ("keras_sgm.deploy", None),
    "export": ("keras_sgm.deploy", "export"),
    "from_pretrained": ("keras_sgm.hub.repo", "from_pretrained"),
    "hub": ("keras_sgm.hub", None),
}
"""Public names imported on first use, `name: (module, attribute or None for the module)`.

They lie in layers above the core (`deploy` exports a trained model; `hub` reaches the Hub through
run folders), so `import keras_sgm` loads the core alone.
"""


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_sgm' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # the next lookup finds it without calling __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CentroidAccuracy",
    "GaussianHead",
    "SGMLoss",
    "SGMModel",
    "SoftmaxClassifier",
    "StopOnNonFinite",
    "SubclassSplitter",
    "TripletLoss",
    "centroid_accuracy",
    "data",
    "deploy",
    "dgms",
    "export",
    "from_pretrained",
    "hub",
    "losses",
    "metrics",
    "sgm_loss",
    "triplet_loss",
]
