"""keras_sgm.dgms.groups: EM / k-means groups, medoids and Top-k (paper section 4.2.3)."""

import dataclasses
import logging

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_sgm.dgms.groups import Group, find_groups, medoid_index, top_k_members
from keras_sgm.evaluation import nmi


def _blobs(sizes, dim=5, spread=0.2, distance=8.0, seed=0):
    """Well-separated Gaussian blobs (shuffled) and the blob of every row."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim)) * distance
    blob = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    return (centres[blob] + spread * rng.normal(size=(blob.size, dim))).astype("float32"), blob


def _assignment(groups, n):
    ids = np.full(n, -1)
    for i, group in enumerate(groups):
        assert (ids[group.members] == -1).all(), "a row is in two groups"
        ids[group.members] = i
    assert (ids >= 0).all(), "a row is in no group"
    return ids


def _purity(truth, ids):
    return sum(np.bincount(truth[ids == i]).max() for i in np.unique(ids)) / truth.size


@pytest.mark.parametrize("method", ["em", "kmeans"])
def test_recovers_well_separated_blobs(method):
    x, blob = _blobs([30, 25, 20, 15])
    groups = find_groups(x, n_groups=4, method=method, top_k=5)
    ids = _assignment(groups, x.shape[0])
    assert nmi(blob, ids) > 0.999 and _purity(blob, ids) == 1.0
    assert [g.size for g in groups] == [30, 25, 20, 15]  # largest first
    for g in groups:
        assert g.label is None and g.top_k.shape == (5,) and g.mean.dtype == np.float32
        np.testing.assert_allclose(g.mean, x[g.members].mean(axis=0), atol=1e-5)


@pytest.mark.parametrize("covariance_type", ["diag", "tied", "full"])
def test_other_covariance_types(covariance_type):
    x, blob = _blobs([20, 20, 20], dim=3)
    groups = find_groups(x, n_groups=3, covariance_type=covariance_type)
    assert nmi(blob, _assignment(groups, x.shape[0])) > 0.999


def test_medoid_members_and_top_k_match_brute_force():
    x, _ = _blobs([12, 9, 7], dim=3, spread=1.0, distance=4.0, seed=3)
    groups = find_groups(x, n_groups=3, top_k=4)
    for g in groups:
        members = np.sort(g.members)
        mean = x[members].astype(np.float64).mean(axis=0)
        brute = members[np.argmin([np.linalg.norm(x[i] - mean) for i in members])]
        assert g.medoid == brute == g.members[0]
        to_medoid = np.linalg.norm(x[g.members] - x[g.medoid], axis=1)
        assert np.all(np.diff(to_medoid) >= 0)  # members ordered by distance to the medoid
        nearest = members[np.argsort(np.linalg.norm(x[members] - x[g.medoid], axis=1))][:4]
        assert g.top_k.tolist() == nearest.tolist() == g.members[:4].tolist()


def test_group_is_frozen_and_read_only():
    x, _ = _blobs([6, 6])
    group = find_groups(x, n_groups=2)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        group.medoid = 0
    with pytest.raises(ValueError, match="read-only"):
        group.members[0] = 0
    assert isinstance(group, Group) and group.size == 6


def test_per_class_groups_never_mix_labels():
    # Two classes spread over the same three blobs: groups overall would mix them.
    x, blob = _blobs([20, 20, 20], dim=4)
    labels = np.where(np.arange(60) % 2 == 0, "happiness", "surprise")
    groups = find_groups(x, n_groups=3, labels=labels, top_k=3)
    assert [g.label for g in groups] == ["happiness"] * 3 + ["surprise"] * 3
    assert all(isinstance(g.label, str) for g in groups)
    _assignment(groups, 60)
    for g in groups:
        assert set(labels[g.members]) == {g.label}
        assert np.unique(blob[g.members]).size == 1  # and within a class, blobs are recovered
    sizes = [g.size for g in groups]
    assert sizes[:3] == sorted(sizes[:3], reverse=True) and sum(sizes[:3]) == 30


def test_small_class_is_capped_with_a_log(caplog):
    x, _ = _blobs([10, 10, 2], dim=3)
    labels = np.repeat([0, 1, 7], [10, 10, 2])
    with caplog.at_level(logging.WARNING, logger="keras_sgm.dgms"):
        groups = find_groups(x, n_groups=4, labels=labels, method="kmeans")
    counts = {c: sum(g.label == c for g in groups) for c in (0, 1, 7)}
    assert counts == {0: 4, 1: 4, 7: 2}
    assert "class 7 has 2 embedding(s): 2 group(s) instead of n_groups=4" in caplog.text
    assert all(type(g.label) is int for g in groups)


def test_empty_components_are_dropped_and_logged(caplog):
    # 12 rows, only 2 distinct points: 3 of the 5 EM components get no row.
    x = np.repeat([[0.0, 0.0], [3.0, 4.0]], [8, 4], axis=0)
    with caplog.at_level(logging.WARNING, logger="keras_sgm.dgms"):
        groups = find_groups(x, n_groups=5)
    assert [(g.size, g.medoid) for g in groups] == [(8, 0), (4, 8)]
    assert [g.top_k.tolist() for g in groups] == [list(range(8)), [8, 9, 10, 11]]
    assert "3 of 5 groups came out empty and were dropped (2 groups kept)" in caplog.text


def test_one_group_takes_everything():
    x, _ = _blobs([5, 5])
    (group,) = find_groups(x, n_groups=1, top_k=20)
    assert group.size == 10 and group.top_k.size == 10
    assert group.medoid == medoid_index(x, np.arange(10))


def test_find_groups_input_checks():
    x, _ = _blobs([5, 5])
    with pytest.raises(ValueError, match="n_groups=11 exceeds the number of embeddings n=10"):
        find_groups(x, n_groups=11)
    bad = x.copy()
    bad[6, 2] = np.nan
    with pytest.raises(ValueError, match="embeddings row 6 contains NaN or inf"):
        find_groups(bad, n_groups=2)
    with pytest.raises(ValueError, match="top_k must be a positive integer; received 0"):
        find_groups(x, n_groups=2, top_k=0)
    with pytest.raises(ValueError, match="n_groups must be a positive integer; received -1"):
        find_groups(x, n_groups=-1)
    with pytest.raises(ValueError, match="method must be one of"):
        find_groups(x, n_groups=2, method="dbscan")
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        find_groups(x, n_groups=2, covariance_type="round")
    with pytest.raises(ValueError, match=r"labels must have shape \[10\]"):
        find_groups(x, n_groups=2, labels=[0, 1])
    with pytest.raises(ValueError, match="embeddings is empty"):
        find_groups(np.zeros((0, 3)), n_groups=1)


def test_helpers_input_checks():
    x = np.arange(8, dtype="float32").reshape(4, 2)
    with pytest.raises(ValueError, match="k must be a positive integer; received 0"):
        top_k_members(x, [0, 1], 0, 0)
    with pytest.raises(ValueError, match="medoid 3 is not one of the members"):
        top_k_members(x, [0, 1], 3, 1)
    with pytest.raises(ValueError, match="must index the 4 embeddings; received 4"):
        medoid_index(x, [0, 4])
    with pytest.raises(ValueError, match="repeated indices"):
        medoid_index(x, [1, 1])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        medoid_index(x, [])
    with pytest.raises(ValueError, match="integer indices"):
        medoid_index(x, [0.0, 1.0])


def test_medoid_ties_go_to_the_smallest_index():
    x = np.array([[1.0], [0.0], [2.0], [0.0], [2.0]])  # mean 1.0 is row 0; drop row 0:
    assert medoid_index(x, [4, 2, 3, 1]) == 1  # mean 1.0: rows 1-4 all at distance 1
    assert top_k_members(x, [4, 2, 3, 1], 3, 3).tolist() == [3, 1, 2]


_points = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 12), st.integers(1, 4)),
    elements=st.floats(-100, 100, allow_nan=False, width=32),
)


@given(x=_points, data=st.data())
def test_medoid_is_the_member_closest_to_the_mean(x, data):
    members = data.draw(
        st.lists(st.integers(0, x.shape[0] - 1), min_size=1, max_size=x.shape[0], unique=True)
    )
    medoid = medoid_index(x, members)
    assert medoid in members
    x32 = x.astype(np.float32).astype(np.float64)
    distances = np.linalg.norm(x32[members] - x32[members].mean(axis=0), axis=1)
    assert np.linalg.norm(x32[medoid] - x32[members].mean(axis=0)) <= distances.min() + 1e-9


@given(x=_points, data=st.data())
def test_top_k_are_the_k_members_nearest_the_medoid(x, data):
    n = x.shape[0]
    members = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    medoid = data.draw(st.sampled_from(members))
    k = data.draw(st.integers(1, n + 2))
    top = top_k_members(x, members, medoid, k)
    assert top.size == min(k, len(members)) and top[0] == medoid
    assert len(set(top.tolist())) == top.size and set(top.tolist()) <= set(members)
    x32 = x.astype(np.float32).astype(np.float64)
    to_medoid = {i: np.linalg.norm(x32[i] - x32[medoid]) for i in members}
    rest = [i for i in members if i not in set(top.tolist())]
    if rest:  # no left-out member is nearer than a chosen one
        assert max(to_medoid[i] for i in top) <= min(to_medoid[i] for i in rest) + 1e-9
    assert all(to_medoid[a] <= to_medoid[b] + 1e-9 for a, b in zip(top[1:], top[2:]))
