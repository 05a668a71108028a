import numpy as np
import pytest

from keras_sgm.retrieval import ApproximateIndex, ExactIndex, build_index


def _brute_force(gallery, queries, k, metric, exclude_self=False):
    """NumPy float64 reference: `(distances, indices)`, nearest first, ties to the lower index."""
    g = gallery.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "euclidean":
        dist = np.sqrt(((q[:, None, :] - g[None, :, :]) ** 2).sum(-1))
    else:
        gn = g / np.linalg.norm(g, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        dist = 1.0 - qn @ gn.T
    if exclude_self:
        np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, axis=1), order


def _data(n, m, dim, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, dim)).astype("float32") + 3.0,  # off the origin: tests the centring
        rng.normal(size=(m, dim)).astype("float32") + 3.0,
    )


# n=150 uses one top-k over the whole gallery; n=1000 (>= 4 k 32) the two-stage top-k.
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("n,k", [(150, 7), (1000, 7)])
def test_exact_index_matches_numpy(metric, n, k):
    gallery, queries = _data(n, 90, 12)
    index = ExactIndex(gallery, metric=metric, batch_size=32)  # 90 queries: 3 batches, 1 padded
    distances, indices = index.search(queries, k)
    ref_d, ref_i = _brute_force(gallery, queries, k, metric)
    assert distances.shape == indices.shape == (90, k)
    assert distances.dtype == np.float32 and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, ref_i)
    np.testing.assert_allclose(distances, ref_d, rtol=1e-5, atol=1e-5)
    assert np.all(np.diff(distances, axis=1) >= 0)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("n", [150, 1000])
def test_exact_index_exclude_self_gallery_not_divisible_by_batch(metric, n):
    gallery, _ = _data(n, 1, 8, seed=1)
    index = ExactIndex(gallery, metric=metric, batch_size=64)  # n % 64 != 0
    distances, indices = index.search(gallery, 5, exclude_self=True)
    ref_d, ref_i = _brute_force(gallery, gallery, 5, metric, exclude_self=True)
    assert not np.any(indices == np.arange(n)[:, None])
    np.testing.assert_array_equal(indices, ref_i)
    np.testing.assert_allclose(distances, ref_d, rtol=1e-5, atol=1e-5)


def test_exact_index_self_distance_is_zero_and_k_equals_gallery_size():
    gallery, _ = _data(40, 1, 6, seed=2)
    distances, indices = ExactIndex(gallery).search(gallery, 40)
    np.testing.assert_array_equal(indices[:, 0], np.arange(40))
    np.testing.assert_allclose(distances[:, 0], 0.0, atol=1e-6)  # recomputed from differences
    assert sorted(indices[0].tolist()) == list(range(40))


def test_exact_index_ties_go_to_the_lower_index_and_labels_index():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], "float32")
    index = ExactIndex(gallery, labels=np.array(["a", "b", "c", "d"]))
    distances, indices = index.search(np.zeros((1, 2)), 4)  # all four at distance 1
    assert indices.tolist() == [[0, 1, 2, 3]]
    np.testing.assert_allclose(distances, 1.0)
    assert index.labels[indices].tolist() == [["a", "b", "c", "d"]]


def test_exact_index_compiles_once_for_all_batches():
    gallery, queries = _data(300, 200, 4, seed=3)
    index = ExactIndex(gallery, batch_size=16)
    index.search(queries, 3)  # 13 batches, the last one padded
    index.search(queries[:50], 3)  # 50 queries: batches of 16 again
    assert index._search_batch.experimental_get_tracing_count() == 1
    index.search(queries[:3], 3)  # 3 queries: one batch of 4, a new shape
    assert index._search_batch.experimental_get_tracing_count() == 2


def test_exact_index_default_batch_size_keeps_scores_near_20_mib():
    assert ExactIndex(np.ones((100, 2))).batch_size == 1024
    assert ExactIndex(np.ones((20000, 2))).batch_size == 262
    assert ExactIndex(np.ones((200000, 2))).batch_size == 64  # at least 64 queries a batch


def test_exact_index_empty_queries():
    distances, indices = ExactIndex(np.eye(3)).search(np.zeros((0, 3)), 2)
    assert distances.shape == indices.shape == (0, 2)


def test_exact_index_errors_name_the_numbers():
    gallery = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
    index = ExactIndex(gallery)
    with pytest.raises(ValueError, match=r"k=11 exceeds the gallery size n=10"):
        index.search(gallery, 11)
    with pytest.raises(ValueError, match=r"k=10 exceeds n-1=9"):
        index.search(gallery, 10, exclude_self=True)
    with pytest.raises(ValueError, match=r"3 queries for a gallery of 10"):
        index.search(gallery[:3], 2, exclude_self=True)
    with pytest.raises(ValueError, match=r"positive integer"):
        index.search(gallery, 0)
    with pytest.raises(ValueError, match=r"dimension 5 but the gallery has dimension 4"):
        index.search(np.zeros((2, 5)), 1)
    bad = gallery.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"queries row 7 contains NaN"):
        index.search(bad, 1)
    with pytest.raises(ValueError, match=r"gallery row 7 contains NaN"):
        ExactIndex(bad)
    with pytest.raises(ValueError, match=r"metric must be one of"):
        ExactIndex(gallery, metric="manhattan")
    with pytest.raises(ValueError, match=r"labels must have shape \[10\]"):
        ExactIndex(gallery, labels=np.arange(9))
    with pytest.raises(ValueError, match=r"shape \[n, dim\]"):
        ExactIndex(np.zeros(5))
    with pytest.raises(ValueError, match=r"batch_size"):
        ExactIndex(gallery, batch_size=0)


