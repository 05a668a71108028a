"""The paper's evaluation protocol: clustering (NMI, F1), retrieval (Recall@K, Acc@K) and kNN.

Every function is pure and works on NumPy arrays: embeddings `[n, dim]` and
class labels `[n]` of any type (ints, strings). `evaluate_embeddings` runs the
whole protocol on a train/test split and returns a JSON-ready dictionary.

- **Clustering**: k-means on the test embeddings with k = the number of test
  classes, scored by NMI and the pairwise F1-measure (Manning et al., ch. 16).
- **Retrieval**: each test embedding queries the other test embeddings;
  Recall@K is the share of queries with at least one same-class neighbour
  among their K nearest, Acc@K the mean share of same-class neighbours.
- **Classification**: the majority vote of the K nearest training embeddings
  (K = 11 in the paper), scored by accuracy, macro precision P, macro recall
  R and the paper's F1 = 2PR / (P + R) (`f1_of`; every row of the paper's
  Table 2 satisfies it). The mean of the per-class F1 scores (scikit-learn's
  `average="macro"`) is reported beside it as `macro_f1`. The paper's F1 is
  also reported for K = 1..21 (its Figure 5).

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition,
    section 4.1; C. D. Manning, P. Raghavan and H. Schuetze, Introduction to
    Information Retrieval (2008), section 16.3.
"""

import numpy as np
from sklearn import metrics as skm
from sklearn.cluster import KMeans
from sklearn.metrics.cluster import contingency_matrix

from keras_sgm import _validation
from keras_sgm.retrieval import ExactIndex, as_matrix

_VOTE_CHUNK = 4096
"""Queries per chunk in `knn_vote`, which builds a `[chunk, k, k]` table."""


def _check_labels(labels, name, n=None, other=None):
    return _validation.one_per_row(labels, name, n, other)


def _check_pair(labels, clusters):
    labels = _check_labels(labels, "labels")
    clusters = _check_labels(clusters, "clusters", labels.shape[0], "labels")
    return labels, clusters


def _check_ks(ks, limit, what):
    ks = [int(k) for k in ks]
    for k in ks:
        if k < 1 or k > limit:
            raise ValueError(f"K={k} must lie in [1, {limit}] ({what}).")
    return ks


