"""keras_sgm: deep metric structured learning for facial expressions, in Keras 3.

Public names:

- `SGMLoss`, `TripletLoss`: metric-learning losses (`keras_sgm.losses`).
- `CentroidAccuracy`: batch metric (`keras_sgm.metrics`).
- `SGMModel`: encoder + train step + Gaussian (Bayes) classifier (`keras_sgm.model`);
  `SoftmaxClassifier`, the softmax CNN baseline.
- `keras_sgm.data`: class-balanced `tf.data` batches.
- `keras_sgm.dgms`: DGMS sub-class splitting (`SubclassSplitter`), EM groups
  with medoids and Top-k, album summarization.
- `keras_sgm.hub`, `from_pretrained`: publish to / load from the Hugging Face Hub.
"""

from keras_sgm import data, dgms, hub, losses, metrics
from keras_sgm.dgms import SubclassSplitter
from keras_sgm.hub import from_pretrained
from keras_sgm.losses import SGMLoss, TripletLoss, sgm_loss, triplet_loss
from keras_sgm.metrics import CentroidAccuracy, centroid_accuracy
from keras_sgm.model import SGMModel, SoftmaxClassifier, StopOnNonFinite

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
    "dgms",
    "from_pretrained",
    "hub",
    "losses",
    "metrics",
    "sgm_loss",
    "triplet_loss",
]
