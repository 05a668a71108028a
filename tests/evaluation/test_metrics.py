import itertools
import json

import numpy as np
import pytest

from keras_sgm import evaluation, retrieval
from keras_sgm.evaluation import (
    acc_at_k,
    cluster_f1,
    evaluate_embeddings,
    f1_of,
    f1_vs_k,
    kmeans_clusters,
    knn_predict,
    knn_scores,
    knn_vote,
    nmi,
    pair_counts,
    recall_at_k,
)


def _manning_example():
    """Manning et al., Introduction to IR, Figure 16.4: 17 points, 3 clusters."""
    labels = ["x"] * 5 + ["o"] + ["x"] + ["o"] * 4 + ["d"] + ["x"] * 2 + ["d"] * 3
    clusters = [1] * 6 + [2] * 6 + [3] * 5
    return np.array(labels), np.array(clusters)


def test_cluster_f1_and_nmi_on_the_manning_example():
    labels, clusters = _manning_example()
    assert pair_counts(labels, clusters) == (20, 20, 24)  # TP, FP, FN as in the book
    precision, recall = 20 / 40, 20 / 44
    assert precision == 0.5 and round(recall, 3) == 0.455
    assert cluster_f1(labels, clusters) == pytest.approx(
        2 * precision * recall / (precision + recall)
    )
    assert cluster_f1(labels, clusters) == pytest.approx(10 / 21)  # 0.476
    assert nmi(labels, clusters) == pytest.approx(0.36, abs=0.005)  # the book's 0.36


def test_cluster_scores_ignore_the_names_of_classes_and_clusters():
    labels, clusters = _manning_example()
    renamed_labels = np.array([{"x": 40213, "o": -1, "d": 7}[c] for c in labels])
    renamed_clusters = 10 - clusters
    assert cluster_f1(renamed_labels, renamed_clusters) == pytest.approx(10 / 21)
    assert nmi(renamed_labels, renamed_clusters) == pytest.approx(nmi(labels, clusters))
    assert cluster_f1(labels, labels) == 1.0 and nmi(labels, labels) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_pair_counts_match_an_explicit_pair_loop(seed):
    rng = np.random.default_rng(seed)
    labels, clusters = rng.integers(0, 4, size=30), rng.integers(0, 5, size=30)
    tp = fp = fn = 0
    for i, j in itertools.combinations(range(30), 2):
        same_cluster, same_class = clusters[i] == clusters[j], labels[i] == labels[j]
        tp += same_cluster and same_class
        fp += same_cluster and not same_class
        fn += same_class and not same_cluster
    assert pair_counts(labels, clusters) == (tp, fp, fn)


def test_cluster_f1_degenerate_clusterings():
    # All singletons: no pair is in one cluster, precision undefined -> 0, F1 0.
    assert cluster_f1([0, 0, 1, 1], [0, 1, 2, 3]) == 0.0
    # One cluster: recall 1, precision = 2 same-class pairs / 6 pairs.
    assert cluster_f1([0, 0, 1, 1], [0, 0, 0, 0]) == pytest.approx(2 * (1 / 3) / (1 / 3 + 1))


def test_cluster_metric_input_checks():
    with pytest.raises(ValueError, match="clusters has 3 entries but labels has 4"):
        cluster_f1([0, 0, 1, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="clusters has 2 entries"):
        nmi([0, 1, 1], [0, 1])


def test_kmeans_clusters_recovers_blobs_and_is_seeded():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 15)
    x = np.eye(3)[y] * 20 + rng.normal(size=(45, 3))
    clusters = kmeans_clusters(x, 3, seed=1)
    assert clusters.shape == (45,) and cluster_f1(y, clusters) == 1.0
    np.testing.assert_array_equal(clusters, kmeans_clusters(x, 3, seed=1))
    with pytest.raises(ValueError, match=r"n_clusters=46 must lie in \[1, n=45\]"):
        kmeans_clusters(x, 46)
    x[5, 1] = np.nan
    with pytest.raises(ValueError, match="embeddings row 5 contains NaN"):
        kmeans_clusters(x, 3)