def _pairs(counts):
    """`sum(c choose 2)` over an array of counts, in exact integer arithmetic."""
    counts = np.asarray(counts, dtype=np.int64)
    return int(np.sum(counts * (counts - 1) // 2))


def nmi(labels, clusters):
    """Normalized mutual information between classes and clusters.

    `NMI = I(classes; clusters) / ((H(classes) + H(clusters)) / 2)`, the
    arithmetic-mean normalisation of Manning et al. (scikit-learn's
    `normalized_mutual_info_score(average_method="arithmetic")`).

    Args:
        labels: class labels `[n]`.
        clusters: cluster ids `[n]`.

    Returns:
        A float in `[0, 1]`; 1 when the clusters are the classes.

    Examples:
        >>> round(nmi([0, 0, 1, 1], [5, 5, 2, 2]), 6), round(nmi([0, 0, 1, 1], [0, 1, 0, 1]), 6)
        (1.0, 0.0)

    Reference: Manning et al., Introduction to Information Retrieval, eq. 16.2.
    """
    labels, clusters = _check_pair(labels, clusters)
    return float(skm.normalized_mutual_info_score(labels, clusters, average_method="arithmetic"))


def subclass_nmi(classes, hidden, subclasses):
    """How well sub-classes found inside each class match known hidden groups.

    The NMI between `hidden` and `subclasses` is computed within each class
    and averaged over the classes, so that the class labels themselves (which
    the sub-classes always respect) do not inflate it.

    Args:
        classes: class labels `[n]`.
        hidden: the true sub-group of each example `[n]` (e.g. the synthetic
            faces' glasses x beard `subgroup`).
        subclasses: the sub-class found for each example `[n]`.

    Returns:
        A float in `[0, 1]`: 1 when every class's sub-classes are its hidden
        groups, about 0 when they are unrelated.

    Examples:
        >>> subclass_nmi([0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 0, 1], [5, 5, 6, 6, 7, 8])
        1.0
    """
    classes = _check_labels(classes, "classes")
    hidden = _check_labels(hidden, "hidden", classes.shape[0], "classes")
    subclasses = _check_labels(subclasses, "subclasses", classes.shape[0], "classes")
    scores = [nmi(hidden[classes == c], subclasses[classes == c]) for c in np.unique(classes)]
    return float(np.mean(scores))


def hidden_group_nmi(embeddings, classes, hidden, seed=0):
    """Does an embedding keep the hidden groups inside each class? k-means per class, then NMI.

    Each class's embeddings are clustered by k-means into as many groups as
    the class has hidden groups, and the NMI between those clusters and the
    hidden groups is averaged over the classes (`subclass_nmi`). A loss that
    collapses every class onto one point scores about 0; an embedding whose
    classes are made of separated hidden modes, 1.

    Args:
        embeddings: `[n, dim]`.
        classes: class labels `[n]`.
        hidden: the known sub-group of each example `[n]` (e.g. the digit
            inside a pair class of `mnist_pairs`).
        seed: k-means seed.

    Returns:
        A float in `[0, 1]`.
    """
    classes = _check_labels(classes, "classes")
    hidden = _check_labels(hidden, "hidden", classes.shape[0], "classes")
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[0] != classes.shape[0]:
        raise ValueError(
            f"embeddings must have shape [{classes.shape[0]}, dim] to match the classes; "
            f"received {embeddings.shape}."
        )
    found = np.zeros_like(classes)
    for c in np.unique(classes):
        rows = classes == c
        groups = len(np.unique(hidden[rows]))
        if groups > 1:
            found[rows] = kmeans_clusters(embeddings[rows], groups, seed=seed)
    return subclass_nmi(classes, hidden, found)


def pair_counts(labels, clusters):
    """Pair-counting confusion of a clustering: `(TP, FP, FN)` over all `n choose 2` pairs.

    TP: pairs in the same cluster and the same class; FP: same cluster,
    different classes; FN: different clusters, same class. Computed from the
    contingency table: `TP = sum_ij C(n_ij, 2)`,
    `TP + FP = sum_j C(cluster size_j, 2)`, `TP + FN = sum_i C(class size_i, 2)`.

    Args:
        labels: class labels `[n]`.
        clusters: cluster ids `[n]`.

    Returns:
        A tuple of three Python ints.

    Examples:
        >>> pair_counts(["a", "a", "b", "b"], [0, 0, 0, 1])
        (1, 2, 1)

    Reference: Manning et al., Introduction to Information Retrieval, section 16.3.
    """
    labels, clusters = _check_pair(labels, clusters)
    table = contingency_matrix(labels, clusters)  # [classes, clusters]
    tp = _pairs(table)
    return tp, _pairs(table.sum(axis=0)) - tp, _pairs(table.sum(axis=1)) - tp


def cluster_f1(labels, clusters):
    """Pairwise F1-measure of a clustering against the classes.

    Precision `TP / (TP + FP)` and recall `TP / (TP + FN)` over pairs of
    points (see `pair_counts`), and their harmonic mean. A ratio with a zero
    denominator counts as 0.

    Args:
        labels: class labels `[n]`.
        clusters: cluster ids `[n]`.

    Returns:
        A float in `[0, 1]`.

    Examples:
        >>> round(cluster_f1(["a", "a", "b", "b"], [0, 0, 0, 1]), 4)  # P = 1/3, R = 1/2
        0.4

    Reference: Manning et al., Introduction to Information Retrieval, section 16.3.
    """
    tp, fp, fn = pair_counts(labels, clusters)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def kmeans_clusters(embeddings, n_clusters, seed=0):
    """k-means cluster ids of the embeddings (scikit-learn, 10 initialisations).

    Args:
        embeddings: float array `[n, dim]`, finite.
        n_clusters: int, at most `n`.
        seed: int, default 0, the k-means random state.

    Returns:
        int array `[n]` of cluster ids in `[0, n_clusters)`.

    Examples:
        >>> x = [[0.0], [0.1], [5.0], [5.1]]
        >>> clusters = kmeans_clusters(x, 2)
        >>> bool(clusters[0] == clusters[1] != clusters[2] == clusters[3])
        True
    """
    embeddings = as_matrix(embeddings, "embeddings")
    n = embeddings.shape[0]
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters={n_clusters} must lie in [1, n={n}].")
    model = KMeans(n_clusters=int(n_clusters), n_init=10, random_state=seed)
    return model.fit_predict(embeddings)


def _hits(labels, neighbor_labels):
    labels = _check_labels(labels, "labels")
    neighbor_labels = np.asarray(neighbor_labels)
    if neighbor_labels.ndim != 2 or neighbor_labels.shape[0] != labels.shape[0]:
        raise ValueError(
            f"neighbor_labels must have shape [{labels.shape[0]}, max_k] (one row per query); "
            f"received shape {neighbor_labels.shape}."
        )
    return neighbor_labels == labels[:, None]


def recall_at_k(labels, neighbor_labels, ks):
    """Recall@K: share of queries with at least one same-class item among their K nearest.

    Args:
        labels: query labels `[m]`.
        neighbor_labels: labels of each query's neighbours, nearest first,
            `[m, max_k]`.
        ks: iterable of ints in `[1, max_k]`.

    Returns:
        A dict `{K: recall}` of Python ints and floats.

    Examples:
        >>> recall_at_k([0, 1], [[1, 0], [1, 1]], ks=[1, 2])
        {1: 0.5, 2: 1.0}

    Reference: section 4.1 of the paper; Jegou et al., Product quantization
    for nearest neighbor search (2011).
    """
    hits = _hits(labels, neighbor_labels)
    ks = _check_ks(ks, hits.shape[1], "the number of neighbour columns")
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def acc_at_k(labels, neighbor_labels, ks):
    """Acc@K: mean share of a query's K nearest items that share its class.

    Args:
        labels: query labels `[m]`.
        neighbor_labels: labels of each query's neighbours, nearest first,
            `[m, max_k]`.
        ks: iterable of ints in `[1, max_k]`.

    Returns:
        A dict `{K: accuracy}` of Python ints and floats.

    Examples:
        >>> acc_at_k([0, 1], [[1, 0], [1, 1]], ks=[1, 2])
        {1: 0.5, 2: 0.75}

    Reference: section 4.1 of the paper.
    """
    hits = _hits(labels, neighbor_labels)
    ks = _check_ks(ks, hits.shape[1], "the number of neighbour columns")
    return {k: float(hits[:, :k].mean()) for k in ks}


def knn_vote(neighbor_labels, distances):
    """Majority vote of each row of a neighbour table.

    A tie between classes goes to the class whose tied votes have the
    smallest summed distance to the query; if that ties too (duplicated
    points), to the class of the nearest of those neighbours.

    Args:
        neighbor_labels: labels `[m, k]` of each query's neighbours.
        distances: their distances `[m, k]`.

    Returns:
        Predicted labels `[m]`, of the dtype of `neighbor_labels`.

    Examples:
        >>> neighbours = [["a", "b", "b"], ["a", "b", "c"]]
        >>> knn_vote(neighbours, [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]).tolist()
        ['b', 'c']
    """
    neighbor_labels = np.asarray(neighbor_labels)
    distances = np.asarray(distances, dtype=np.float64)
    if neighbor_labels.ndim != 2 or neighbor_labels.shape != distances.shape:
        raise ValueError(
            "neighbor_labels and distances must have the same shape [m, k]; received "
            f"{neighbor_labels.shape} and {distances.shape}."
        )
    m = neighbor_labels.shape[0]
    winner = np.zeros(m, np.int64)
    for start in range(0, m, _VOTE_CHUNK):
        chunk = neighbor_labels[start : start + _VOTE_CHUNK]
        same = chunk[:, :, None] == chunk[:, None, :]  # [c, k, k]: neighbours j and j' agree
        votes = same.sum(axis=2)  # votes for the class of neighbour j
        summed = (same * distances[start : start + _VOTE_CHUNK, None, :]).sum(axis=2)
        tied = votes == votes.max(axis=1, keepdims=True)
        winner[start : start + _VOTE_CHUNK] = np.argmin(np.where(tied, summed, np.inf), axis=1)
    return neighbor_labels[np.arange(m), winner]


def _train_index(train_emb, train_labels, index):
    if index is None:
        train_emb = as_matrix(train_emb, "train embeddings")
        index = ExactIndex(train_emb)
    train_labels = _check_labels(train_labels, "train labels", len(index), "the train index")
    return index, train_labels


def knn_predict(train_emb, train_labels, query_emb, k=11, index=None):
    """k-nearest-neighbour classification with `knn_vote` (Euclidean distances).

    Args:
        train_emb: float array `[n, dim]`, the labelled embeddings.
        train_labels: labels `[n]`.
        query_emb: float array `[m, dim]`.
        k: int, default 11 (the paper's choice), at most `n`.
        index: optional index already built over `train_emb` (`ExactIndex`
            or `ApproximateIndex`), reused instead of a new `ExactIndex`;
            `train_emb` is then not read and may be None.

    Returns:
        Predicted labels `[m]`.

    Examples:
        >>> train = [[0.0], [1.0], [2.0], [10.0]]
        >>> knn_predict(train, ["a", "a", "b", "b"], [[1.6], [9.0]], k=3).tolist()
        ['a', 'b']

    Reference: section 4.2.2 of the paper.
    """
    index, train_labels = _train_index(train_emb, train_labels, index)
    distances, indices = index.search(query_emb, k)
    return knn_vote(train_labels[indices], distances)


def f1_of(precision, recall):
    """The paper's F1: the harmonic mean `2PR / (P + R)` of macro precision and recall.

    This is not the mean of the per-class F1 scores (`knn_scores`'s
    `macro_f1`): every row of the paper's Table 2 gives its F1 from its own
    macro P and R by this formula (e.g. SGMLoss + ResNet18: P 88.614,
    R 68.724, F1 77.412).

    Args:
        precision: float, macro precision (any scale: fractions or percent).
        recall: float, macro recall, on the same scale.

    Returns:
        A float on that scale; 0 when both are 0.

    Examples:
        >>> round(f1_of(88.614, 68.724), 3)
        77.412

    Reference: section 4.2.2 and Table 2 of the paper.
    """
    precision, recall = float(precision), float(recall)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def knn_scores(y_true, y_pred, classes=None):
    """Accuracy, macro precision, recall, the paper's F1, and the confusion matrix.

    Macro averages run over the classes present in `y_true` or `y_pred`; a
    ratio with a zero denominator counts as 0. `f1` is the paper's
    `2PR / (P + R)` of the macro precision and recall (`f1_of`);
    `macro_f1` is the mean of the per-class F1 scores.

    Args:
        y_true: true labels `[m]`.
        y_pred: predicted labels `[m]`.
        classes: optional labels `[c]` giving the confusion matrix's rows and
            columns (e.g. every training class, so that a class absent from
            the test set keeps its row). Must include every label of `y_true`
            and `y_pred`. Default: those labels, sorted.

    Returns:
        A dict with float `accuracy`, `precision`, `recall`, `f1`,
        `macro_f1`, the int array `confusion_matrix` (rows: true, columns:
        predicted) and `classes`, the labels in the matrix's order.

    Examples:
        >>> scores = knn_scores([0, 0, 1, 1], [0, 1, 1, 1])
        >>> scores["accuracy"], round(scores["f1"], 4), round(scores["macro_f1"], 4)
        (0.75, 0.7895, 0.7333)
        >>> scores["confusion_matrix"].tolist()
        [[1, 1], [0, 2]]
    """
    y_true = _check_labels(y_true, "y_true")
    y_pred = _check_labels(y_pred, "y_pred", y_true.shape[0], "y_true")
    present = np.unique(np.concatenate([y_true, y_pred]))
    if classes is None:
        classes = present
    classes = _check_labels(classes, "classes")
    missing = np.setdiff1d(present, classes)
    if missing.size:
        raise ValueError(f"classes lacks label(s) {missing.tolist()} found in y_true or y_pred.")
    precision, recall, macro_f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=present, average="macro", zero_division=0
    )
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": f1_of(precision, recall),
        "macro_f1": float(macro_f1),
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=classes),
        "classes": classes,
    }


