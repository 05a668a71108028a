"""Groups of similar embeddings, their medoids and Top-k members (the paper's clustering analysis).

All embedded vectors are clustered with EM into Gaussian groups (40 in the
paper); for each group the medoid is the member closest to the group mean,
and the group's Top-k are the k members nearest to the medoid. With class
labels, groups are found within each class, which shows the sub-categories of
one expression (the paper's Figure 8: happiness close to surprise, babies,
people with glasses, ...).

Every function is pure and works on NumPy arrays: embeddings `[n, dim]`, and
indices into their rows.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition,
    section 4.2.3 (Clustering) and Figures 8 and 9.
"""

import dataclasses
import logging
import warnings

import numpy as np

from keras_sgm.retrieval import as_matrix

logger = logging.getLogger("keras_sgm.dgms")

METHODS = ("em", "kmeans")
"""Clustering methods of `find_groups`: EM (a Gaussian mixture) or k-means."""

COVARIANCE_TYPES = ("spherical", "diag", "tied", "full")
"""Covariance types of the EM mixture (scikit-learn's names)."""

_KMEANS_INITS = 10
"""k-means restarts; the best also initialises EM's means."""


@dataclasses.dataclass(frozen=True, eq=False)
class Group:
    """One group of embeddings, described by indices into the embeddings' rows.

    Attributes:
        members: int64 array `[size]`, the members ordered by distance to the
            medoid (ties by index), medoid first. Read-only.
        medoid: int, the member closest to the group mean.
        top_k: int64 array, the `min(k, size)` members nearest to the medoid,
            medoid first: `members[:k]`. Read-only.
        mean: float32 array `[dim]`, the group mean. Read-only.
        label: the class the group was found in, or None for groups found
            over all embeddings.

    Groups compare by identity (`eq=False`): their fields are arrays.

    Examples:
        >>> import numpy as np
        >>> group = _make_group(np.array([[0.0], [1.0], [5.0]]), np.array([2, 0, 1]), top_k=2)
        >>> group.medoid, group.members.tolist(), group.top_k.tolist(), group.size
        (1, [1, 0, 2], [1, 0], 3)
    """

    members: np.ndarray
    medoid: int
    top_k: np.ndarray
    mean: np.ndarray
    label: object = None

    @property
    def size(self):
        """The number of members."""
        return int(self.members.shape[0])


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; received {value!r}.")
    return int(value)


def _check_members(members, n):
    members = np.asarray(members)
    if members.ndim != 1 or members.size == 0:
        raise ValueError(f"members must be a non-empty 1-D array; received shape {members.shape}.")
    if not np.issubdtype(members.dtype, np.integer):
        raise ValueError(f"members must be integer indices; received dtype {members.dtype}.")
    outside = (members < 0) | (members >= n)
    if outside.any():
        raise ValueError(
            f"members must index the {n} embeddings; received {int(members[outside][0])}."
        )
    if np.unique(members).size != members.size:
        raise ValueError("members contains repeated indices; each index may appear once.")
    return members.astype(np.int64)


def _sq_distances(points, centre):
    """Squared Euclidean distances of `points [m, d]` to `centre [d]`, in float64."""
    diff = np.asarray(points, np.float64) - np.asarray(centre, np.float64)
    return np.einsum("ij,ij->i", diff, diff)


def _medoid(embeddings, members):
    distances = _sq_distances(embeddings[members], embeddings[members].astype(np.float64).mean(0))
    closest = members[distances == distances.min()]
    return int(closest.min())  # exact ties (duplicate points): the smallest index


def _by_distance_to(embeddings, members, medoid):
    """`members` sorted by distance to `medoid` (ties by index), medoid first."""
    distances = _sq_distances(embeddings[members], embeddings[medoid])
    distances[members == medoid] = -1.0
    return members[np.lexsort((members, distances))]


def medoid_index(embeddings, members):
    """The member closest to the mean of the members (the paper's medoid).

    Args:
        embeddings: float array `[n, dim]`, finite.
        members: non-empty int array of distinct row indices into `embeddings`.

    Returns:
        int, the row index of the medoid. Exact ties (duplicate embeddings)
        go to the smallest index.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [2.1, 0.0], [9.0, 9.0]])
        >>> medoid_index(x, [0, 1, 2])  # the mean (1.03, 0) is closest to row 1
        1

    Reference:
        Deep Metric Structured Learning For Facial Expression Recognition,
        section 4.2.3: "The medoid is the object in the group closest to the
        centroid".
    """
    embeddings = as_matrix(embeddings, "embeddings")
    members = _check_members(members, embeddings.shape[0])
    return _medoid(embeddings, members)


