"""Metric-learning losses: the Structured Gaussian Manifold loss and triplet loss.

Each loss is a pure function of `(labels, embeddings)` written in `keras.ops`,
plus a thin registered `keras.losses.Loss` around it.

Labels follow one convention everywhere in `keras_sgm`:

- **hard labels**: integer class ids of any value, shape `[batch]` or
  `[batch, 1]` (0..7, or sub-class ids like 40213). No number of classes is
  needed; the classes are the distinct ids present in the batch. Keras casts
  labels to float32 before a loss sees them, so ids must satisfy
  `|id| < 2**24` to stay distinct.
- **soft labels**: a `[batch, classes]` matrix of non-negative class weights
  (e.g. FER+ vote distributions). Each row is normalised to sum to one.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition,
    section 3.1 (Eq. 1-4).
"""

import keras
import numpy as np
from keras import ops

from keras_sgm import _validation

MAX_EXACT_LABEL = _validation.MAX_EXACT_LABEL
"""Label ids must have a magnitude below this to survive Keras' float32 cast."""


def _check_embeddings(embeddings):
    if len(embeddings.shape) != 2:
        raise ValueError(
            f"Embeddings must have shape [batch, dim]; received shape {tuple(embeddings.shape)}."
        )


def label_structure(labels, embeddings):
    """Describe a batch's classes as columns of Gaussians.

    The result is independent of how many classes exist: for hard labels the
    columns are the batch positions, and column `j` stands for the class of
    sample `j` if `j` is that class's first occurrence (other columns are
    switched off); for soft labels the columns are the label matrix's classes.

    Args:
        labels: hard labels `[batch]` / `[batch, 1]` or soft labels
            `[batch, classes]` (see the module docstring).
        embeddings: float tensor `[batch, dim]`, only used for shape checks.

    Returns:
        A tuple `(weights, targets, present)`: `weights[k, j]` is the weight of
        sample `k` in the mean of column `j`; `targets[i, j]` the label
        posterior of sample `i` for column `j`; `present[j]` whether column `j`
        is a class of this batch. All float tensors of the embeddings' dtype.
    """
    _check_embeddings(embeddings)
    dtype = embeddings.dtype
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == 2 and labels.shape[-1] is None:
        raise ValueError(
            "The last dimension of the labels must be known (1 for class ids, "
            f"C for soft labels); received shape {tuple(labels.shape)}."
        )
    hard = len(labels.shape) == 1 or (len(labels.shape) == 2 and labels.shape[-1] == 1)
    if not hard and len(labels.shape) != 2:
        raise ValueError(
            "Labels must be class ids of shape [batch] or [batch, 1], or soft "
            f"labels of shape [batch, classes]; received shape {tuple(labels.shape)}."
        )
    if labels.shape[0] is not None and embeddings.shape[0] is not None:
        if labels.shape[0] != embeddings.shape[0]:
            raise ValueError(
                f"Labels and embeddings disagree on the batch size: labels have "
                f"shape {tuple(labels.shape)}, embeddings {tuple(embeddings.shape)}."
            )
    if hard:
        ids = ops.reshape(labels, (-1,))
        same = ops.cast(ops.equal(ops.expand_dims(ids, 1), ops.expand_dims(ids, 0)), dtype)
        batch = ops.shape(same)[0]
        earlier = ops.triu(ops.ones((batch, batch), dtype=dtype), k=1)  # [k, j] = k < j
        present = ops.equal(ops.sum(same * earlier, axis=0), 0.0)
        targets = same * ops.cast(present, dtype)[None, :]
        return same, targets, ops.cast(present, dtype)
    soft = ops.cast(labels, dtype)
    row_sums = ops.sum(soft, axis=1, keepdims=True)
    targets = ops.divide_no_nan(soft, row_sums)
    present = ops.cast(ops.greater(ops.sum(targets, axis=0), 0.0), dtype)
    return targets, targets, present


