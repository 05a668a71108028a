"""The paper's evaluation: clustering (NMI, F1), retrieval (Recall@K, Acc@K) and kNN.

- `metrics`: pure NumPy functions of embeddings and labels (`evaluate_embeddings`
  runs the whole protocol); every name is importable from `keras_sgm.evaluation`.
- `report`: the protocol on a trained model, with its figures (what a run writes).
"""

from keras_sgm.evaluation.metrics import (
    acc_at_k,
    cluster_f1,
    evaluate_embeddings,
    f1_of,
    f1_vs_k,
    hidden_group_nmi,
    kmeans_clusters,
    knn_predict,
    knn_scores,
    knn_vote,
    nmi,
    pair_counts,
    recall_at_k,
    subclass_nmi,
)

__all__ = [
    "acc_at_k",
    "cluster_f1",
    "evaluate_embeddings",
    "f1_of",
    "f1_vs_k",
    "hidden_group_nmi",
    "kmeans_clusters",
    "knn_predict",
    "knn_scores",
    "knn_vote",
    "nmi",
    "pair_counts",
    "recall_at_k",
    "subclass_nmi",
]
