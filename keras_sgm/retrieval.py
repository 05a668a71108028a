"""Nearest-neighbour search over a gallery of embeddings: exact (TensorFlow/XLA) and approximate.

Both indexes share one interface: `index.search(queries, k)` returns
`(distances, indices)`, NumPy arrays of shape `[m, k]` (float32 and int64),
nearest first, and `index.labels[indices]` gives the neighbours' labels when
the index was built with labels. Two metrics:

- `"euclidean"`: Euclidean distances `|q - g|`;
- `"cosine"`: cosine distances `1 - q.g / (|q| |g|)` (a zero vector has
  similarity 0 with everything, as in scikit-learn).

`ExactIndex` is the evaluation workhorse (Recall@K, Acc@K and the kNN
classifier of the paper's protocol); `ApproximateIndex` wraps faiss for
galleries too large for brute force.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition,
    section 4.1 (retrieval with K nearest neighbours).
"""

import contextlib
import math
import sys

import numpy as np

METRICS = ("euclidean", "cosine")

_GROUP = 32
"""Gallery rows per group in the two-stage top-k of `ExactIndex` (see its docstring)."""

_SCORE_BUDGET = 5 * 2**20
"""Scores per batch (20 MiB of float32) when `ExactIndex` picks its batch size: about what stays
in a server CPU's last-level cache. Batches whose score matrix spills out of it ran 2x slower."""

_MIN_BATCH = 64
"""Fewest queries per batch the default takes: with a million gallery rows the cache budget
allows 5, and each batch then streams the whole gallery for a matrix-vector product; 64
queries (256 MiB of scores at 1M rows) share each pass (bench/ann.py times it)."""

_TIE_TOLERANCE = 1e-5
"""Relative score gap to the k-th best within which NumPy's search still takes a row as a
candidate and lets its exact distance decide: BLAS can score two equal rows a few ulps apart."""