def test_recall_and_acc_at_k_on_a_hand_made_table():
    labels = np.array([0, 1, 2])
    neighbours = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    # K=1: only query 1 hits. K=2: queries 0, 1 (shares 1/2, 2/2, 0). K=3: shares 2/3, 2/3, 0.
    assert recall_at_k(labels, neighbours, [1, 2, 3]) == pytest.approx(
        {1: 1 / 3, 2: 2 / 3, 3: 2 / 3}
    )
    assert acc_at_k(labels, neighbours, [1, 2, 3]) == pytest.approx({1: 1 / 3, 2: 0.5, 3: 4 / 9})
    assert list(recall_at_k(labels, neighbours, (2,))) == [2]
    with pytest.raises(ValueError, match=r"K=4 must lie in \[1, 3\]"):
        recall_at_k(labels, neighbours, [4])
    with pytest.raises(ValueError, match=r"K=0 must lie"):
        acc_at_k(labels, neighbours, [0])
    with pytest.raises(ValueError, match=r"shape \[2, max_k\]"):
        acc_at_k(labels[:2], neighbours, [1])


def test_knn_vote_majority_then_summed_distance_then_nearest():
    labels = np.array(
        [
            ["a", "b", "b", "a", "a"],  # 3 a vs 2 b: majority a although b is nearer in sum
            ["a", "b", "b", "a", "c"],  # 2-2 tie: a sums 0.25 + 1.0, b 0.5 + 0.5 -> b
            ["a", "b", "b", "a", "c"],  # 2-2 tie, equal sums 1.25: the nearest (a) wins
        ]
    )
    distances = np.array(
        [
            [0.25, 0.5, 0.5, 3.0, 3.0],
            [0.25, 0.5, 0.5, 1.0, 2.0],
            [0.25, 0.5, 0.75, 1.0, 2.0],
        ]
    )
    assert knn_vote(labels, distances).tolist() == ["a", "b", "a"]
    with pytest.raises(ValueError, match="same shape"):
        knn_vote(labels, distances[:, :3])


def test_knn_predict_by_hand():
    train = np.array([[0.0], [1.0], [2.0], [3.0], [10.0], [11.0]])
    labels = np.array([5, 5, 7, 7, 9, 9])
    queries = np.array([[1.4], [2.5], [10.2], [6.1]])
    # 1.4, k=3: 1 (a, 0.4), 2 (b, 0.6), 0 (a, 1.4) -> 5.
    # 2.5, k=3: 2 and 3 (b, 0.5 each), 1 (a, 1.5) -> 7.
    # 10.2: 10, 11 (9), 3 (7) -> 9. 6.1: 3 (7, 3.1), 2 (7, 4.1), 10 (9, 3.9) -> 7.
    assert knn_predict(train, labels, queries, k=3).tolist() == [5, 7, 9, 7]
    # k=4 at 2.5: 2-2 tie between 7 (0.5 + 0.5) and 5 (1.5 + 2.5) -> 7.
    assert knn_predict(train, labels, queries[1:2], k=4).tolist() == [7]
    index = retrieval.ExactIndex(train)
    assert knn_predict(None, labels, queries, k=1, index=index).tolist() == [5, 7, 9, 7]
    with pytest.raises(ValueError, match="k=7 exceeds the gallery size n=6"):
        knn_predict(train, labels, queries, k=7)
    with pytest.raises(ValueError, match="train labels has 5 entries"):
        knn_predict(train, labels[:5], queries)