def labels_are_valid(labels, pairs=False):
    """Scalar bool tensor: can these labels be used, as checked inside a traced graph?

    Hard labels must be finite whole numbers below `MAX_EXACT_LABEL` in
    magnitude; soft labels finite, non-negative, with every row summing to
    more than 0. With `pairs=True`, `[batch, 2]` labels are (sub-class,
    class) id pairs, checked as hard labels. (Outside a graph the losses
    raise a `ValueError` instead.)
    """
    labels = ops.cast(ops.convert_to_tensor(labels), "float32")
    finite = ops.all(ops.isfinite(labels))
    safe = ops.where(ops.isfinite(labels), labels, ops.zeros_like(labels))
    pairs = pairs and len(labels.shape) == 2 and labels.shape[-1] == 2
    if len(labels.shape) == 1 or labels.shape[-1] == 1 or pairs:
        whole = ops.all(ops.equal(safe, ops.round(safe)))
        small = ops.all(ops.less(ops.abs(safe), float(MAX_EXACT_LABEL)))
        valid = ops.logical_and(finite, ops.logical_and(whole, small))
        if pairs:  # a sub-class belongs to one class
            same_sub = ops.equal(safe[:, :1], ops.transpose(safe[:, :1]))
            same_class = ops.equal(safe[:, 1:], ops.transpose(safe[:, 1:]))
            consistent = ops.all(ops.logical_or(ops.logical_not(same_sub), same_class))
            valid = ops.logical_and(valid, consistent)
        return valid
    non_negative = ops.all(ops.greater_equal(safe, 0.0))
    rows = ops.all(ops.greater(ops.sum(safe, axis=-1), 0.0))
    return ops.logical_and(finite, ops.logical_and(non_negative, rows))


def class_means(embeddings, weights):
    """Weighted class means `mu_j = sum_k w_kj x_k / sum_k w_kj`, shape `[columns, dim]`."""
    totals = ops.sum(weights, axis=0)[:, None]
    return ops.divide_no_nan(ops.matmul(ops.transpose(weights), embeddings), totals)


def squared_distances(a, b):
    """Squared Euclidean distances `[n, m]` between rows of `a` and rows of `b`.

    Both inputs are shifted by the same point first, so the expansion
    `|a|^2 - 2 a.b + |b|^2` keeps its precision far from the origin.
    """
    origin = ops.stop_gradient(ops.mean(a, axis=0, keepdims=True))
    a = a - origin
    b = b - origin
    sq = (
        ops.sum(ops.square(a), axis=1)[:, None]
        - 2.0 * ops.matmul(a, ops.transpose(b))
        + ops.sum(ops.square(b), axis=1)[None, :]
    )
    return ops.maximum(sq, 0.0)


def gaussian_log_posterior(embeddings, means, sigma, present=None, scale=None):
    """Bayes' rule for isotropic Gaussians with equal priors, in log space.

    `log p(j | x_i) = -|x_i - mu_j|^2 / (2 sigma^2) - logsumexp_j'(...)` over
    the columns `j` where `present` is true (Eq. 1-3 of the paper).

    Args:
        embeddings: `[n, dim]`.
        means: `[columns, dim]`.
        sigma: positive float, the shared standard deviation.
        present: optional `[columns]` mask; absent columns get `-inf`.
        scale: optional `[n, columns]` factors on the squared distances.

    Returns:
        `[n, columns]` log posteriors (finite on present columns).
    """
    distances = squared_distances(embeddings, means)
    if scale is not None:
        distances = distances * scale
    logits = -distances / (2.0 * sigma**2)
    if present is not None:
        mask = ops.greater(present, 0.0)[None, :]
        logits = ops.where(mask, logits, ops.full_like(logits, -np.inf))
    return logits - ops.logsumexp(logits, axis=1, keepdims=True)


