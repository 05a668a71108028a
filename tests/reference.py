"""Plain NumPy implementations of the paper's equations, written loop by loop, for tests."""

import numpy as np


def logsumexp(a):
    m = np.max(a)
    return m + np.log(np.sum(np.exp(a - m)))


def sgm_loss(labels, embeddings, sigma=1.0, leave_one_out=False):
    """Eq. 1-4 per sample, in float64, classes taken from the batch.

    `leave_one_out`: sample i's own-class means are recomputed without it.
    """
    x = np.asarray(embeddings, "float64")
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        targets = labels / labels.sum(axis=1, keepdims=True)
    else:
        ids = labels.reshape(-1)
        classes = np.unique(ids)
        targets = (ids[:, None] == classes[None, :]).astype("float64")
    present = [c for c in range(targets.shape[1]) if targets[:, c].sum() > 0]
    means = [targets[:, c] @ x / targets[:, c].sum() for c in present]
    losses = []
    for i in range(len(x)):
        row_means = list(means)
        if leave_one_out:
            for k, c in enumerate(present):
                w = targets[:, c].copy()
                if w[i] > 0 and w.sum() - w[i] > 1e-9:
                    w[i] = 0.0
                    row_means[k] = w @ x / w.sum()
        logits = np.array([-np.sum((x[i] - mu) ** 2) / (2 * sigma**2) for mu in row_means])
        posterior = np.exp(logits - logsumexp(logits))
        losses.append(sum((posterior[k] - targets[i, c]) ** 2 for k, c in enumerate(present)))
    return np.array(losses)


def sgm_mixture_loss(subclasses, classes, embeddings, sigma=1.0):
    """DGMS mixture: sub-class Gaussians, class posterior = sum over the class's sub-classes."""
    x = np.asarray(embeddings, "float64")
    subclasses, classes = np.asarray(subclasses), np.asarray(classes)
    subs = np.unique(subclasses)
    means = [x[subclasses == s].mean(axis=0) for s in subs]
    class_of = [classes[subclasses == s][0] for s in subs]
    losses = []
    for i in range(len(x)):
        logits = np.array([-np.sum((x[i] - mu) ** 2) / (2 * sigma**2) for mu in means])
        posterior = np.exp(logits - logsumexp(logits))
        loss = 0.0
        for c in np.unique(classes):
            p_class = sum(p for p, owner in zip(posterior, class_of) if owner == c)
            loss += (p_class - float(classes[i] == c)) ** 2
        losses.append(loss)
    return np.array(losses)


def triplet_loss(labels, embeddings, margin=0.2, mining="batch_hard", squared=False):
    x = np.asarray(embeddings, "float64")
    ids = np.asarray(labels).reshape(-1)
    n = len(x)
    d = np.array([[np.sum((x[i] - x[j]) ** 2) for j in range(n)] for i in range(n)])
    if not squared:
        d = np.sqrt(d)
    out = np.zeros(n)
    for a in range(n):
        pos = [p for p in range(n) if p != a and ids[p] == ids[a]]
        neg = [m for m in range(n) if ids[m] != ids[a]]
        if not pos or not neg:
            continue
        if mining == "batch_hard":
            out[a] = max(max(d[a, pos]) - min(d[a, neg]) + margin, 0.0)
        else:
            values = []
            for p in pos:
                farther = [d[a, m] for m in neg if d[a, m] > d[a, p]]
                dn = min(farther) if farther else max(d[a, neg])
                values.append(max(d[a, p] - dn + margin, 0.0))
            out[a] = np.mean(values)
    return out


def centroid_accuracy(labels, embeddings):
    x = np.asarray(embeddings, "float64")
    ids = np.asarray(labels).reshape(-1)
    classes = np.unique(ids)
    means = np.stack([x[ids == c].mean(axis=0) for c in classes])
    nearest = classes[np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)]
    return (nearest == ids).astype("float64")


def class_posterior(embeddings, means, gaussian_classes, sigma=1.0):
    """Eq. 2 with equal priors, loop by loop in float64: `[n, classes]` posteriors, a
    class's column the sum over its Gaussians, columns in sorted class order."""
    classes = sorted(set(int(c) for c in gaussian_classes))
    rows = []
    for e in np.asarray(embeddings, "float64"):
        logits = np.array([-np.sum((e - mu) ** 2) / (2 * sigma**2) for mu in means])
        gaussian = np.exp(logits - logsumexp(logits))
        rows.append([sum(p for p, g in zip(gaussian, gaussian_classes) if g == c) for c in classes])
    return np.array(rows)