def top_k_members(embeddings, members, medoid, k):
    """The `k` members nearest to the medoid, medoid first (the paper's Top-k).

    Args:
        embeddings: float array `[n, dim]`, finite.
        members: non-empty int array of distinct row indices into `embeddings`.
        medoid: int, one of `members`.
        k: positive int. A group smaller than `k` gives all its members.

    Returns:
        int64 array `[min(k, len(members))]` of row indices: the medoid, then
        the other members by increasing distance to it (ties by index).

    Examples:
        >>> import numpy as np
        >>> x = np.array([[0.0], [3.0], [1.0], [-2.5]])
        >>> top_k_members(x, [0, 1, 2, 3], medoid=0, k=3).tolist()
        [0, 2, 3]

    Reference:
        Deep Metric Structured Learning For Facial Expression Recognition,
        section 4.2.3: "The Top-k of a group contains the k-objects nearer to
        the medoid of the group".
    """
    embeddings = as_matrix(embeddings, "embeddings")
    members = _check_members(members, embeddings.shape[0])
    k = _positive_int(k, "k")
    if isinstance(medoid, bool) or not isinstance(medoid, (int, np.integer)):
        raise ValueError(f"medoid must be an integer index; received {medoid!r}.")
    if not (members == medoid).any():
        raise ValueError(f"medoid {medoid} is not one of the members.")
    return _by_distance_to(embeddings, members, int(medoid))[:k]


def _frozen(array):
    array = np.array(array)
    array.setflags(write=False)
    return array


def _make_group(embeddings, members, top_k, label=None):
    medoid = _medoid(embeddings, members)
    ordered = _frozen(_by_distance_to(embeddings, members, medoid))
    mean = embeddings[members].astype(np.float64).mean(axis=0)
    return Group(
        members=ordered,
        medoid=medoid,
        top_k=_frozen(ordered[:top_k]),
        mean=_frozen(mean.astype(np.float32)),
        label=label,
    )


def _where(label):
    return "" if label is None else f" in class {label!r}"


