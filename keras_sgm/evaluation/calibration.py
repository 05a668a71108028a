"""Whether probabilities can be trusted: calibration error, likelihood, Brier score, and AUROC.

Every function takes class probabilities `[n, classes]` (rows summing to 1)
and the true class of each row, as an index into the columns, or as a class
id when `classes` names the columns. A model is calibrated when, among the
answers it gives with confidence p, a share p is right:

- **ECE** (expected calibration error, Guo et al. 2017): the answers binned by
  their confidence (the largest probability) into 15 equal-width bins; the
  mean over bins, weighted by their share of answers, of |accuracy -
  confidence|. 0 is perfect.
- **NLL**: the mean negative log of the probability given to the true class
  (clipped at 1e-12, so one confident mistake costs 27.6, not infinity).
- **Brier score**: the mean over rows of the squared distance between the
  probability row and the one-hot truth (0 perfect, 2 worst).

`auroc` scores a detector of unknown inputs: the probability that a known
input scores higher than an unknown one (1 perfect, 0.5 chance).

Reference:
    C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, On Calibration of Modern
    Neural Networks (ICML 2017); G. W. Brier, Verification of forecasts
    expressed in terms of probability (1950).
"""

import numpy as np

from keras_sgm import _validation

BINS = 15
"""Equal-width confidence bins of the ECE and the reliability diagram."""

_EPS = 1e-12


def _checked(probabilities, labels, classes=None):
    """`(probabilities [n, C] float64, column of each row's true class [n])`, checked."""
    probabilities = np.asarray(probabilities, "float64")
    if probabilities.ndim != 2 or probabilities.shape[0] == 0:
        raise ValueError(
            f"probabilities must have shape [n, classes] with n >= 1; received shape "
            f"{probabilities.shape}."
        )
    if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
        row = int(np.argwhere(~np.isfinite(probabilities) | (probabilities < 0))[0][0])
        raise ValueError(f"probabilities must be finite and >= 0; row {row} is not.")
    sums = probabilities.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
    if bad.size:
        raise ValueError(
            f"every row of probabilities must sum to 1; row {int(bad[0])} sums to "
            f"{sums[bad[0]]:.4f}."
        )
    n, width = probabilities.shape
    labels = _validation.class_ids(labels, "labels", n=n, other="probabilities")
    if classes is None:
        columns = labels
        unknown = np.flatnonzero((labels < 0) | (labels >= width))
    else:
        classes = np.asarray(classes)
        if classes.shape != (width,):
            raise ValueError(
                f"classes names {classes.shape[0] if classes.ndim else 0} columns but "
                f"probabilities have {width}."
            )
        lookup = {int(c): j for j, c in enumerate(classes)}
        columns = np.array([lookup.get(int(c), -1) for c in labels], "int64")
        unknown = np.flatnonzero(columns < 0)
    if unknown.size:
        raise ValueError(
            f"labels hold class {labels[unknown[0]]} (row {int(unknown[0])}), which no column "
            "of probabilities stands for."
        )
    return probabilities, columns