def sgm_loss(labels, embeddings, sigma=1.0, leave_one_out=False, classes=None, subclass_weight=0.0):
    """Structured Gaussian Manifold loss, one value per sample.

    Each class present in the batch is a Gaussian `N(mu_c, sigma^2 I)` with
    `mu_c` the (label-weighted) mean of its embeddings; the posterior of every
    sample by Bayes' rule is compared with its label posterior:
    `loss_i = sum_c (p(c | x_i) - t_ic)^2` (Eq. 4). A batch holding one class
    has loss 0 and gradient 0: it carries no information for this loss.

    With `leave_one_out=True`, the mean a sample is compared with leaves that
    sample out (`mu_c^{-i}`; a class's only member keeps its own mean). The
    paper's mean includes the sample, which rewards noise: embeddings that are
    mostly sample-specific noise (dropout, say) land nearer the mean they are
    part of by a factor `(1 - w_i / W_c)^2`, a gap that grows with their scale,
    so the loss can fall with no class signal at all. Leaving the sample out
    removes that reward.

    With `classes` (DGMS), `labels` are sub-class ids and every class is the
    mixture of its sub-classes' Gaussians: the posterior of a class is the sum
    of its sub-classes' posteriors, and it is these class posteriors that are
    compared with the class labels. A class may then keep several modes: its
    sub-classes are not pushed apart from each other, only from other classes.
    `subclass_weight` > 0 adds that many times the plain loss on the sub-class
    labels: sub-classes are then also kept apart, so the class keeps its modes
    instead of collapsing onto one Gaussian.

    Args:
        labels: hard or soft labels (module docstring); hard sub-class ids
            when `classes` is given.
        embeddings: `[batch, dim]` float tensor.
        sigma: positive float, the Gaussians' standard deviation.
        leave_one_out: bool, default False (the paper's Eq. 2-4).
        classes: optional hard class ids `[batch]` of the samples, whose
            sub-class ids `labels` holds (DGMS mixture).
        subclass_weight: float >= 0, default 0; with `classes`, the weight of
            the sub-class term added to the class-mixture term.

    Returns:
        `[batch]` per-sample losses.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [0.1, 0.0], [3.0, 3.0], [3.0, 3.1]], "float32")
        >>> float(sgm_loss(np.array([5, 5, 9, 9]), x).numpy().max()) < 1e-3
        True
    """
    embeddings = ops.cast(embeddings, "float32")
    weights, targets, present = label_structure(labels, embeddings)
    means = class_means(embeddings, weights)
    scale = None
    if leave_one_out:
        # |x_i - mu_c^{-i}| = |x_i - mu_c| * W_c / (W_c - w_ic), exactly.
        totals = ops.sum(weights, axis=0)[None, :]
        rest = totals - weights
        scale = ops.where(ops.greater(rest, 1e-6), ops.square(ops.divide_no_nan(totals, rest)), 1.0)
    log_post = gaussian_log_posterior(embeddings, means, sigma, present, scale)
    posterior = ops.exp(log_post) * present[None, :]
    extra = 0.0
    if classes is not None and subclass_weight:
        extra = subclass_weight * ops.sum(ops.square(posterior - targets), axis=1)
    if classes is not None:
        # Column j of `same_class` is the class of sample j; `class_present` keeps
        # one column per class. posterior @ same_class sums the sub-classes of each.
        same_class, _, class_present = label_structure(classes, embeddings)
        posterior = ops.matmul(posterior, same_class) * class_present[None, :]
        targets = same_class * class_present[None, :]
    return ops.sum(ops.square(posterior - targets), axis=1) + extra


def _same_class_ids(labels, embeddings):
    """Hard class ids `[batch]` from hard or soft labels (soft: the argmax)."""
    labels = ops.convert_to_tensor(labels)
    _check_embeddings(embeddings)
    if len(labels.shape) == 1 or (len(labels.shape) == 2 and labels.shape[-1] == 1):
        return ops.reshape(labels, (-1,))
    if len(labels.shape) == 2:
        return ops.cast(ops.argmax(labels, axis=1), embeddings.dtype)
    raise ValueError(
        "Labels must be class ids of shape [batch] or [batch, 1], or soft "
        f"labels of shape [batch, classes]; received shape {tuple(labels.shape)}."
    )


def _safe_sqrt(x):
    # sqrt has an infinite slope at 0 (a sample against itself): clamp first.
    return ops.sqrt(ops.maximum(x, 1e-12))