def test_knn_scores_by_hand():
    scores = knn_scores([0, 0, 1, 1, 2], [0, 1, 1, 1, 0])
    # class 0: P 1/2 R 1/2 F 1/2; class 1: P 2/3 R 1 F 4/5; class 2: never predicted, all 0.
    assert scores["accuracy"] == pytest.approx(0.6)
    assert scores["precision"] == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert scores["recall"] == pytest.approx(0.5)
    # The paper's F1 is 2PR / (P + R) of the macro P and R, not the mean of per-class F1.
    p, r = (1 / 2 + 2 / 3) / 3, 0.5
    assert scores["f1"] == pytest.approx(2 * p * r / (p + r))
    assert scores["macro_f1"] == pytest.approx((0.5 + 0.8) / 3)
    assert scores["confusion_matrix"].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert scores["classes"].tolist() == [0, 1, 2]
    wider = knn_scores([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], classes=[0, 1, 2, 3])
    # An absent class does not enter the macro averages.
    assert wider["f1"] == scores["f1"] and wider["macro_f1"] == scores["macro_f1"]
    assert wider["confusion_matrix"].tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0] * 4]
    with pytest.raises(ValueError, match=r"classes lacks label\(s\) \[2\]"):
        knn_scores([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], classes=[0, 1])


# The paper's Table 2: (method, backbone, accuracy, precision, recall, F1), in percent.
TABLE_2 = [
    ("CNN", "FMPNet", 79.535, 66.697, 68.582, 67.627),
    ("CNN", "CVGG13", 84.316, 75.151, 67.425, 71.079),
    ("CNN", "AlexNet", 86.038, 77.658, 68.657, 72.881),
    ("CNN", "ResNet18", 87.695, 85.956, 69.659, 76.954),
    ("CNN", "PreActResNet18", 82.372, 76.915, 65.238, 70.597),
    ("TripletLoss", "FMPNet", 82.563, 79.554, 62.406, 69.944),
    ("TripletLoss", "CVGG13", 85.974, 82.034, 68.112, 74.428),
    ("TripletLoss", "AlexNet", 86.038, 80.598, 67.895, 73.703),
    ("TripletLoss", "ResNet18", 87.121, 78.543, 68.378, 73.109),
    ("TripletLoss", "PreActResNet18", 83.519, 74.081, 64.856, 69.162),
    ("SGMLoss", "FMPNet", 83.360, 78.806, 66.520, 72.143),
    ("SGMLoss", "CVGG13", 86.261, 86.321, 67.341, 75.659),
    ("SGMLoss", "AlexNet", 86.643, 86.182, 67.673, 75.814),
    ("SGMLoss", "ResNet18", 87.631, 88.614, 68.724, 77.412),
    ("SGMLoss", "PreActResNet18", 84.316, 89.008, 66.519, 76.138),
]


@pytest.mark.parametrize("method, arch, accuracy, precision, recall, f1", TABLE_2)
def test_f1_of_reproduces_every_row_of_table_2(method, arch, accuracy, precision, recall, f1):
    assert f1_of(precision, recall) == pytest.approx(f1, abs=1e-3)
    assert f1_of(precision / 100, recall / 100) == pytest.approx(f1 / 100, abs=1e-5)


def test_paper_f1_differs_from_the_mean_of_per_class_f1():
    # One large class predicted well, two small ones confused with it.
    y_true = [0] * 8 + [1, 1] + [2, 2]
    y_pred = [0] * 8 + [0, 1] + [0, 0]
    scores = knn_scores(y_true, y_pred)
    # class 0: P 8/11 R 1; class 1: P 1 R 1/2; class 2: P 0 R 0.
    p, r = (8 / 11 + 1) / 3, (1 + 1 / 2) / 3
    assert scores["precision"] == pytest.approx(p) and scores["recall"] == pytest.approx(r)
    assert scores["f1"] == pytest.approx(2 * p * r / (p + r))  # 0.535
    per_class = [2 * (8 / 11) / (1 + 8 / 11), 2 * 0.5 / 1.5, 0.0]
    assert scores["macro_f1"] == pytest.approx(np.mean(per_class))  # 0.503
    assert scores["f1"] - scores["macro_f1"] > 0.03


