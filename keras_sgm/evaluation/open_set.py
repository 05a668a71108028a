"""Inputs that are none of the known classes, and how well a score tells them apart (AUROC).

A model that must say "none of the known expressions" is scored on inputs of
known classes against inputs of these kinds (`unknown_inputs`):

- `noise`: uniform noise in [0, 1];
- `flat`: images of one gray level (black to white);
- `held_out_class`: test images of a class the model never trained on (the
  run's `holdout_classes`);
- `other_dataset`: images of another dataset at the model's input size.

For each kind, `open_set_aurocs` gives the AUROC of every score, higher
meaning "known": the Gaussians' `known_score` (the largest class
log-likelihood), the Bayes posterior's largest probability, and where there
is one the softmax CNN's largest probability (the usual baseline, Hendrycks
and Gimpel 2017).

Reference:
    D. Hendrycks and K. Gimpel, A Baseline for Detecting Misclassified and
    Out-of-Distribution Examples in Neural Networks (ICLR 2017).
"""

import numpy as np

from keras_sgm.evaluation.calibration import auroc

KINDS = ("held_out_class", "noise", "flat", "other_dataset")


def unknown_inputs(shape, n=200, seed=0):
    """`{"noise": [n, *shape], "flat": [n, *shape]}` float32 images in [0, 1].

    Args:
        shape: an image's shape, e.g. `(32, 32, 1)`.
        n: int, default 200; images of each kind.
        seed: int, default 0.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    noise = rng.uniform(0.0, 1.0, size=(n, *shape)).astype("float32")
    levels = np.linspace(0.0, 1.0, n, dtype="float32").reshape(-1, *([1] * len(shape)))
    flat = np.broadcast_to(levels, (n, *shape)).astype("float32")
    return {"noise": noise, "flat": flat}


def open_set_aurocs(known, unknown):
    """The AUROC of every score for every kind of unknown input.

    Args:
        known: `{score name: [n] scores of the known test inputs}`.
        unknown: `{kind: {score name: [m] scores of those inputs}}`.

    Returns:
        `{kind: {score name: AUROC}}` for the scores present in both.

    Examples:
        >>> open_set_aurocs({"gaussian": [3.0, 2.0]}, {"noise": {"gaussian": [1.0, 2.5]}})
        {'noise': {'gaussian': 0.75}}
    """
    return {
        kind: {name: auroc(known[name], values) for name, values in scores.items() if name in known}
        for kind, scores in unknown.items()
    }
