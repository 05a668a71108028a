import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from keras_sgm.dgms import split as split_module
from keras_sgm.dgms import split_classes
from keras_sgm.dgms.split import _principal


def _hidden_blobs(per_blob=15, classes=(3, 40213), blobs=2, seed=0):
    """Each class is made of `blobs` far-apart Gaussian blobs; returns x, y, hidden blob id."""
    rng = np.random.default_rng(seed)
    x, y, hidden = [], [], []
    for i, c in enumerate(classes):
        for b in range(blobs):
            centre = np.array([10.0 * i, 10.0 * b])
            x.append(centre + 0.3 * rng.normal(size=(per_blob, 2)))
            y += [c] * per_blob
            hidden += [i * blobs + b] * per_blob
    order = rng.permutation(len(y))
    return np.concatenate(x)[order], np.array(y)[order], np.array(hidden)[order]


@pytest.mark.parametrize("method", ["kmeans", "em"])
def test_split_recovers_hidden_groups_and_keeps_the_class_map(method):
    x, y, hidden = _hidden_blobs()
    result = split_classes(x, y, clusters=2, min_size=5, method=method)
    assert result.num_classes == 4 and result.decisions == ()
    assert normalized_mutual_info_score(hidden, result.labels) == pytest.approx(1.0)
    # Contiguous new ids, each mapped to the class its members came from.
    assert sorted(np.unique(result.labels)) == [0, 1, 2, 3]
    np.testing.assert_array_equal(result.parent[result.labels], y)
    assert result.parent.tolist() == [3, 3, 40213, 40213]


def test_small_and_degenerate_classes_are_kept_whole_with_a_reason():
    x, y, _ = _hidden_blobs()
    signed_zeros = np.where(np.arange(20)[:, None] % 2, 0.0, -0.0) * np.ones((20, 2))
    x = np.concatenate([x, np.ones((10, 2)), np.zeros((3, 2)), signed_zeros])
    y = np.concatenate([y, [8] * 10, [9] * 3, [10] * 20])
    result = split_classes(x, y, clusters=2, min_size=4)
    assert result.num_classes == 7
    assert any(d.startswith("class 8: all 10 examples have the same") for d in result.decisions)
    # -0.0 and 0.0 are one value
    assert any(d.startswith("class 10: all 20 examples have the same") for d in result.decisions)
    assert any(d.startswith("class 9: 3 examples, too few") for d in result.decisions)
    # Nothing lost: the kept classes keep all their examples under one new id.
    for c in (8, 9, 10):
        assert len(np.unique(result.labels[y == c])) == 1
        assert np.sum(result.parent[result.labels] == c) == np.sum(y == c)


def test_a_group_too_small_for_a_batch_share_is_never_created():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2)), [[50, 50]]])
    y = np.zeros(41, "int64")
    # Three groups asked: k-means finds both blobs and puts the outlier alone, a
    # sub-class of 1 example; the outlier joins the nearest blob instead.
    result = split_classes(x, y, clusters=3, min_size=4)
    assert np.bincount(result.labels).min() >= 4
    assert result.num_classes == 2
    assert normalized_mutual_info_score((x[:, 0] > 2.5).astype(int), result.labels) == 1.0
    assert result.decisions == (
        "class 0: split into 2 sub-classes instead of 3 (sizes [21, 20], minimum 4)",
    )
    # One blob of 40 plus a lone outlier cannot make two groups of 4.
    result = split_classes(x[20:], y[20:], clusters=2, min_size=4)
    assert result.num_classes == 1 and "kept whole" in result.decisions[0]


def test_wide_features_are_clustered_in_their_principal_components(monkeypatch):
    # The hidden blobs of _hidden_blobs, rotated into 2304 columns (a 48x48 image) with noise.
    x, y, hidden = _hidden_blobs(per_blob=40)
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.normal(size=(2304, 2)))[0].T  # 2 orthonormal rows
    wide = (x @ basis + 0.05 * rng.normal(size=(len(x), 2304))).astype("float32")
    clustered = []  # the width of what k-means receives, class by class
    real = split_module.cluster_ids
    monkeypatch.setattr(
        split_module,
        "cluster_ids",
        lambda x, *a, **k: clustered.append(x.shape[1]) or real(x, *a, **k),
    )
    reduced = split_classes(wide, y, clusters=2, min_size=5, pca_dims=16)
    full = split_classes(wide, y, clusters=2, min_size=5, pca_dims=None)
    assert clustered == [16, 16, 2304, 2304]
    assert normalized_mutual_info_score(hidden, reduced.labels) == pytest.approx(1.0)
    np.testing.assert_array_equal(reduced.labels, full.labels)
    np.testing.assert_array_equal(reduced.parent, full.parent)