def cluster_ids(x, n_groups, method="em", seed=0, covariance_type="spherical", label=None):
    """Cluster ids `[m]` of the rows of `x` by k-means or EM; may use fewer than `n_groups` ids.

    EM fits a Gaussian mixture whose means start from the best of 10 k-means
    runs; scikit-learn's convergence warnings are logged, not raised.

    Args:
        x: float array `[m, dim]`.
        n_groups: positive int.
        method: `"em"` (default) or `"kmeans"`.
        seed: int, default 0.
        covariance_type: EM's covariances, default `"spherical"`.
        label: optional class the rows belong to, named in messages.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    if n_groups == 1:
        return np.zeros(x.shape[0], np.int64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        kmeans = KMeans(n_clusters=n_groups, n_init=_KMEANS_INITS, random_state=seed).fit(x)
        if method == "kmeans":
            ids = kmeans.labels_
        else:
            mixture = GaussianMixture(
                n_components=n_groups,
                covariance_type=covariance_type,
                means_init=kmeans.cluster_centers_,
                random_state=seed,
            )
            try:
                ids = mixture.fit(x).predict(x)
            except ValueError as error:
                raise ValueError(
                    f"EM with {n_groups} {covariance_type!r} components failed{_where(label)}: "
                    f"{error} Try covariance_type='spherical' or fewer groups."
                ) from error
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            logger.info("%s%s: %s", method, _where(label), warning.message)
        else:  # not ours to swallow
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return np.asarray(ids, np.int64)


def _groups_of(embeddings, rows, n_groups, method, top_k, seed, covariance_type, label):
    ids = cluster_ids(embeddings[rows], n_groups, method, seed, covariance_type, label)
    found = np.unique(ids)
    if found.size < n_groups:
        logger.warning(
            "%s%s: %d of %d groups came out empty and were dropped (%d groups kept).",
            method,
            _where(label),
            n_groups - found.size,
            n_groups,
            found.size,
        )
    groups = [_make_group(embeddings, rows[ids == i], top_k, label) for i in found]
    return sorted(groups, key=lambda g: (-g.size, g.medoid))


def find_groups(
    embeddings,
    n_groups=40,
    method="em",
    labels=None,
    top_k=16,
    seed=0,
    covariance_type="spherical",
):
    """Cluster embeddings into groups and describe each by its medoid and Top-k.

    `method="em"` fits a Gaussian mixture by EM (scikit-learn's
    `GaussianMixture`, its means initialised by the best of 10 k-means runs)
    and assigns each embedding to its most probable component; spherical
    covariances match the isotropic Gaussians of SGM. `method="kmeans"` uses
    the k-means clusters themselves. Components that no embedding is
    assigned to (e.g. with duplicate embeddings) are dropped, logging how many
    on the `keras_sgm.dgms` logger.

    Args:
        embeddings: float array `[n, dim]`, finite.
        n_groups: positive int, default 40 (the paper's): the number of groups
            overall, or per class when `labels` are given.
        method: `"em"` (default) or `"kmeans"`.
        labels: optional class labels `[n]` (any type). With them, groups are
            found within each class and carry its label; a class with fewer
            than `n_groups` embeddings gets one group per embedding at most
            (logged as a warning). Without them, `n_groups` may not exceed `n`.
        top_k: positive int, default 16 (the paper's Figure 8): the length of
            each group's `top_k` (shorter for smaller groups).
        seed: int, default 0, the random state of k-means and EM.
        covariance_type: one of `"spherical"` (default), `"diag"`, `"tied"`,
            `"full"`: the EM components' covariances. Unused by k-means.

    Returns:
        A list of `Group`, ordered by class (sorted labels) when `labels` are
        given, then by decreasing size (ties by medoid index). Every
        embedding belongs to exactly one group.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = np.concatenate([rng.normal(0, 0.1, (6, 2)), rng.normal(5, 0.1, (4, 2))])
        >>> groups = find_groups(x, n_groups=2, top_k=3)
        >>> [(g.size, g.top_k.size, g.label) for g in groups]
        [(6, 3, None), (4, 3, None)]
        >>> sorted(groups[1].members.tolist())
        [6, 7, 8, 9]
        >>> groups = find_groups(x, n_groups=2, labels=["a", "b"] * 5)  # per class: blob by blob
        >>> [(g.label, sorted(g.members.tolist())) for g in groups]
        [('a', [0, 2, 4]), ('a', [6, 8]), ('b', [1, 3, 5]), ('b', [7, 9])]

    Reference:
        Deep Metric Structured Learning For Facial Expression Recognition,
        section 4.2.3: "EM method is applied creating 40 groups. For each
        group, the medoid is calculated."
    """
    embeddings = as_matrix(embeddings, "embeddings")
    n = embeddings.shape[0]
    n_groups = _positive_int(n_groups, "n_groups")
    top_k = _positive_int(top_k, "top_k")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; received {method!r}.")
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}; received {covariance_type!r}."
        )
    if n == 0:
        raise ValueError("embeddings is empty; expected at least one row.")
    options = dict(method=method, top_k=top_k, seed=seed, covariance_type=covariance_type)
    if labels is None:
        if n_groups > n:
            raise ValueError(
                f"n_groups={n_groups} exceeds the number of embeddings n={n}; pass n_groups <= {n}."
            )
        return _groups_of(embeddings, np.arange(n), n_groups, label=None, **options)

    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(
            f"labels must have shape [{n}] (one per embedding); received shape {labels.shape}."
        )
    groups = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        label = label.item() if isinstance(label, np.generic) else label
        count = min(n_groups, rows.size)
        if count < n_groups:
            logger.warning(
                "class %r has %d embedding(s): %d group(s) instead of n_groups=%d.",
                label,
                rows.size,
                count,
                n_groups,
            )
        groups += _groups_of(embeddings, rows, count, label=label, **options)
    return groups


def groups_of_labels(embeddings, labels, top_k=16, class_of=None):
    """One `Group` per label (e.g. per DGMS sub-class), with its medoid and Top-k.

    Args:
        embeddings: float array `[n, dim]`, finite.
        labels: int array `[n]`, the group of each embedding.
        top_k: positive int, default 16.
        class_of: optional mapping label -> class; each group's `label` is
            then its class (so a figure names the class), else the label.

    Returns:
        A list of `Group`, one per distinct label in sorted order.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[0.0], [0.2], [0.3], [5.0], [5.1]])
        >>> groups = groups_of_labels(x, [1, 1, 1, 4, 4], top_k=2, class_of={1: 0, 4: 0})
        >>> [(g.label, g.medoid, g.top_k.tolist()) for g in groups]
        [(0, 1, [1, 2]), (0, 3, [3, 4])]
    """
    embeddings = as_matrix(embeddings, "embeddings")
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but embeddings has {embeddings.shape[0]} rows."
        )
    top_k = _positive_int(top_k, "top_k")
    groups = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        label = int(value) if class_of is None else class_of[int(value)]
        groups.append(_make_group(embeddings, members, top_k, label=label))
    return groups