def as_matrix(x, name, dim=None):
    """`x` as a C-contiguous float32 `[n, d]` array; ValueError on bad shape or non-finite rows."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape [n, dim]; received shape {x.shape}.")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(
            f"{name} have dimension {x.shape[1]} but the gallery has dimension {dim}; "
            f"received shape {x.shape}."
        )
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} row {row} contains NaN or inf ({int(bad.sum())} non-finite row(s) in all)."
        )
    return x


def _check_metric(metric):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; received {metric!r}.")


def _check_labels(labels, n):
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(
            f"labels must have shape [{n}] (one per gallery row); received shape {labels.shape}."
        )
    return labels


def _check_k(k, n, exclude_self, m=None):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; received {k!r}.")
    if exclude_self:
        if m is not None and m != n:
            raise ValueError(
                "exclude_self=True expects the queries to be the gallery itself (same rows, "
                f"same order); received {m} queries for a gallery of {n}."
            )
        if k > n - 1:
            raise ValueError(
                f"k={k} exceeds n-1={n - 1}: with exclude_self=True a gallery of {n} rows "
                f"has only {n - 1} neighbours per query."
            )
    elif k > n:
        raise ValueError(f"k={k} exceeds the gallery size n={n}.")
    return int(k)


def _tensorflow_loaded():
    """Whether this process has imported TensorFlow (Keras on TensorFlow always has): then
    `ExactIndex` searches with XLA; otherwise in NumPy, without importing it."""
    return sys.modules.get("tensorflow") is not None


_BLAS = None


def _blas_threads(limit):
    """A context that runs NumPy's BLAS on `limit` threads (None: as configured).

    A server's search has a few queries: one thread does it as fast, and BLAS threads
    left spinning after the call slowed the face detection that followed by a third
    (bench/app_latency.py --runtime onnx).
    """
    global _BLAS
    if limit is None:
        return contextlib.nullcontext()
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=limit, user_api="blas")


def _normalize_rows(x):
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class ExactIndex:
    """Exact top-K nearest-neighbour search, batched and compiled with XLA.

    Queries are processed `batch_size` at a time. For each batch one compiled
    function computes the scores of all gallery rows with a single matmul
    (for the Euclidean metric `2 q.g - |g|^2 = |q|^2 - |q - g|^2`, with the
    gallery centred on its mean for precision) and selects the best `k`.
    Above a few thousand rows the selection is two-stage and exact: the
    gallery is cut into groups of 32 consecutive rows, the `k` groups with the
    best maxima are kept (every one of the `k` nearest rows lies in one of
    them), and `tf.math.top_k` runs on those `32 k` candidates only. The
    distances of the `k` winners are then recomputed from the differences
    `q - g` (no cancellation) and sorted ascending; equal distances keep the
    lower gallery index first.

    The compiled function is traced once per index and `(k, exclude_self)`:
    every batch of a search call is padded to the same size (the smaller of
    the batch size and the next power of two above the number of queries), so
    searches with fewer queries compile at most `log2(batch_size) + 2` shapes.
    Memory per batch is about `4 * batch_size * n` bytes for the scores.

    On GPUs, TensorFlow's default TensorFloat-32 matmuls rank in reduced
    precision; `tf.config.experimental.enable_tensor_float_32_execution(False)`
    restores float32 ranking.

    Args:
        gallery: float array `[n, dim]`, converted to float32. Rows must be
            finite.
        labels: optional array `[n]` of gallery labels, kept as `self.labels`
            (a NumPy array) so that `index.labels[indices]` labels the results.
        metric: `"euclidean"` (default) or `"cosine"`.
        batch_size: int or None, the number of queries per compiled call.
            The default None picks `min(1024, 5 * 2**20 // n)`, at least 64:
            a batch's `[batch, n]` score matrix then holds about 20 MiB and
            stays in a CPU's last-level cache (above 82k gallery rows, 64
            queries at a time, `256 n` bytes, beat fewer). On a GPU a larger value can
            be faster.

    Examples:
        >>> import numpy as np
        >>> gallery = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]], "float32")
        >>> index = ExactIndex(gallery, labels=np.array([7, 7, 3]))
        >>> distances, indices = index.search(np.array([[0.9, 0.0]]), k=2)
        >>> print(indices, distances.round(3))
        [[1 0]] [[0.1 0.9]]
        >>> index.labels[indices].tolist()
        [[7, 7]]
        >>> index.search(gallery, k=1, exclude_self=True)[1].ravel().tolist()
        [1, 0, 1]

    Reference: section 4.1 of the paper (K nearest neighbours from the test
    set); Johnson et al., Billion-scale similarity search with GPUs (2017),
    for the matmul formulation of brute-force search.
    """

    def __init__(self, gallery, labels=None, metric="euclidean", batch_size=None):
        _check_metric(metric)
        if batch_size is not None and (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be a positive integer or None; received {batch_size!r}."
            )
        gallery = as_matrix(gallery, "gallery")
        n, dim = gallery.shape
        if n == 0:
            raise ValueError("The gallery is empty; received shape (0, dim).")
        if batch_size is None:
            batch_size = max(_MIN_BATCH, min(1024, _SCORE_BUDGET // n))
        self.gallery = gallery
        self.labels = _check_labels(labels, n)
        self.metric = metric
        self.batch_size = int(batch_size)
        if metric == "euclidean":
            self._origin = gallery.mean(axis=0, keepdims=True)
            rows = gallery - self._origin
            bias = -np.sum(rows * rows, axis=1, keepdims=True)
            keys = np.concatenate([2.0 * rows, bias], axis=1)
        else:
            self._origin = np.zeros((1, dim), np.float32)
            rows = _normalize_rows(gallery)
            keys = np.concatenate([rows, np.zeros((n, 1), np.float32)], axis=1)
        # Pad the gallery to whole groups; padded rows score -inf and are never returned.
        n_pad = -(-n // _GROUP) * _GROUP
        pad_keys = np.zeros((n_pad - n, dim + 1), np.float32)
        pad_keys[:, -1] = -np.inf
        self._keys = np.concatenate([keys, pad_keys]).astype(np.float32)
        self._rows = np.concatenate([rows, np.zeros((n_pad - n, dim), np.float32)])
        self._search_batch = None  # compiled on the first search that uses TensorFlow

    def __len__(self):
        return self.gallery.shape[0]

    @property
    def dim(self):
        """The embedding dimension."""
        return self.gallery.shape[1]

    def _prepare(self, queries):
        queries = queries - self._origin
        if self.metric == "cosine":
            queries = _normalize_rows(queries)
        return queries

    def _batch(self, queries, offset, k, exclude_self):
        """Top-k of one padded batch: `(distances [b, k], indices [b, k] int32)`."""
        import tensorflow as tf

        n = len(self)
        augmented = tf.concat([queries, tf.ones_like(queries[:, :1])], axis=1)
        scores = tf.matmul(augmented, self._keys, transpose_b=True)  # [b, n_pad], higher = nearer
        if exclude_self:
            rows = tf.range(tf.shape(scores)[0])
            cols = tf.minimum(rows + offset, scores.shape[1] - 1)
            scores = tf.tensor_scatter_nd_update(
                scores,
                tf.stack([rows, cols], axis=1),
                tf.fill(tf.shape(rows), tf.constant(-np.inf, scores.dtype)),
            )
        groups = scores.shape[1] // _GROUP
        if 4 * k * _GROUP <= n:
            grouped = tf.reshape(scores, [-1, groups, _GROUP])
            _, best_groups = tf.math.top_k(tf.reduce_max(grouped, axis=2), k)
            best_groups = tf.sort(best_groups, axis=1)  # keep gallery order for tie-breaking
            candidates = tf.gather(grouped, best_groups, batch_dims=1)  # [b, k, group]
            _, flat = tf.math.top_k(tf.reshape(candidates, [-1, k * _GROUP]), k)
            group_of = tf.gather(best_groups, flat // _GROUP, batch_dims=1)
            indices = group_of * _GROUP + flat % _GROUP
        else:
            _, indices = tf.math.top_k(scores, k)
        neighbours = tf.gather(self._rows, indices)  # [b, k, dim]
        if self.metric == "euclidean":
            diff = queries[:, None, :] - neighbours
            distances = tf.sqrt(tf.reduce_sum(tf.square(diff), axis=2))
        else:
            distances = 1.0 - tf.reduce_sum(queries[:, None, :] * neighbours, axis=2)
        # Sort by (distance, index): by index first, then stably by distance.
        by_index = tf.argsort(indices, axis=1)
        indices = tf.gather(indices, by_index, batch_dims=1)
        distances = tf.gather(distances, by_index, batch_dims=1)
        order = tf.argsort(distances, axis=1, stable=True)
        return (
            tf.gather(distances, order, batch_dims=1),
            tf.gather(indices, order, batch_dims=1),
        )

    def search(self, queries, k, exclude_self=False):
        """The `k` nearest gallery rows of each query, nearest first.

        Args:
            queries: float array `[m, dim]`.
            k: int, the number of neighbours, at most the gallery size (at
                most `n - 1` with `exclude_self`).
            exclude_self: bool, default False. For queries that are the
                gallery itself (same rows, same order): query `i` never returns
                gallery row `i`.

        Returns:
            `(distances, indices)`: float32 `[m, k]` and int64 `[m, k]` NumPy
            arrays.
        """
        queries = as_matrix(queries, "queries", dim=self.dim)
        m = queries.shape[0]
        k = _check_k(k, len(self), exclude_self, m=m)
        if m == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        size = min(self.batch_size, 1 << (m - 1).bit_length())
        prepared = self._prepare(queries)
        distances = np.empty((m, k), np.float32)
        indices = np.empty((m, k), np.int64)
        if not _tensorflow_loaded():
            for start in range(0, m, size):
                batch = prepared[start : start + size]
                d, i = self._numpy_batch(batch, start, k, bool(exclude_self))
                distances[start : start + len(batch)], indices[start : start + len(batch)] = d, i
            return distances, indices
        import tensorflow as tf

        if self._search_batch is None:
            self._keys, self._rows = tf.constant(self._keys), tf.constant(self._rows)
            self._search_batch = tf.function(self._batch, jit_compile=True)
        for start in range(0, m, size):
            batch = prepared[start : start + size]
            rows = batch.shape[0]
            if rows < size:
                batch = np.concatenate([batch, np.zeros((size - rows, self.dim), np.float32)])
            d, i = self._search_batch(
                tf.constant(batch), tf.constant(start, tf.int32), k, bool(exclude_self)
            )
            distances[start : start + rows] = d.numpy()[:rows]
            indices[start : start + rows] = i.numpy()[:rows]
        return distances, indices

    def _numpy_batch(self, queries, offset, k, exclude_self):
        """`_batch` in NumPy, for a process that never imported TensorFlow (the app serving
        an ONNX export): the same scores, the same top k (the lower index first among equal
        scores, as `tf.math.top_k`), the same order by (distance, index)."""
        keys, gallery_rows = np.asarray(self._keys), np.asarray(self._rows)
        augmented = np.concatenate([queries, np.ones_like(queries[:, :1])], axis=1)
        with _blas_threads(1 if len(queries) <= 64 else None):
            scores = augmented @ keys.T  # [b, n_pad], higher = nearer
        if exclude_self:
            rows = np.arange(len(queries))
            scores[rows, np.minimum(rows + offset, scores.shape[1] - 1)] = -np.inf
        distances = np.empty((len(queries), k), np.float32)
        indices = np.empty((len(queries), k), np.int64)
        for q, row in enumerate(scores):
            kth = np.partition(row, row.size - k)[row.size - k]
            # Every row tied with the k-th, within the matmul's rounding too: BLAS can score
            # two equal gallery rows a few ulps apart, and the exact distances decide.
            candidates = np.flatnonzero(row >= kth - _TIE_TOLERANCE * (abs(kth) + 1.0))
            if self.metric == "euclidean":
                d = np.sqrt(np.sum(np.square(queries[q] - gallery_rows[candidates]), axis=1))
            else:
                # elementwise, then summed per row (not a matrix product, whose rounding can
                # differ between equal rows): equal rows get equal distances, as in `_batch`
                d = 1.0 - np.sum(gallery_rows[candidates] * queries[q], axis=1)
            order = np.lexsort((candidates, d))[:k]
            distances[q], indices[q] = d[order], candidates[order]
        return distances, indices


class ApproximateIndex:
    """Approximate top-K nearest-neighbour search with a faiss IVF-Flat index.

    The gallery is split into `nlist` k-means cells; a query scans the `nprobe`
    nearest cells exhaustively. Recall grows with `nprobe` (`nprobe = nlist`
    is exact). Needs `faiss` (`pip install faiss-cpu`).

    Args:
        gallery: float array `[n, dim]`, converted to float32. Rows must be
            finite.
        labels: optional array `[n]` of gallery labels, kept as `self.labels`.
        metric: `"euclidean"` (default) or `"cosine"`.
        nlist: int or None, the number of cells; default
            `min(4 sqrt(n), n / 39)` (faiss wants 39 training points per cell),
            at least 1.
        nprobe: int, default 16, the cells scanned per query (at most `nlist`).
            Recall depends on the data: clustered embeddings need fewer cells
            than uniform noise (16 of 32 cells gave recall@10 0.98 on Gaussian
            noise in 16 dimensions, 16 of 128 only 0.83).
        seed: int, default 0, the seed of the k-means training.

    Examples:
        >>> import numpy as np, pytest
        >>> _ = pytest.importorskip("faiss")
        >>> gallery = np.random.default_rng(0).normal(size=(2000, 8)).astype("float32")
        >>> index = ApproximateIndex(gallery, nlist=16, nprobe=16)  # nprobe = nlist: exact
        >>> index.search(gallery[:2], k=1)[1].ravel().tolist()
        [0, 1]

    Reference: Jegou et al., Product quantization for nearest neighbor search
    (2011), for the inverted file; Johnson et al., Billion-scale similarity
    search with GPUs (2017).
    """

    def __init__(self, gallery, labels=None, metric="euclidean", nlist=None, nprobe=16, seed=0):
        try:
            import faiss
        except ImportError as error:
            raise ImportError(
                "ApproximateIndex needs faiss: `pip install faiss-cpu` (or faiss-gpu)."
            ) from error
        _check_metric(metric)
        gallery = as_matrix(gallery, "gallery")
        n, dim = gallery.shape
        if n == 0:
            raise ValueError("The gallery is empty; received shape (0, dim).")
        if nlist is None:
            nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        if not 1 <= nlist <= n:
            raise ValueError(f"nlist must lie in [1, n={n}]; received {nlist}.")
        if nprobe < 1:
            raise ValueError(f"nprobe must be a positive integer; received {nprobe}.")
        self.gallery = gallery
        self.labels = _check_labels(labels, n)
        self.metric = metric
        self.nlist = int(nlist)
        if metric == "euclidean":
            quantizer = faiss.IndexFlatL2(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, faiss.METRIC_L2)
            data = gallery
        else:
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            data = np.ascontiguousarray(_normalize_rows(gallery))
        index.cp.seed = int(seed)
        index.train(data)
        index.add(data)
        self._quantizer = quantizer  # the IVF index does not own it
        self._index = index
        self.nprobe = nprobe

    @property
    def nprobe(self):
        """The cells scanned per query; set it to trade speed for recall (capped at `nlist`)."""
        return int(self._index.nprobe)

    @nprobe.setter
    def nprobe(self, value):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"nprobe must be a positive integer; received {value!r}.")
        self._index.nprobe = int(min(value, self.nlist))

    def __len__(self):
        return self.gallery.shape[0]

    @property
    def dim(self):
        """The embedding dimension."""
        return self.gallery.shape[1]

    def search(self, queries, k, exclude_self=False):
        """The (approximately) `k` nearest gallery rows of each query, nearest first.

        Args:
            queries: float array `[m, dim]`.
            k: int, the number of neighbours (at most `n`, or `n - 1` with
                `exclude_self`).
            exclude_self: bool, default False; as in `ExactIndex.search`.

        Returns:
            `(distances, indices)`: float32 `[m, k]` and int64 `[m, k]` NumPy
            arrays. When the scanned cells hold fewer than `k` rows the missing
            entries are index -1 with distance inf.
        """
        queries = as_matrix(queries, "queries", dim=self.dim)
        m = queries.shape[0]
        k = _check_k(k, len(self), exclude_self, m=m)
        if self.metric == "cosine":
            queries = np.ascontiguousarray(_normalize_rows(queries))
        wanted = k + 1 if exclude_self else k
        scores, indices = self._index.search(queries, wanted)
        if self.metric == "euclidean":
            distances = np.sqrt(np.maximum(scores, 0.0))
        else:
            distances = 1.0 - scores
        distances = np.where(indices < 0, np.inf, distances).astype(np.float32)
        if exclude_self:
            # Drop the query itself where found, else the last (farthest) result.
            is_self = indices == np.arange(m)[:, None]
            drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), wanted - 1)
            keep = np.arange(wanted)[None, :] != drop[:, None]
            distances = distances[keep].reshape(m, k)
            indices = indices[keep].reshape(m, k)
        return distances, indices.astype(np.int64)


BACKENDS = {"exact": ExactIndex, "faiss": ApproximateIndex}


def build_index(gallery, labels=None, backend="exact", **kwargs):
    """Build a nearest-neighbour index over `gallery`.

    Args:
        gallery: float array `[n, dim]`.
        labels: optional array `[n]` of gallery labels.
        backend: `"exact"` (default, `ExactIndex`) or `"faiss"`
            (`ApproximateIndex`).
        **kwargs: passed to the index class (`metric`, `batch_size`, `nlist`,
            `nprobe`, ...).

    Returns:
        An `ExactIndex` or `ApproximateIndex`.

    Examples:
        >>> import numpy as np
        >>> index = build_index(np.eye(3, dtype="float32"), labels=[0, 1, 2], metric="cosine")
        >>> index.labels[index.search(np.array([[0.0, 2.0, 0.1]]), k=1)[1]].tolist()
        [[1]]
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {tuple(BACKENDS)}; received {backend!r}.")
    return BACKENDS[backend](gallery, labels=labels, **kwargs)