def reliability(probabilities, labels, classes=None, bins=BINS):
    """The reliability diagram's data: per confidence bin, its mean confidence, accuracy, count.

    Returns:
        A dict of lists, one entry per bin (empty bins included, their
        confidence and accuracy None): `edges` (`bins + 1` floats), `confidence`,
        `accuracy`, `count`.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a whole number >= 1; received {bins!r}.")
    probabilities, columns = _checked(probabilities, labels, classes)
    confidence = probabilities.max(axis=1)
    right = np.argmax(probabilities, axis=1) == columns
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    # bin i holds confidences in (edges[i], edges[i+1]]; a confidence of 0 cannot occur
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    result = {"edges": edges.tolist(), "confidence": [], "accuracy": [], "count": []}
    for b in range(int(bins)):
        inside = which == b
        count = int(inside.sum())
        result["count"].append(count)
        result["confidence"].append(float(confidence[inside].mean()) if count else None)
        result["accuracy"].append(float(right[inside].mean()) if count else None)
    return result


def expected_calibration_error(probabilities, labels, classes=None, bins=BINS):
    """ECE: the answers' |accuracy - confidence| per confidence bin, weighted by the bin's share.

    Examples:
        >>> import numpy as np
        >>> p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
        >>> round(expected_calibration_error(p, [0, 1, 0, 1]), 3)  # 0.9 right half the time
        0.4
    """
    curve = reliability(probabilities, labels, classes, bins)
    n = sum(curve["count"])
    return float(
        sum(
            c / n * abs(a - p)
            for c, a, p in zip(curve["count"], curve["accuracy"], curve["confidence"])
            if c
        )
    )


def negative_log_likelihood(probabilities, labels, classes=None):
    """The mean of -log(probability of the true class), the probability clipped at 1e-12."""
    probabilities, columns = _checked(probabilities, labels, classes)
    chosen = probabilities[np.arange(len(columns)), columns]
    return float(-np.mean(np.log(np.clip(chosen, _EPS, 1.0))))


def brier_score(probabilities, labels, classes=None):
    """The mean squared distance between each probability row and its one-hot truth."""
    probabilities, columns = _checked(probabilities, labels, classes)
    truth = np.zeros_like(probabilities)
    truth[np.arange(len(columns)), columns] = 1.0
    return float(np.mean(np.sum((probabilities - truth) ** 2, axis=1)))


def calibration_scores(probabilities, labels, classes=None, bins=BINS):
    """`{"accuracy", "ece", "nll", "brier", "reliability"}` of one set of probabilities."""
    probabilities, columns = _checked(probabilities, labels, classes)
    indices = np.arange(probabilities.shape[1])
    return {
        "accuracy": float(np.mean(np.argmax(probabilities, axis=1) == columns)),
        "ece": expected_calibration_error(probabilities, columns, indices, bins),
        "nll": negative_log_likelihood(probabilities, columns, indices),
        "brier": brier_score(probabilities, columns, indices),
        "reliability": reliability(probabilities, columns, indices, bins),
    }


def vote_share(neighbor_labels, classes):
    """kNN probabilities: the share of each query's K neighbours in each class, `[m, C]`.

    Args:
        neighbor_labels: `[m, K]` labels of each query's neighbours.
        classes: the `C` class ids of the columns; a neighbour of another
            class is an error.

    Examples:
        >>> vote_share([[0, 0, 1], [1, 1, 1]], classes=[0, 1]).tolist()
        [[0.6666666666666666, 0.3333333333333333], [0.0, 1.0]]
    """
    neighbor_labels = np.asarray(neighbor_labels)
    if neighbor_labels.ndim != 2 or neighbor_labels.shape[1] == 0:
        raise ValueError(
            f"neighbor_labels must have shape [m, K] with K >= 1; received {neighbor_labels.shape}."
        )
    classes = np.asarray(classes)
    lookup = {c.item() if hasattr(c, "item") else c: j for j, c in enumerate(classes)}
    shares = np.zeros((neighbor_labels.shape[0], len(classes)))
    for i, row in enumerate(neighbor_labels):
        for label in row:
            key = label.item() if hasattr(label, "item") else label
            if key not in lookup:
                raise ValueError(f"neighbour label {key!r} is not one of the classes {classes}.")
            shares[i, lookup[key]] += 1.0
    return shares / neighbor_labels.shape[1]


def auroc(known_scores, unknown_scores):
    """The area under the ROC curve of a score meant to be higher for known inputs.

    The probability that a known input scores higher than an unknown one
    (ties count one half): 1 separates them perfectly, 0.5 is chance.

    Examples:
        >>> auroc([3.0, 2.0, 1.5], [1.0, 2.0])  # 6 pairs: 4 won, 1 tied, 1 lost
        0.75
    """
    known = np.asarray(known_scores, "float64").reshape(-1)
    unknown = np.asarray(unknown_scores, "float64").reshape(-1)
    for name, values in (("known_scores", known), ("unknown_scores", unknown)):
        if values.size == 0:
            raise ValueError(f"{name} is empty; AUROC needs inputs of both kinds.")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} holds non-finite values.")
    from sklearn.metrics import roc_auc_score

    truth = np.concatenate([np.ones(known.size), np.zeros(unknown.size)])
    return float(roc_auc_score(truth, np.concatenate([known, unknown])))
