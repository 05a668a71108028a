"""Sub-class splitting, the step DGMS repeats (paper section 3.2, Algorithm 2).

Each current (sub-)class is clustered into `clusters` groups on some
representation of its examples, and every example is relabelled with its
group. The new ids are contiguous, and `Split.parent` maps each one to the
(sub-)class it came from, so a chain of splits always leads back to the
original class.

No sub-class is smaller than `min_size`: the members of a smaller group (an
outlier, say) join the nearest remaining group. A class is kept whole - never
dropped, never half-relabelled - when fewer than two groups remain, when it has
too few examples, or when all its representations are equal. Each such
decision is recorded, in words, in `Split.decisions`.

A class whose representation has more than `pca_dims` columns (the raw pixels
of a 48x48 face: 2304) is clustered in its top `pca_dims` principal
components: k-means' squared distances there keep the class's main axes of
variation and drop the least ones, and k-means works on `pca_dims` columns
instead of `dim` (`bench/dgms_relabel.py` measures the time and, with
`--compare-dataset`, how much the sub-classes change).

With `method="em"`, `covariance_type` chooses the mixture's covariances:
`"spherical"` (the default) assumes round groups, as k-means does; `"full"`
(the paper authors' setting) can also find elongated groups lying side by
side, which k-means cuts across. EM starts from k-means' means, though, and
is local: where k-means' cut is far from the groups (two long parallel groups
side by side over the same stretch, cut crosswise), EM tends to stay near it.
"""

import dataclasses

import numpy as np

from keras_sgm.dgms.groups import COVARIANCE_TYPES, METHODS, cluster_ids


@dataclasses.dataclass(frozen=True)
class Split:
    """The result of one splitting step.

    Attributes:
        labels: int64 `[n]`, the new (sub-)class id of every example,
            contiguous from 0.
        parent: int64 `[m]`, `parent[i]` is the id (before the split) of the
            class that new id `i` came from.
        decisions: tuple of strings, one per class kept whole, saying why.
    """

    labels: np.ndarray
    parent: np.ndarray
    decisions: tuple = ()

    @property
    def num_classes(self):
        return len(self.parent)


def split_classes(
    features,
    labels,
    clusters=2,
    min_size=1,
    method="kmeans",
    seed=0,
    budgets=None,
    name=None,
    pca_dims=64,
    covariance_type="spherical",
):
    """Split every class into up to `clusters` sub-classes of its features.

    Args:
        features: float array `[n, dim]`, the representation to cluster.
        labels: int array `[n]`, the current (sub-)class ids.
        clusters: int >= 2, groups asked for per class.
        min_size: int >= 1, the smallest sub-class allowed (e.g. the
            sampler's `samples_per_class`, so that each sub-class fills its
            share of a batch without repeats). The members of a smaller group
            join the nearest other group; a class is kept whole when fewer
            than two groups remain.
        method: `"kmeans"` (10 initialisations) or `"em"` (a Gaussian
            mixture fitted by EM, its means started from k-means'), see
            `groups.cluster_ids`.
        seed: int, default 0.
        budgets: optional dict class id -> groups asked for that class
            (at most `clusters`); classes missing from it, or given fewer
            than 2, are kept whole without a recorded decision (e.g. classes
            that already have as many sub-classes as wanted).
        name: optional callable, class id -> how decisions name it
            (default `"class <id>"`).
        pca_dims: optional int >= 1, default 64: each class with more
            feature columns is clustered in its top `pca_dims` principal
            components (randomized PCA with `seed`). None clusters every
            column.
        covariance_type: one of `"spherical"` (default), `"diag"`, `"tied"`,
            `"full"` (`groups.COVARIANCE_TYPES`): the covariances of EM's
            components. Validated for every method, used only by `"em"`
            (k-means has none).

    Returns:
        A `Split`.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[0.0], [0.1], [5.0], [5.1], [9.0], [9.1]])
        >>> s = split_classes(x, np.array([7, 7, 7, 7, 3, 3]), clusters=2, min_size=2)
        >>> s.labels.tolist(), s.parent.tolist()
        ([1, 1, 2, 2, 0, 0], [3, 7, 7])
        >>> s.decisions
        ('class 3: 2 examples, too few for 2 sub-classes of at least 2; kept whole',)
    """
    features = np.asarray(features)
    # float32 stays float32 (half the memory and time of float64 on 28k x 2304 pixels).
    features = features.astype(np.result_type(features.dtype, np.float32), copy=False)
    labels = np.asarray(labels).reshape(-1)
    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features must be [n, dim] with one row per label; received shape "
            f"{features.shape} for {labels.shape[0]} labels."
        )
    bad = np.flatnonzero(~np.all(np.isfinite(features), axis=1))
    if bad.size:
        raise ValueError(
            f"The features of {bad.size} examples are not finite (first: row {int(bad[0])}); "
            "cannot cluster them."
        )
    if isinstance(clusters, bool) or int(clusters) != clusters or clusters < 2:
        raise ValueError(f"clusters must be an int >= 2; received {clusters!r}.")
    if isinstance(min_size, bool) or int(min_size) != min_size or min_size < 1:
        raise ValueError(f"min_size must be a positive int; received {min_size!r}.")
    if method not in METHODS:
        raise ValueError(f"Unknown clustering method {method!r}; choose one of {list(METHODS)}.")
    pca_dims = check_pca_dims(pca_dims)
    check_covariance_type(covariance_type)

    new_labels = np.empty(labels.shape[0], "int64")
    parent, decisions = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = clusters if budgets is None else min(clusters, budgets.get(int(c), 1))
        if k < 2:
            groups, note = np.zeros(len(members), "int64"), None
        else:
            label = name(int(c)) if name else f"class {int(c)}"
            groups, note = _split_one(
                features[members], label, k, min_size, method, seed, pca_dims, covariance_type
            )
        if note:
            decisions.append(note)
        new_labels[members] = groups + len(parent)
        parent.extend([int(c)] * (int(groups.max()) + 1))
    return Split(new_labels, np.asarray(parent, "int64"), tuple(decisions))