def triplet_loss(
    labels,
    embeddings,
    margin=0.2,
    mining="batch_hard",
    squared=False,
    l2_normalize=False,
):
    """Triplet loss with in-batch mining, one value per anchor.

    - `"batch_hard"`: for each anchor, its farthest positive and nearest
      negative: `max(d(a, p*) - d(a, n*) + margin, 0)`.
    - `"semi_hard"` (FaceNet): for every positive pair `(a, p)`, the nearest
      negative farther than `p`; when none is farther, the farthest negative.
      The anchor's value is the mean over its positive pairs.

    Anchors with no positive or no negative in the batch get 0.

    Args:
        labels: hard or soft labels (soft labels use their argmax).
        embeddings: `[batch, dim]`.
        margin: float, the margin between positive and negative distances.
        mining: `"batch_hard"` or `"semi_hard"`.
        squared: use squared Euclidean distances instead of Euclidean.
        l2_normalize: L2-normalise the embeddings first.

    Returns:
        `[batch]` per-anchor losses.

    Note: semi-hard mining builds a `[batch, batch, batch]` tensor.

    Reference: Schroff et al., FaceNet (2015); Hermans et al., In Defense of
    the Triplet Loss (2017).
    """
    if mining not in ("batch_hard", "semi_hard"):
        raise ValueError(f"mining must be 'batch_hard' or 'semi_hard'; received {mining!r}.")
    embeddings = ops.cast(embeddings, "float32")
    ids = _same_class_ids(labels, embeddings)
    if l2_normalize:
        embeddings = ops.normalize(embeddings, axis=1)
    dist = squared_distances(embeddings, embeddings)
    if not squared:
        dist = _safe_sqrt(dist)
    same = ops.equal(ids[:, None], ids[None, :])
    batch = ops.shape(dist)[0]
    not_self = ops.logical_not(ops.eye(batch, dtype="bool"))
    positive = ops.logical_and(same, not_self)
    negative = ops.logical_not(same)
    has_pos = ops.any(positive, axis=1)
    has_neg = ops.any(negative, axis=1)
    valid = ops.cast(ops.logical_and(has_pos, has_neg), "float32")
    inf = ops.full_like(dist, np.inf)
    if mining == "batch_hard":
        hardest_pos = ops.max(ops.where(positive, dist, ops.zeros_like(dist)), axis=1)
        hardest_neg = ops.min(ops.where(negative, dist, inf), axis=1)
        hardest_neg = ops.where(has_neg, hardest_neg, ops.zeros_like(hardest_neg))
        return ops.relu(hardest_pos - hardest_neg + margin) * valid
    # semi-hard: d_ap[a, p] against d_an[a, n], tensor [a, p, n]
    d_ap = dist[:, :, None]
    d_an = dist[:, None, :]
    neg3 = negative[:, None, :]
    farther = ops.logical_and(neg3, ops.greater(d_an, d_ap))
    semi = ops.min(ops.where(farther, d_an, ops.full_like(d_an + d_ap, np.inf)), axis=2)
    farthest_neg = ops.max(ops.where(negative, dist, ops.zeros_like(dist)), axis=1)[:, None]
    chosen = ops.where(ops.any(farther, axis=2), semi, farthest_neg)
    pair_loss = ops.relu(dist - chosen + margin) * ops.cast(positive, "float32")
    n_pos = ops.sum(ops.cast(positive, "float32"), axis=1)
    return ops.divide_no_nan(ops.sum(pair_loss, axis=1), n_pos) * valid


def _check_label_dtype(loss_name, labels):
    """Reject labels that cannot be class ids or class weights, before Keras casts them."""
    dtype = getattr(labels, "dtype", None)
    if dtype is None:
        dtype = np.asarray(labels).dtype
    try:
        name = keras.backend.standardize_dtype(dtype)
    except ValueError:
        name = str(dtype)
    if not name.startswith(("int", "uint", "float", "bfloat")):
        raise ValueError(
            f"{loss_name} expects integer class ids or a float [batch, classes] "
            f"label matrix; received labels of dtype {name}."
        )