def test_principal_components_drop_columns_only_when_there_are_more():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 300))
    assert _principal(x, 64, seed=0).shape == (50, 50)
    assert _principal(x, 20, seed=0).shape == (50, 20)
    assert _principal(x, 300, seed=0) is x and _principal(x, None, seed=0) is x

    # Fewer rows than components: a rotation of the centred rows, every distance kept.
    def distances(a):
        return np.linalg.norm(a[:, None] - a[None], axis=-1)

    np.testing.assert_allclose(distances(_principal(x, 64, seed=0)), distances(x), rtol=1e-6)


def test_budgets_limit_the_groups_of_each_class():
    x, y, _ = _hidden_blobs(blobs=3)
    result = split_classes(x, y, clusters=3, min_size=3, budgets={3: 2})
    assert np.sum(result.parent == 3) == 2 and np.sum(result.parent == 40213) == 1


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 40),
    classes=st.integers(1, 4),
    clusters=st.integers(2, 4),
    min_size=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_no_label_is_ever_lost(n, classes, clusters, min_size, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(n, 2)).astype("float64")  # many ties
    y = rng.integers(0, classes, size=n) * 7
    result = split_classes(x, y, clusters=clusters, min_size=min_size, seed=seed)
    np.testing.assert_array_equal(result.parent[result.labels], y)
    counts = np.bincount(result.labels, minlength=result.num_classes)
    assert counts.min() >= 1
    for c in np.unique(y):
        subs = np.flatnonzero(result.parent == c)
        assert 1 <= len(subs) <= clusters
        if len(subs) > 1:
            assert counts[subs].min() >= min_size


def _side_by_side(per_group=40, seed=0):
    """Two long, parallel, closely spaced Gaussian groups (tilted 30 degrees), one class.

    Each is 15 times longer (sd 3) than wide (sd 0.2); they lie 1.5 apart
    across their length and 5 apart along it. Returns x, y (all 0), group id.
    """
    rng = np.random.default_rng(seed)
    shape = np.array([3.0, 0.2])
    a = rng.normal(size=(per_group, 2)) * shape
    b = rng.normal(size=(per_group, 2)) * shape + [5.0, 1.5]
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    x = np.concatenate([a, b]) @ rotation.T
    return x, np.zeros(2 * per_group, "int64"), np.repeat([0, 1], per_group)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_covariance_em_recovers_elongated_groups_that_kmeans_cuts_across(seed):
    x, y, hidden = _side_by_side(seed=seed)

    def agreement(**kwargs):
        labels = split_classes(x, y, clusters=2, min_size=5, **kwargs).labels
        return adjusted_rand_score(hidden, labels), normalized_mutual_info_score(hidden, labels)

    full_ari, full_nmi = agreement(method="em", covariance_type="full")
    assert full_ari > 0.95 and full_nmi > 0.9
    # Round clusters cut across both groups (the squared distances favour their length).
    for kwargs in (
        {"method": "kmeans"},
        {"method": "em"},
        {"method": "em", "covariance_type": "diag"},
    ):
        ari, nmi = agreement(**kwargs)
        assert ari < 0.7 and nmi < 0.6, (kwargs, ari, nmi)
    # The default is unchanged (spherical), and k-means has no covariances to choose.
    np.testing.assert_array_equal(
        split_classes(x, y, method="em").labels,
        split_classes(x, y, method="em", covariance_type="spherical").labels,
    )
    np.testing.assert_array_equal(
        split_classes(x, y).labels, split_classes(x, y, covariance_type="full").labels
    )


def test_covariance_type_reaches_the_clustering(monkeypatch):
    x, y, _ = _hidden_blobs()
    seen = []
    real = split_module.cluster_ids
    monkeypatch.setattr(
        split_module,
        "cluster_ids",
        lambda x, k, method, seed, covariance_type, label: (
            seen.append((method, covariance_type, label))
            or real(x, k, method, seed, covariance_type, label=label)
        ),
    )
    split_classes(x, y, method="em", covariance_type="tied")
    assert seen == [("em", "tied", "class 3"), ("em", "tied", "class 40213")]


class TestBadInput:
    def test_non_finite_row_named(self):
        x, y, _ = _hidden_blobs()
        x[7, 1] = np.nan
        with pytest.raises(ValueError, match="row 7"):
            split_classes(x, y)

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"clusters": 1}, "clusters"),
            ({"clusters": 2.5}, "clusters"),
            ({"min_size": 0}, "min_size"),
            ({"method": "dbscan"}, "dbscan"),
            ({"pca_dims": 0}, "pca_dims must be a positive int or None; received 0"),
            ({"pca_dims": 2.5}, "pca_dims"),
            ({"pca_dims": True}, "pca_dims"),
            ({"covariance_type": "fulll"}, r"Unknown covariance_type 'fulll'.*'full'"),
            ({"covariance_type": None, "method": "kmeans"}, "covariance_type None"),
        ],
    )
    def test_bad_options(self, kwargs, message):
        x, y, _ = _hidden_blobs()
        with pytest.raises(ValueError, match=message):
            split_classes(x, y, **kwargs)

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"\(4, 2\) for 3 labels"):
            split_classes(np.zeros((4, 2)), np.zeros(3))