def test_evaluate_embeddings_confusion_matrix_covers_train_classes():
    train, train_y = _blobs(10, classes=3, seed=5)
    test, test_y = _blobs(10, classes=3, seed=5)
    keep = test_y != 2  # class 2 absent from the test set, never predicted
    result = evaluate_embeddings(train, train_y, test[keep], test_y[keep], ks=(1,))
    assert result["classes"] == [0, 1, 2]
    assert result["confusion_matrix"] == [[10, 0, 0], [0, 10, 0], [0, 0, 0]]
    assert result["knn_f1"] == 1.0


def test_f1_vs_k_searches_once_and_matches_knn_predict(monkeypatch):
    rng = np.random.default_rng(0)
    train_y, test_y = rng.integers(0, 3, size=60), rng.integers(0, 3, size=25)
    train = np.eye(3)[train_y] * 1.5 + rng.normal(size=(60, 3))
    test = np.eye(3)[test_y] * 1.5 + rng.normal(size=(25, 3))
    calls = []
    search = retrieval.ExactIndex.search

    def counting_search(self, queries, k, exclude_self=False):
        calls.append(k)
        return search(self, queries, k, exclude_self)

    monkeypatch.setattr(retrieval.ExactIndex, "search", counting_search)
    curve = f1_vs_k(train, train_y, test, test_y, ks=range(1, 22, 2))
    assert calls == [21] and list(curve) == list(range(1, 22, 2))
    for k in (1, 5, 21):
        predicted = knn_predict(train, train_y, test, k=k)
        scores = knn_scores(test_y, predicted)
        assert curve[k] == pytest.approx(f1_of(scores["precision"], scores["recall"]))
    with pytest.raises(ValueError, match=r"K=61 must lie in \[1, 60\]"):
        f1_vs_k(train, train_y, test, test_y, ks=[61])


