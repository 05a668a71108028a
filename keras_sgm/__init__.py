"""keras_sgm: deep metric structured learning for facial expressions, in Keras 3.

Public names:

- `SGMLoss`, `TripletLoss`: metric-learning losses (`keras_sgm.losses`).
- `CentroidAccuracy`: batch metric (`keras_sgm.metrics`).
- `SGMModel`: encoder + train step + Gaussian (Bayes) classifier (`keras_sgm.model`);
  `SoftmaxClassifier`, the softmax CNN baseline.
- `keras_sgm.data`: class-balanced `tf.data` batches.
- `keras_sgm.dgms`: DGMS sub-class splitting (`SubclassSplitter`), EM groups
  with medoids and Top-k, album summarization.
- `keras_sgm.evaluation`: the paper's protocol (NMI, F1, Recall@K, Acc@K, kNN).
- `keras_sgm.runs`: training runs (`TrainConfig`, `train`, `RunDir`, benchmarks).
- `keras_sgm.hub`, `from_pretrained`: publish to / load from the Hugging Face Hub.
- `export` (`keras_sgm.deploy`): a trained model with its Gaussians as a SavedModel,
  ONNX or LiteRT file.
- `keras_sgm.serving`: the Gradio app's engine, the app and its Space.

Imports point one way: the core (losses, metrics, model, data, backbones, dgms,
evaluation, retrieval) <- runs <- hub <- serving. The Keras versions this
release is tested with are in `keras_sgm._compat` (and pyproject.toml).
"""

from keras_sgm import _compat

_compat.check_keras_version()

from keras_sgm import data, deploy, dgms, hub, losses, metrics  # noqa: E402
from keras_sgm.deploy import export  # noqa: E402
from keras_sgm.dgms import SubclassSplitter  # noqa: E402
from keras_sgm.hub import from_pretrained  # noqa: E402
from keras_sgm.losses import SGMLoss, TripletLoss, sgm_loss, triplet_loss  # noqa: E402
from keras_sgm.metrics import CentroidAccuracy, centroid_accuracy  # noqa: E402
from keras_sgm.model import SGMModel, SoftmaxClassifier, StopOnNonFinite  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CentroidAccuracy",
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