def _f1_by_k(neighbor_labels, distances, test_y, ks):
    return {
        k: knn_scores(test_y, knn_vote(neighbor_labels[:, :k], distances[:, :k]))["f1"] for k in ks
    }


def f1_vs_k(train_emb, train_y, test_emb, test_y, ks=range(1, 22)):
    """The paper's F1 of the kNN classifier as a function of K (its Figure 5).

    F1 is `2PR / (P + R)` of the macro precision and recall, as in `knn_scores`.

    The train index is searched once with the largest K; each K then votes on
    the first K columns of that neighbour table.

    Args:
        train_emb: float array `[n, dim]`.
        train_y: labels `[n]`.
        test_emb: float array `[m, dim]`.
        test_y: labels `[m]`.
        ks: iterable of ints in `[1, n]`, default 1..21.

    Returns:
        A dict `{K: F1}`.

    Examples:
        >>> train = [[0.0], [1.0], [2.0], [10.0]]
        >>> f1_vs_k(train, [0, 0, 1, 1], [[1.9], [9.0]], [1, 1], ks=[1, 3])
        {1: 1.0, 3: 0.3333333333333333}
    """
    index, train_y = _train_index(train_emb, train_y, None)
    ks = _check_ks(ks, len(index), "the number of train embeddings")
    test_emb = as_matrix(test_emb, "test embeddings", dim=index.dim)
    test_y = _check_labels(test_y, "test labels", test_emb.shape[0], "test embeddings")
    distances, indices = index.search(test_emb, max(ks))
    return _f1_by_k(train_y[indices], distances, test_y, ks)