def _blobs(n_per_class, classes=4, dim=8, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 5
    y = np.repeat(np.arange(classes), n_per_class)
    return (centres[y] + spread * rng.normal(size=(y.size, dim))).astype("float32"), y


KEYS = {
    "nmi",
    "cluster_f1",
    "recall_at_k",
    "acc_at_k",
    "knn_accuracy",
    "knn_precision",
    "knn_recall",
    "knn_f1",
    "knn_macro_f1",
    "confusion_matrix",
    "f1_vs_k",
    "classes",
}


def test_evaluate_embeddings_on_separated_blobs():
    train, train_y = _blobs(30, seed=0)
    test, test_y = _blobs(30, seed=0)  # same centres, fresh noise below
    test = test + np.random.default_rng(1).normal(size=test.shape).astype("float32") * 0.1
    result = evaluate_embeddings(train, train_y, test, test_y)
    assert set(result) == KEYS
    assert result["nmi"] == pytest.approx(1.0) and result["cluster_f1"] == pytest.approx(1.0)
    assert result["recall_at_k"] == {k: 1.0 for k in (1, 2, 4, 8, 16, 32)}
    assert result["acc_at_k"][16] == 1.0 and result["acc_at_k"][32] < 1.0  # 29 same-class items
    assert result["knn_accuracy"] == 1.0 and result["knn_f1"] == 1.0
    assert result["confusion_matrix"] == (30 * np.eye(4, dtype=int)).tolist()
    assert result["classes"] == [0, 1, 2, 3]
    assert result["f1_vs_k"] == {k: 1.0 for k in range(1, 22)}
    decoded = json.loads(json.dumps(result))
    assert decoded["recall_at_k"]["1"] == 1.0 and decoded["classes"] == [0, 1, 2, 3]


def test_evaluate_embeddings_on_random_labels_is_near_chance():
    rng = np.random.default_rng(2)
    train, test = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    train_y, test_y = rng.integers(0, 4, size=200), rng.integers(0, 4, size=200)
    result = evaluate_embeddings(train, train_y, test, test_y, ks=(1, 4))
    assert result["nmi"] < 0.05
    assert result["cluster_f1"] < 0.35  # chance for 4 balanced classes is about 0.25
    assert result["recall_at_k"][1] < 0.4 and result["acc_at_k"][4] < 0.4
    assert result["knn_accuracy"] < 0.4 and max(result["f1_vs_k"].values()) < 0.45
    assert np.sum(result["confusion_matrix"]) == 200
    json.dumps(result)


def test_evaluate_embeddings_string_labels_and_small_test_set():
    train, train_y = _blobs(6, classes=2, seed=3)
    test, test_y = _blobs(4, classes=2, seed=3)
    names = np.array(["happy", "sad"])
    result = evaluate_embeddings(train, names[train_y], test, names[test_y], knn_k=5)
    assert list(result["recall_at_k"]) == [1, 2, 4]  # K = 8, 16, 32 exceed n_test - 1 = 7
    assert list(result["f1_vs_k"]) == list(range(1, 13))  # K up to n_train = 12
    assert result["classes"] == ["happy", "sad"]
    assert all(type(v) is float for v in result["recall_at_k"].values())
    assert type(result["nmi"]) is float and type(result["confusion_matrix"][0][0]) is int
    json.dumps(result)


def test_evaluate_embeddings_input_checks():
    train, train_y = _blobs(5, classes=2)
    with pytest.raises(ValueError, match="train labels has 9 entries but train_emb has 10 rows"):
        evaluate_embeddings(train, train_y[:9], train, train_y)
    bad = train.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="test embeddings row 3 contains NaN"):
        evaluate_embeddings(train, train_y, bad, train_y)
    with pytest.raises(ValueError, match=r"test labels hold 1 class\(es\)"):
        evaluate_embeddings(train, train_y, train, np.zeros(10, int))
    with pytest.raises(ValueError, match="dimension 3 but the gallery has dimension 8"):
        evaluate_embeddings(train, train_y, train[:, :3], train_y)
    with pytest.raises(ValueError, match=r"K=11 must lie in \[1, 10\]"):
        evaluate_embeddings(train, train_y, train, train_y, knn_k=11)
    with pytest.raises(ValueError, match=r"K=0 must lie in \[1, inf\]"):
        evaluate_embeddings(train, train_y, train, train_y, ks=(0, 1), knn_k=3)


def test_vote_chunking_gives_the_same_answer(monkeypatch):
    rng = np.random.default_rng(4)
    labels, distances = rng.integers(0, 3, size=(50, 7)), np.sort(rng.random((50, 7)), axis=1)
    whole = knn_vote(labels, distances)
    monkeypatch.setattr(evaluation.metrics, "_VOTE_CHUNK", 8)
    np.testing.assert_array_equal(knn_vote(labels, distances), whole)


def test_hidden_group_nmi_tells_kept_groups_from_a_collapsed_class():
    rng = np.random.default_rng(0)
    classes = np.repeat([0, 1], 40)
    hidden = np.tile(np.repeat([0, 1], 20), 2)
    # Kept: each hidden group of each class is its own blob.
    centres = np.array([[0, 0], [0, 6], [20, 0], [20, 6]], "float32")
    kept = centres[2 * classes + hidden] + rng.normal(0, 0.3, (80, 2))
    assert evaluation.hidden_group_nmi(kept, classes, hidden) == pytest.approx(1.0)
    # Collapsed: each class is one blob whatever its hidden group.
    collapsed = centres[2 * classes] + rng.normal(0, 0.3, (80, 2))
    assert evaluation.hidden_group_nmi(collapsed, classes, hidden) < 0.1
    # A class with one hidden group counts as kept (nothing to find).
    single = np.where(classes == 1, 0, hidden)
    assert evaluation.hidden_group_nmi(kept, classes, single) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"shape \[80, dim\]"):
        evaluation.hidden_group_nmi(kept[:10], classes, hidden)
