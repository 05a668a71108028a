"""`GaussianHead`: the paper's Bayes classifier over class Gaussians, as a Keras layer.

SGMLoss shapes an embedding space in which every class is a Gaussian
`N(mu, sigma^2 I)`. After training, the head holds one Gaussian per label of a
labelled set (a class, or a DGMS sub-class), each with the class it belongs to,
and classifies an embedding by Bayes' rule with equal priors (Eq. 2 of the
paper): the posterior of Gaussian `g` is `softmax_g(-|e - mu_g|^2 / (2 sigma^2))`,
and a class's posterior is the sum of its Gaussians'.

The layer owns everything the classifier needs, and it is saved with it:

- the Gaussians: `gaussian_means` `[G, dim]`, `gaussian_ids` `[G]` (the label each
  was fitted on) and `gaussian_classes` `[G]` (the class each belongs to);
- `class_names`, the training `sigma`, the calibrated `posterior_sigma` (a
  test-time temperature) and the reject threshold `reject_below`.

`call(embeddings)` returns `(posteriors [n, classes], known_score [n])` in
`keras.ops`: the graph `keras_sgm.export` writes after the encoder. The NumPy-facing
methods (`gaussian_posterior`, `posterior`, `known_score`, `predict_classes`) run the
same ops. The estimator side sits beside them: `fit` (one Gaussian per label),
`calibrate` (the posterior's sigma) and `fit_reject_threshold`.

The Gaussians are state, not weights: their number changes when DGMS splits a class,
so they are NumPy arrays, written by `save_own_variables` and read back by
`load_own_variables`.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition.
"""

import keras
import numpy as np
from keras import ops

from keras_sgm import _validation
from keras_sgm.losses import gaussian_log_posterior, squared_distances

UNKNOWN = -1
"""The class `predict_classes(..., reject=...)` answers for an input it rejects as unknown."""

STATE_KEYS = ("gaussian_means", "gaussian_ids", "gaussian_classes")
"""The arrays a `GaussianHead` saves: its Gaussians."""