def _distinct_rows(x, at_most):
    """The number of distinct rows of `x`, counted up to `at_most` (all that a split needs)."""
    seen = set()
    for row in x:
        seen.add((row + 0).tobytes())  # + 0: -0.0 becomes 0.0, equal as np.unique has it
        if len(seen) >= at_most:
            break
    return len(seen)


def check_pca_dims(value, name="pca_dims"):
    """`value` as an int (or None); ValueError, naming `name`, unless a positive int or None."""
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive int or None; received {value!r}.")
    return int(value)


def check_covariance_type(value, name="covariance_type"):
    """`value`, or ValueError naming it and `name`, unless one of `groups.COVARIANCE_TYPES`."""
    if value not in COVARIANCE_TYPES:
        raise ValueError(f"Unknown {name} {value!r}; choose one of {list(COVARIANCE_TYPES)}.")
    return value


def _principal(x, dims, seed):
    """`x` `[n, dim]` in its top `dims` principal components; `x` itself when `dim <= dims`."""
    if dims is None or x.shape[1] <= dims:
        return x
    from sklearn.decomposition import PCA

    # With n <= dims rows, n components span the rows: a rotation, nothing dropped.
    pca = PCA(min(dims, x.shape[0]), svd_solver="randomized", random_state=seed)
    return pca.fit_transform(x)


def _split_one(x, c, clusters, min_size, method, seed, pca_dims, covariance_type):
    """`(groups [len(x)] in 0..g-1, decision or None)` for one class."""
    n = len(x)
    if n < 2 * min_size:
        return np.zeros(n, "int64"), (
            f"{c}: {n} examples, too few for 2 sub-classes of at least {min_size}; kept whole"
        )
    distinct = _distinct_rows(x, clusters)
    if distinct < 2:
        return np.zeros(n, "int64"), (
            f"{c}: all {n} examples have the same representation; kept whole"
        )
    k = min(clusters, n // min_size, distinct)
    x = _principal(x, pca_dims, seed)
    ids = cluster_ids(x, k, method, seed, covariance_type, label=c)
    groups = _dissolve_small(x, ids, min_size)
    counts = np.bincount(groups)
    if len(counts) < 2:
        return np.zeros(n, "int64"), (
            f"{c}: no split into sub-classes of at least {min_size} examples was found; kept whole"
        )
    note = None
    if len(counts) < clusters:
        note = (
            f"{c}: split into {len(counts)} sub-classes instead of {clusters} "
            f"(sizes {sorted(counts.tolist(), reverse=True)}, minimum {min_size})"
        )
    return _by_size(groups), note


def _dissolve_small(x, ids, min_size):
    """Give the members of groups under `min_size` to the nearest remaining group, smallest first.

    Returns contiguous group ids; a single group when no two could be kept.
    """
    _, groups = np.unique(ids, return_inverse=True)
    while True:
        counts = np.bincount(groups)
        smallest = int(np.argmin(counts))
        if len(counts) < 2 or counts[smallest] >= min_size:
            return groups
        keep = [g for g in range(len(counts)) if g != smallest]
        centres = np.stack([x[groups == g].mean(axis=0) for g in keep])
        moved = groups == smallest
        nearest = np.argmin(((x[moved, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        groups[moved] = np.asarray(keep)[nearest]
        _, groups = np.unique(groups, return_inverse=True)


def _by_size(groups):
    """Renumber groups so that 0 is the largest (ties: the group seen first comes first)."""
    counts = np.bincount(groups)
    first = np.array([np.flatnonzero(groups == g)[0] for g in range(len(counts))])
    order = np.lexsort((first, -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[groups].astype("int64")
