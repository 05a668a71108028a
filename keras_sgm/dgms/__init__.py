"""DGMS: Deep Gaussian Mixture Sub-spaces (paper sections 3.2 and 4.2.3).

- `SubclassSplitter`: the Keras callback that splits classes into
  sub-classes during training, under one of `SCHEDULES` ("split": each
  sub-class again; "recluster": each original class afresh into one more
  group per level, as the paper's authors ran it); `split_classes` does one
  split.
- `find_groups`: EM (or k-means) groups of any embeddings, each with its
  medoid and Top-k members (paper Fig. 8), per class or overall.
- `summarize_album` / `summarize_embeddings`: K representative images of an
  album (the medoids of K groups); `load_album` reads a folder of photos.
"""

from keras_sgm.dgms.album import Album, load_album, summarize_album, summarize_embeddings
from keras_sgm.dgms.callback import (
    REPRESENTATIONS,
    SCHEDULES,
    SubclassSplitter,
    feature_extractor,
    representation,
)
from keras_sgm.dgms.groups import (
    COVARIANCE_TYPES,
    Group,
    cluster_ids,
    find_groups,
    groups_of_labels,
    medoid_index,
    top_k_members,
)
from keras_sgm.dgms.split import Split, split_classes

__all__ = [
    "COVARIANCE_TYPES",
    "REPRESENTATIONS",
    "SCHEDULES",
    "Album",
    "Group",
    "Split",
    "SubclassSplitter",
    "cluster_ids",
    "feature_extractor",
    "find_groups",
    "groups_of_labels",
    "load_album",
    "medoid_index",
    "representation",
    "split_classes",
    "summarize_album",
    "summarize_embeddings",
    "top_k_members",
]