def _check_concrete(loss_name, labels, embeddings, pairs=False):
    """Value checks that are only possible outside a traced graph."""
    concrete = [v for v in (labels, embeddings) if isinstance(v, np.ndarray) or _is_eager(v)]
    if len(concrete) != 2:
        return
    labels = np.asarray(labels)
    embeddings = np.asarray(embeddings)
    bad = np.argwhere(~np.isfinite(embeddings.astype("float64")))
    if bad.size:
        row = int(bad[0][0])
        raise ValueError(
            f"{loss_name}: embeddings hold non-finite values ({int(bad.shape[0])} "
            f"entries), first at row {row}: {embeddings[row].tolist()[:8]}."
        )
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        row = int(np.argwhere(~np.isfinite(labels))[0][0])
        raise ValueError(f"{loss_name}: labels hold a non-finite value at row {row}.")
    pairs = pairs and labels.ndim == 2 and labels.shape[1] == 2
    if labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1) or pairs:
        columns = [labels[:, 0], labels[:, 1]] if pairs else [labels]
        names = ["sub-class ids", "class ids"] if pairs else ["class ids"]
        for column, what in zip(columns, names):
            _validation.class_ids(column, f"{loss_name}'s {what}")
        if pairs:
            for sub in np.unique(labels[:, 0]):
                owners = np.unique(labels[labels[:, 0] == sub, 1])
                if len(owners) > 1:
                    raise ValueError(
                        f"{loss_name}: sub-class {sub} appears with classes {owners.tolist()}; "
                        "in (sub-class, class) pairs every sub-class id must belong to one "
                        "class (number sub-classes uniquely across classes)."
                    )
    elif labels.ndim == 2:
        if np.any(labels < 0):
            row = int(np.argwhere(labels < 0)[0][0])
            raise ValueError(f"{loss_name}: soft labels must be >= 0; row {row} is {labels[row]}.")
        empty = np.flatnonzero(labels.sum(axis=1) <= 0)
        if empty.size:
            raise ValueError(
                f"{loss_name}: soft label row {int(empty[0])} sums to 0; every sample "
                "needs some weight on a class."
            )


def _is_eager(value):
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(value, tf.Tensor) and tf.executing_eagerly() and hasattr(value, "numpy")


_number = _validation.number
_flag = _validation.flag


class _MetricLoss(keras.losses.Loss):
    """Shared input checks for the metric-learning losses.

    An empty batch (no rows) has loss 0: there is no pair to pull together or
    push apart. With `reduction=None` it gives the empty per-sample vector.
    """

    label_pairs = False  # whether [batch, 2] labels are (sub-class, class) pairs

    def __call__(self, y_true, y_pred, sample_weight=None):
        _check_label_dtype(self.__class__.__name__, y_true)
        _check_concrete(self.__class__.__name__, y_true, y_pred, pairs=self.label_pairs)
        if y_pred.shape[0] == 0:
            return ops.zeros((0,) if self.reduction in (None, "none") else (), self.dtype)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)