@keras.saving.register_keras_serializable(package="keras_sgm")
class GaussianHead(keras.layers.Layer):
    """Class posteriors and the known score of embeddings, by Bayes' rule over Gaussians.

    Args:
        sigma: positive float, default 1.0. The shared standard deviation the
            embedding was trained with (`SGMLoss(sigma)`).
        class_names: optional list of strings; `class_names[i]` names class id `i`.
        posterior_sigma: optional positive float, default None (`sigma`). The sigma
            the posteriors and known scores use, fitted on held-out data by
            `calibrate`.
        reject_below: optional float, default None. Embeddings whose `known_score`
            is below it are "unknown" to `predict_classes(..., reject=True)`; chosen
            on held-out data by `fit_reject_threshold`.
        **kwargs: passed to `keras.layers.Layer` (e.g. `name`).

    Call arguments:
        embeddings: `[n, dim]` tensor.

    Returns (from `call`):
        `(posteriors [n, classes], known_score [n])`: columns of the posteriors
        follow `classes_`.

    Examples:
        >>> import numpy as np
        >>> from keras_sgm.gaussian_head import GaussianHead
        >>> head = GaussianHead(sigma=0.5, class_names=["neutral", "happiness"])
        >>> head = head.fit(np.array([[0.0, 0.0], [0.2, 0.0], [3.0, 0.0], [3.2, 0.0]]),
        ...                 [0, 0, 1, 1])
        >>> head.gaussian_means.tolist()
        [[0.10000000149011612, 0.0], [3.0999999046325684, 0.0]]
        >>> head.predict_classes(np.array([[0.4, 0.1], [2.5, -0.2]])).tolist()
        [0, 1]
    """

    def __init__(
        self, sigma=1.0, class_names=None, posterior_sigma=None, reject_below=None, **kwargs
    ):
        # float32 whatever the global policy: distances of embeddings far from the
        # origin, and posteriors near 0 and 1, lose too much in float16
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.sigma = _validation.number(sigma, "sigma")
        self.class_names = class_names
        self.posterior_sigma = posterior_sigma
        self.reject_below = reject_below
        self._set_state(np.zeros((0, 0), "float32"), np.zeros((0,), "int64"), np.zeros(0, "int64"))
        self.built = True  # no weights: the Gaussians are state (see the module)

    # ------------------------------------------------------------------ settings
    @property
    def class_names(self):
        """Optional list of strings naming the class ids."""
        return self._class_names

    @class_names.setter
    def class_names(self, names):
        self._class_names = None if names is None else [str(n) for n in names]

    @property
    def posterior_sigma(self):
        """The calibrated sigma (`calibrate`), or None: the posteriors then use `sigma`."""
        return self._posterior_sigma

    @posterior_sigma.setter
    def posterior_sigma(self, value):
        self._posterior_sigma = (
            None if value is None else _validation.number(value, "posterior_sigma")
        )

    @property
    def reject_below(self):
        """The known score below which `predict_classes(reject=True)` answers `UNKNOWN`."""
        return self._reject_below

    @reject_below.setter
    def reject_below(self, value):
        if value is not None:
            value = _validation.number(value, "reject_below", -np.inf, strict=True)
        self._reject_below = value

    @property
    def scoring_sigma(self):
        """The sigma the posteriors and known scores use: `posterior_sigma` or `sigma`."""
        return self._posterior_sigma or self.sigma

    def class_name(self, class_id):
        """The name of class id `class_id`, or the id itself where none is known."""
        names = self._class_names or []
        return names[class_id] if 0 <= class_id < len(names) else class_id

    # ----------------------------------------------------------------- Gaussians
    @property
    def gaussian_means(self):
        """`[G, dim]` float32 means."""
        return self._means

    @property
    def gaussian_ids(self):
        """`[G]` label id of each Gaussian (a class or a DGMS sub-class id)."""
        return self._ids

    @property
    def gaussian_classes(self):
        """`[G]` class id of each Gaussian."""
        return self._classes

    @property
    def classes_(self):
        """Sorted class ids: the columns of the posteriors."""
        return np.unique(self._classes)

    @property
    def membership(self):
        """`[G, classes]` float32: 1 where Gaussian `g` belongs to column `c` of `classes_`."""
        return (self._classes[:, None] == self.classes_[None, :]).astype("float32")

    def _set_state(self, means, ids, classes):
        means = np.asarray(means, "float32")
        ids = np.asarray(ids, "int64").reshape(-1)
        classes = np.asarray(classes, "int64").reshape(-1)
        if means.ndim != 2 or means.shape[0] != ids.shape[0] or ids.shape != classes.shape:
            raise ValueError(
                "Gaussian state must be means [G, dim], ids [G] and classes [G]; received "
                f"shapes {means.shape}, {ids.shape}, {classes.shape}."
            )
        if means.size and not np.all(np.isfinite(means)):
            row = int(np.argwhere(~np.isfinite(means))[0][0])
            raise ValueError(f"Gaussian mean {row} (id {ids[row]}) is not finite.")
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"Gaussian ids must be distinct; received {ids.tolist()}.")
        self._means, self._ids, self._classes = means, ids, classes

    def set_gaussians(self, means, ids, classes=None):
        """Set the Gaussians directly (e.g. sub-class means found by DGMS).

        Args:
            means: `[G, dim]` array of means.
            ids: `[G]` integer label id of each Gaussian.
            classes: optional `[G]` class of each Gaussian; defaults to `ids`.

        Clears `posterior_sigma` and `reject_below`: they were fitted to other
        Gaussians (`calibrate` and `fit_reject_threshold` fit them again).

        Returns:
            The head, for chaining.
        """
        self._set_state(means, ids, ids if classes is None else classes)
        self._posterior_sigma = self._reject_below = None
        return self

    def fit(self, embeddings, labels, class_map=None):
        """One Gaussian per label: the mean of that label's embeddings.

        Args:
            embeddings: `[n, dim]` embeddings of a labelled set (the training set).
            labels: `[n]` integer label ids (classes, or DGMS sub-classes).
            class_map: optional dict label id -> class id (DGMS sub-classes);
                defaults to the identity.

        Returns:
            The head, for chaining (`set_gaussians` was called).

        Raises:
            ValueError: counts that differ, labels that are not class ids, or
                embeddings that are not finite (names the first such row).
        """
        embeddings = np.asarray(embeddings, "float32")
        labels = np.asarray(labels).reshape(-1)
        if embeddings.ndim != 2 or labels.shape[0] != embeddings.shape[0]:
            raise ValueError(
                f"fit_gaussians: {embeddings.shape[0]} inputs but {labels.shape[0]} labels."
            )
        labels = _validation.class_ids(labels, "fit_gaussians' labels")
        bad = np.flatnonzero(~np.all(np.isfinite(embeddings), axis=1))
        if bad.size:
            raise ValueError(
                f"fit_gaussians: the embeddings of {bad.size} inputs are not finite "
                f"(first: input {int(bad[0])}); check those inputs."
            )
        ids, index = np.unique(labels, return_inverse=True)
        sums = ops.segment_sum(ops.convert_to_tensor(embeddings), index, num_segments=len(ids))
        counts = np.bincount(index, minlength=len(ids)).astype("float32")[:, None]
        means = ops.convert_to_numpy(sums) / counts
        classes = ids if class_map is None else _map_classes(ids, class_map)
        return self.set_gaussians(means, ids, classes)

    def _require_gaussians(self, means=None):
        if len(self._means if means is None else means) == 0:
            raise ValueError(
                "This model has no Gaussians yet: call model.fit_gaussians(x_train, y_train) "
                "after training (or head.fit(embeddings, labels))."
            )

    # ---------------------------------------------------------------- the maths
    def _gaussian_posterior(self, embeddings, means):
        """Eq. 2 in `keras.ops`: `[n, G]` posteriors over the Gaussians `means`."""
        posterior = ops.exp(gaussian_log_posterior(embeddings, means, self.scoring_sigma))
        # exp of a float32 log-softmax of large squared distances sums to 1 only within
        # ~1e-6; dividing by the sum makes every row a distribution to float32 rounding.
        return posterior / ops.sum(posterior, axis=1, keepdims=True)

    def _known_score(self, embeddings, means):
        nearest = ops.min(squared_distances(embeddings, means), axis=1)
        return -nearest / (2.0 * self.scoring_sigma**2)

    def call(self, embeddings):
        self._require_gaussians()
        embeddings = ops.cast(embeddings, "float32")
        means = ops.convert_to_tensor(self._means)
        membership = ops.convert_to_tensor(self.membership)
        posteriors = ops.matmul(self._gaussian_posterior(embeddings, means), membership)
        return posteriors, self._known_score(embeddings, means)

    def compute_output_spec(self, embeddings):
        n = embeddings.shape[0]
        classes = len(self.classes_) or None
        return (
            keras.KerasTensor((n, classes), "float32"),
            keras.KerasTensor((n,), "float32"),
        )

    def gaussian_posterior(self, embeddings, gaussians=None):
        """Posteriors over the Gaussians themselves (classes or DGMS sub-classes).

        Args:
            embeddings: `[n, dim]` embeddings.
            gaussians: optional indices into the Gaussians: the posterior among
                those alone (e.g. the sub-classes of one class).

        Returns:
            `[n, G]` float32 NumPy array whose rows sum to 1; columns follow
            `gaussian_ids` (or `gaussian_ids[gaussians]`).
        """
        means = self._means if gaussians is None else self._means[gaussians]
        self._require_gaussians(means)
        embeddings = ops.convert_to_tensor(np.asarray(embeddings, "float32"))
        return ops.convert_to_numpy(
            self._gaussian_posterior(embeddings, ops.convert_to_tensor(means))
        )

    def posterior(self, embeddings):
        """Class posteriors `[n, classes]` (NumPy), the first output of `call`; columns
        follow `classes_`."""
        posteriors, _ = self(_tensor(embeddings))
        return ops.convert_to_numpy(posteriors)

    def known_score(self, embeddings):
        """How much each embedding looks like a known class, `[n]` (NumPy): the largest
        log-likelihood of its Gaussians, `-min_g |e - mu_g|^2 / (2 sigma^2)` without the
        constant.

        Far from every mean means "none of the known classes"; the ranking, and so any
        AUROC, does not depend on sigma.
        """
        self._require_gaussians()
        embeddings = ops.convert_to_tensor(np.asarray(embeddings, "float32"))
        return ops.convert_to_numpy(
            self._known_score(embeddings, ops.convert_to_tensor(self._means))
        )

    def predict_classes(self, embeddings, reject=False):
        """The most probable class id of each embedding, `[n]`.

        Args:
            embeddings: `[n, dim]` embeddings.
            reject: False (default) answers a class for every input; True answers
                `UNKNOWN` (-1) where the `known_score` is below `reject_below` (set
                by `fit_reject_threshold`); a float is that threshold.
        """
        answers = self.classes_[np.argmax(self.posterior(embeddings), axis=1)]
        if reject is False or reject is None:
            return answers
        if UNKNOWN in self.classes_:
            raise ValueError(
                f"The model has a class {UNKNOWN}, the id reject= answers for unknown inputs; "
                "renumber the classes to use reject."
            )
        if reject is True:
            if self._reject_below is None:
                raise ValueError(
                    "reject=True needs a threshold: call model.fit_reject_threshold(x_val) "
                    "first, or pass reject=THRESHOLD."
                )
            threshold = self._reject_below
        else:
            threshold = _validation.number(reject, "reject", -np.inf)
        return np.where(self.known_score(embeddings) < threshold, UNKNOWN, answers)

    # ---------------------------------------------------- calibration, open set
    def calibrate(self, embeddings, labels):
        """Fit `posterior_sigma` (a temperature) on held-out embeddings, minimising the NLL.

        The training `sigma` is untouched. A `reject_below` already set is rescaled
        so that it keeps the same inputs (the known score scales as `1 / sigma^2`).

        Args:
            embeddings: `[n, dim]` embeddings of held-out inputs (a validation
                split, never the test split).
            labels: their class ids `[n]`; every class needs at least 2 examples.

        Returns:
            A dict: `sigma` (the fitted one), `nll_before`, `nll_after`.

        Raises:
            ValueError: classes missing from `labels`, a class with a single
                example, or labels the head has no Gaussian of.
        """
        from scipy.optimize import minimize_scalar  # scipy only where calibration runs

        embeddings = np.asarray(embeddings, "float32")
        labels = _validation.class_ids(labels, "calibrate's y_val", n=len(embeddings))
        columns = self._check_held_out(labels, "calibrate")
        self._require_gaussians()
        distances = ops.convert_to_numpy(
            squared_distances(ops.convert_to_tensor(embeddings), ops.convert_to_tensor(self._means))
        ).astype("float64")
        own = self.membership.astype(bool)[:, columns].T  # [n, G]: each row's class

        def nll(log_sigma):
            logits = -distances / (2.0 * np.exp(2.0 * log_sigma))
            logits -= logits.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(logits).sum(axis=1))
            mine = np.log(np.where(own, np.exp(logits), 0.0).sum(axis=1) + 1e-300)
            # clipped as keras_sgm.evaluation.calibration.negative_log_likelihood clips
            return float(np.mean(-np.maximum(mine - log_norm, np.log(1e-12))))

        old = self.scoring_sigma
        start = np.log(old)
        found = minimize_scalar(
            nll, bounds=(start - np.log(100.0), start + np.log(100.0)), method="bounded"
        )
        before = nll(start)
        self.posterior_sigma = float(np.exp(found.x if found.fun < before else start))
        if self._reject_below is not None:
            self._reject_below *= (old / self._posterior_sigma) ** 2
        return {
            "sigma": self._posterior_sigma,
            "nll_before": before,
            "nll_after": float(min(before, found.fun)),
        }

    def _check_held_out(self, labels, what):
        """The `classes_` column of each label; every class at least twice, none unknown."""
        classes = self.classes_
        unknown = sorted(set(labels.tolist()) - set(classes.tolist()))
        if unknown:
            raise ValueError(
                f"{what}: y_val holds classes the model has no Gaussian of: {unknown}."
            )
        counts = {int(c): int(np.sum(labels == c)) for c in classes}
        missing = [self.class_name(c) for c, n in counts.items() if n == 0]
        if missing:
            raise ValueError(
                f"{what} needs held-out examples of every class; y_val has none of {missing}."
            )
        single = [self.class_name(c) for c, n in counts.items() if n == 1]
        if single:
            raise ValueError(
                f"{what} needs at least 2 held-out examples of every class; {single} have only one."
            )
        return np.searchsorted(classes, labels)

    def fit_reject_threshold(self, embeddings, accept=0.95, threshold=None):
        """Choose `reject_below` on held-out embeddings of the known classes.

        Args:
            embeddings: `[n, dim]` held-out embeddings of the known classes.
            accept: float in (0, 1], default 0.95; the share of them whose
                `known_score` reaches the threshold (kept, not rejected).
            threshold: optional float, a threshold to check and keep instead.

        Returns:
            The threshold, also stored as `reject_below`.

        Raises:
            ValueError: `accept` outside (0, 1], or a `threshold` that would reject
                every held-out input (the message gives their scores).
        """
        scores = self.known_score(embeddings) if len(embeddings) else np.zeros(0)
        if scores.size == 0:
            raise ValueError("fit_reject_threshold needs at least one held-out input.")
        if threshold is None:
            accept = _validation.number(accept, "accept")
            if accept > 1.0:
                raise ValueError(f"accept is a share of inputs in (0, 1]; received {accept}.")
            threshold = float(np.quantile(scores, 1.0 - accept, method="lower"))
        threshold = _validation.number(threshold, "threshold", -np.inf)
        if not np.any(scores >= threshold):
            raise ValueError(
                f"threshold {threshold:.4g} would reject all {scores.size} held-out inputs: "
                f"their known scores lie in [{scores.min():.4g}, {scores.max():.4g}]. Choose a "
                f"threshold at most {scores.max():.4g}, or pass accept=0.95."
            )
        self.reject_below = threshold
        return threshold

    # ------------------------------------------------------------ serialization
    def get_config(self):
        return {
            **super().get_config(),
            "sigma": self.sigma,
            "class_names": self._class_names,
            "posterior_sigma": self._posterior_sigma,
            "reject_below": self._reject_below,
        }

    def save_own_variables(self, store):
        store["gaussian_means"] = self._means
        store["gaussian_ids"] = self._ids
        store["gaussian_classes"] = self._classes

    def load_own_variables(self, store):
        keys = list(store.keys())
        # a file written before the head was a layer of its own keeps the Gaussians
        # in its SGMModel's entry (SGMModel.load_own_variables reads them there): an
        # empty entry here leaves them as they are
        if all(k in keys for k in STATE_KEYS):
            self._set_state(*(np.asarray(store[k]) for k in STATE_KEYS))


def _map_classes(ids, class_map):
    missing = [int(i) for i in ids if int(i) not in class_map]
    if missing:
        raise ValueError(f"class_map has no original class for label ids {missing[:10]}.")
    return np.array([class_map[int(i)] for i in ids], "int64")


def _tensor(embeddings):
    return ops.convert_to_tensor(np.asarray(embeddings, "float32"))