def evaluate_embeddings(
    train_emb,
    train_labels,
    test_emb,
    test_labels,
    ks=(1, 2, 4, 8, 16, 32),
    knn_k=11,
    seed=0,
):
    """Run the paper's whole protocol on a train/test split of embeddings.

    - clustering: k-means (k = the number of test classes, `seed`) on the
      test embeddings, scored by `nmi` and `cluster_f1`;
    - retrieval: every test embedding queries the other test embeddings
      (itself excluded), scored by `recall_at_k` and `acc_at_k` for each K
      in `ks` up to `n_test - 1` (larger K are skipped);
    - classification: `knn_predict` of the test embeddings from the train
      embeddings with `knn_k` neighbours, scored by `knn_scores`; and the
      paper's F1 for K = 1..21 (up to `n_train`) from the same search.

    Args:
        train_emb: float array `[n_train, dim]`.
        train_labels: labels `[n_train]`, at least two classes.
        test_emb: float array `[n_test, dim]`.
        test_labels: labels `[n_test]`, at least two classes.
        ks: iterable of ints, default `(1, 2, 4, 8, 16, 32)`, the K of
            Recall@K and Acc@K.
        knn_k: int, default 11, the K of the kNN classifier.
        seed: int, default 0, the k-means random state.

    Returns:
        A dict of plain Python values (`json.dumps` works): floats `nmi`,
        `cluster_f1`, `knn_accuracy`, `knn_precision`, `knn_recall`,
        `knn_f1` (the paper's `2PR / (P + R)`), `knn_macro_f1` (the mean of
        the per-class F1 scores); dicts `{K: value}` `recall_at_k`, `acc_at_k`, `f1_vs_k`;
        `confusion_matrix` (list of lists of ints, rows true, columns
        predicted) and `classes` (the matrix's order: every train or test
        label, sorted).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1, 2], 20)
        >>> x = np.eye(3)[y] * 10 + rng.normal(size=(60, 3))
        >>> result = evaluate_embeddings(x[::2], y[::2], x[1::2], y[1::2], ks=(1, 4))
        >>> round(result["nmi"], 3), result["recall_at_k"], result["knn_accuracy"]
        (1.0, {1: 1.0, 4: 1.0}, 1.0)

    Reference: section 4.1 of the paper.
    """
    train_emb = as_matrix(train_emb, "train embeddings")
    test_emb = as_matrix(test_emb, "test embeddings", dim=train_emb.shape[1])
    train_labels = _check_labels(train_labels, "train labels", train_emb.shape[0], "train_emb")
    test_labels = _check_labels(test_labels, "test labels", test_emb.shape[0], "test_emb")
    for name, labels in (("train", train_labels), ("test", test_labels)):
        found = np.unique(labels)
        if found.size < 2:
            raise ValueError(
                f"The {name} labels hold {found.size} class(es) ({found.tolist()}); "
                "the protocol needs at least 2."
            )
    n_train, n_test = train_emb.shape[0], test_emb.shape[0]
    (knn_k,) = _check_ks([knn_k], n_train, "knn_k: the number of train embeddings")

    clusters = kmeans_clusters(test_emb, np.unique(test_labels).size, seed=seed)

    ks = _check_ks(ks, np.inf, "the K of Recall@K and Acc@K")
    retrieval_ks = sorted({k for k in ks if k <= n_test - 1})
    recall, accuracy = {}, {}
    if retrieval_ks:
        _, neighbours = ExactIndex(test_emb).search(test_emb, max(retrieval_ks), exclude_self=True)
        recall = recall_at_k(test_labels, test_labels[neighbours], retrieval_ks)
        accuracy = acc_at_k(test_labels, test_labels[neighbours], retrieval_ks)

    curve_ks = list(range(1, min(21, n_train) + 1))
    distances, indices = ExactIndex(train_emb).search(test_emb, max(max(curve_ks), knn_k))
    neighbour_labels = train_labels[indices]
    predicted = knn_vote(neighbour_labels[:, :knn_k], distances[:, :knn_k])
    scores = knn_scores(
        test_labels, predicted, classes=np.unique(np.concatenate([train_labels, test_labels]))
    )

    return {
        "nmi": nmi(test_labels, clusters),
        "cluster_f1": cluster_f1(test_labels, clusters),
        "recall_at_k": recall,
        "acc_at_k": accuracy,
        "knn_accuracy": scores["accuracy"],
        "knn_precision": scores["precision"],
        "knn_recall": scores["recall"],
        "knn_f1": scores["f1"],
        "knn_macro_f1": scores["macro_f1"],
        "confusion_matrix": scores["confusion_matrix"].tolist(),
        "f1_vs_k": _f1_by_k(neighbour_labels, distances, test_labels, curve_ks),
        "classes": scores["classes"].tolist(),
    }