@keras.saving.register_keras_serializable(package="keras_sgm")
class SGMLoss(_MetricLoss):
    """Structured Gaussian Manifold loss (SGMLoss).

    Models each class of the batch as a Gaussian `N(mu_c, sigma^2 I)` centred
    on the mean of its embeddings and penalises the squared error between the
    Bayes posterior of each embedding and its label posterior. Needs no number
    of classes: labels are class ids of any value or a soft label matrix.

    Args:
        sigma: float, default 1.0. Standard deviation shared by the Gaussians;
            it sets the scale of the embedding space.
        leave_one_out: bool, default False. Compare each sample with its
            class mean computed without it (see `sgm_loss`); False is the
            paper's loss.
        mixture: bool, default False. For DGMS: labels of shape `[batch, 2]`
            are (sub-class, class) id pairs, and each class is the mixture of
            its sub-classes' Gaussians (see `sgm_loss`'s `classes`); `[batch]`
            labels are used as usual. Sub-class ids must be unique across
            classes. `ClassBalancedSampler.dataset(with_classes=True)` yields
            such pairs (after `SubclassSplitter` splits). Other losses would
            read `[batch, 2]` pairs as 2-class soft labels: use pairs with
            `mixture=True` only.
        subclass_weight: float >= 0, default 0. With `mixture`, add this many
            times SGMLoss on the sub-class ids beside the class-mixture term,
            so sub-classes stay apart (DGMS `dgms_loss="both"` uses 1).
        reduction: Keras loss reduction, default `"sum_over_batch_size"`.
        name: string, default `"sgm_loss"`.
        dtype: the dtype of the loss computation, default float32 (kept in
            float32 under mixed precision).

    Examples:
        >>> import keras, keras_sgm
        >>> encoder = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)])
        >>> encoder.compile(optimizer="adam", loss=keras_sgm.SGMLoss(sigma=1.0))

    Reference:
        Deep Metric Structured Learning For Facial Expression Recognition, Eq. 4.
    """

    def __init__(
        self,
        sigma=1.0,
        leave_one_out=False,
        mixture=False,
        subclass_weight=0.0,
        reduction="sum_over_batch_size",
        name="sgm_loss",
        dtype=None,
    ):
        sigma = _number(sigma, "SGMLoss sigma")
        subclass_weight = _number(subclass_weight, "SGMLoss subclass_weight", strict=False)
        super().__init__(name=name, reduction=reduction, dtype=dtype or "float32")
        self.sigma = sigma
        self.leave_one_out = _flag(leave_one_out, "SGMLoss leave_one_out")
        self.mixture = _flag(mixture, "SGMLoss mixture")
        self.subclass_weight = subclass_weight

    @property
    def label_pairs(self):
        return self.mixture

    def call(self, y_true, y_pred):
        classes = None
        if self.mixture and len(y_true.shape) == 2 and y_true.shape[-1] == 2:
            y_true, classes = y_true[:, 0], y_true[:, 1]
        return sgm_loss(
            y_true,
            y_pred,
            sigma=self.sigma,
            leave_one_out=self.leave_one_out,
            classes=classes,
            subclass_weight=self.subclass_weight,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sigma": self.sigma,
                "leave_one_out": self.leave_one_out,
                "mixture": self.mixture,
                "subclass_weight": self.subclass_weight,
                "dtype": self.dtype,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_sgm")
class TripletLoss(_MetricLoss):
    """Triplet loss with batch-hard or semi-hard in-batch mining.

    The paper's metric-learning baseline. Same label conventions as `SGMLoss`
    (soft labels use their argmax).

    Args:
        margin: float, default 0.2.
        mining: `"batch_hard"` (default) or `"semi_hard"`.
        squared: bool, default False; use squared Euclidean distances.
        l2_normalize: bool, default False; L2-normalise embeddings first.
        reduction: Keras loss reduction, default `"sum_over_batch_size"`.
        name: string, default `"triplet_loss"`.
        dtype: the dtype of the loss computation, default float32.

    Examples:
        >>> import keras, keras_sgm
        >>> encoder = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)])
        >>> encoder.compile(optimizer="adam", loss=keras_sgm.TripletLoss(mining="semi_hard"))

    Reference: Schroff et al., FaceNet (2015).
    """

    def __init__(
        self,
        margin=0.2,
        mining="batch_hard",
        squared=False,
        l2_normalize=False,
        reduction="sum_over_batch_size",
        name="triplet_loss",
        dtype=None,
    ):
        if mining not in ("batch_hard", "semi_hard"):
            raise ValueError(f"mining must be 'batch_hard' or 'semi_hard'; received {mining!r}.")
        margin = _number(margin, "TripletLoss margin", strict=False)
        super().__init__(name=name, reduction=reduction, dtype=dtype or "float32")
        self.margin = margin
        self.mining = mining
        self.squared = _flag(squared, "TripletLoss squared")
        self.l2_normalize = _flag(l2_normalize, "TripletLoss l2_normalize")

    def call(self, y_true, y_pred):
        return triplet_loss(
            y_true,
            y_pred,
            margin=self.margin,
            mining=self.mining,
            squared=self.squared,
            l2_normalize=self.l2_normalize,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "margin": self.margin,
                "mining": self.mining,
                "squared": self.squared,
                "l2_normalize": self.l2_normalize,
                "dtype": self.dtype,
            }
        )
        return config