def test_build_index_backends():
    gallery, queries = _data(50, 5, 3, seed=4)
    index = build_index(gallery, labels=np.arange(50), metric="cosine", batch_size=8)
    assert isinstance(index, ExactIndex) and index.metric == "cosine" and index.batch_size == 8
    np.testing.assert_array_equal(
        index.search(queries, 3)[1], _brute_force(gallery, queries, 3, "cosine")[1]
    )
    with pytest.raises(ValueError, match="backend must be one of"):
        build_index(gallery, backend="annoy")


def test_approximate_index_without_faiss_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        ApproximateIndex(np.ones((10, 2)))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_approximate_index_recall_against_exact(metric):
    pytest.importorskip("faiss")
    gallery, queries = _data(5000, 200, 16, seed=5)
    index = build_index(gallery, backend="faiss", metric=metric, nlist=32, nprobe=16)
    distances, indices = index.search(queries, 10)
    exact_d, exact_i = ExactIndex(gallery, metric=metric).search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(indices, exact_i)])
    assert recall >= 0.9
    assert distances.dtype == np.float32 and indices.dtype == np.int64
    found = indices == exact_i
    np.testing.assert_allclose(distances[found], exact_d[found], rtol=1e-4, atol=1e-4)


def test_approximate_index_exclude_self_and_errors():
    pytest.importorskip("faiss")
    gallery, _ = _data(400, 1, 4, seed=6)
    index = ApproximateIndex(gallery, labels=np.arange(400) % 3, nlist=4, nprobe=4)  # exact
    distances, indices = index.search(gallery, 5, exclude_self=True)
    ref_d, ref_i = _brute_force(gallery, gallery, 5, "euclidean", exclude_self=True)
    np.testing.assert_array_equal(indices, ref_i)
    np.testing.assert_allclose(distances, ref_d, rtol=1e-4, atol=1e-4)
    assert index.labels[indices].shape == (400, 5)
    with pytest.raises(ValueError, match=r"k=400 exceeds n-1=399"):
        index.search(gallery, 400, exclude_self=True)
    with pytest.raises(ValueError, match=r"nlist must lie in \[1, n=400\]"):
        ApproximateIndex(gallery, nlist=401)


def test_approximate_index_nprobe_trades_recall_and_is_capped():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(3)
    gallery = rng.normal(size=(4000, 16)).astype("float32")
    queries = rng.normal(size=(200, 16)).astype("float32")
    _, truth = ExactIndex(gallery).search(queries, 10)
    index = ApproximateIndex(gallery, nlist=64, nprobe=1)

    def recall():
        found = index.search(queries, 10)[1]
        return np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(found, truth)])

    low = recall()
    index.nprobe = 1000  # capped at nlist: an exhaustive scan
    assert index.nprobe == 64 and recall() == 1.0 and low < 0.8
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="nprobe must be a positive integer"):
            index.nprobe = bad


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_the_numpy_search_of_a_process_without_tensorflow_equals_the_xla_one(
    metric, exclude_self, monkeypatch
):
    from keras_sgm import retrieval

    gallery, _ = _data(1500, 1, 8, seed=4)  # >= 4 k 32 rows: the two-stage top-k of XLA
    gallery[100:110] = gallery[7]  # exact duplicates: ties in distance and in score
    queries = gallery if exclude_self else np.concatenate([gallery[:40], gallery[7:8] + 1e-3])
    xla = ExactIndex(gallery, metric=metric).search(queries, 11, exclude_self=exclude_self)
    monkeypatch.setattr(retrieval, "_tensorflow_loaded", lambda: False)
    index = ExactIndex(gallery, metric=metric, batch_size=16)
    plain = index.search(queries, 11, exclude_self=exclude_self)
    assert index._search_batch is None  # TensorFlow never ran
    np.testing.assert_array_equal(plain[1], xla[1])
    np.testing.assert_allclose(plain[0], xla[0], atol=1e-5)
    assert plain[0].dtype == np.float32 and plain[1].dtype == np.int64


def test_the_numpy_search_lets_exact_distances_decide_between_rows_scored_a_few_ulps_apart(
    monkeypatch,
):
    from keras_sgm import retrieval

    gallery, _ = _data(300, 1, 8, seed=5)
    gallery[100:120] = gallery[7]  # more duplicates than k: which 11 comes down to the index
    monkeypatch.setattr(retrieval, "_tensorflow_loaded", lambda: False)
    for metric in ("euclidean", "cosine"):
        index = ExactIndex(gallery, metric=metric)
        # A matmul that rounds row 7's score below its duplicates', as some BLAS kernels do.
        index._keys[7, :-1] *= np.float32(1 - 4e-7)
        distances, indices = index.search(gallery[7:8], 11)
        assert indices[0].tolist() == [7, *range(100, 110)]
        assert distances[0, 0] == distances[0, 1]
