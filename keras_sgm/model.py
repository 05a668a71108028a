"""SGMModel: an encoder trained with a metric-learning loss, plus a Gaussian (Bayes) classifier."""

import warnings

import keras
import numpy as np
from keras import ops

from keras_sgm import _backend, _validation
from keras_sgm.losses import SGMLoss, gaussian_log_posterior, squared_distances
from keras_sgm.metrics import CentroidAccuracy
from keras_sgm.steps import DistributedFit, Steps

_GAUSSIAN_KEYS = ("gaussian_means", "gaussian_ids", "gaussian_classes")

UNKNOWN = -1
"""The class `predict_classes(..., reject=...)` answers for an input it rejects as unknown."""


@keras.saving.register_keras_serializable(package="keras_sgm")
class SGMModel(Steps, keras.Model):
    """An embedding model trained with `SGMLoss` that can also classify.

    Wraps an encoder (any Keras model mapping images to `[batch, dim]`
    embeddings). `fit` trains the encoder with the compiled loss (by default
    `SGMLoss(sigma)`), reporting `loss` and the batch `centroid_accuracy`.
    After training, `fit_gaussians` stores the class means of the training set
    as state saved with the model, so that `predict_proba` classifies by
    Bayes' rule; `predict` returns embeddings.

    Each Gaussian has an id (the label it was fitted on: a class, or a
    sub-class after DGMS splitting) and the original class it belongs to;
    `predict_proba` sums the posteriors of a class's Gaussians.

    Args:
        encoder: a built `keras.Model` whose output is `[batch, dim]`.
        sigma: float, default 1.0. Standard deviation of the Gaussians, used
            by the default loss and by `predict_proba`.
        cross_replica: bool, default False. Under a `tf.distribute` strategy,
            all-gather embeddings and labels so the loss estimates the
            Gaussians from the global batch instead of each replica's slice.
        class_names: optional list of strings; `class_names[i]` names class
            id `i` (ids are 0..n-1 for named datasets), used in reports.
        posterior_sigma: optional float, default None (`sigma`). The sigma
            `predict_proba` uses: a test-time temperature fitted on held-out
            data by `calibrate`; training never uses it.
        reject_below: optional float, default None. Inputs whose
            `known_score` is below it are "unknown" to `predict_classes(...,
            reject=True)`; chosen on held-out data by `fit_reject_threshold`.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Examples:
        >>> import keras, numpy as np, keras_sgm
        >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> model = keras_sgm.SGMModel(encoder)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> x = np.random.rand(32, 4).astype("float32"); y = np.arange(32) % 2
        >>> _ = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        >>> model.fit_gaussians(x, y).predict_proba(x).shape
        (32, 2)

    Reference:
        Deep Metric Structured Learning For Facial Expression Recognition.
    """

    def __init__(
        self,
        encoder,
        sigma=1.0,
        cross_replica=False,
        class_names=None,
        posterior_sigma=None,
        reject_below=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        sigma = float(sigma)
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a positive finite number; received {sigma}.")
        if posterior_sigma is not None:
            posterior_sigma = _validation.number(posterior_sigma, "posterior_sigma")
        if reject_below is not None:
            reject_below = _validation.number(reject_below, "reject_below", -np.inf, strict=True)
        self.posterior_sigma = posterior_sigma
        self.reject_below = reject_below
        if not isinstance(encoder, keras.Model):
            raise ValueError(f"encoder must be a keras.Model; received {type(encoder).__name__}.")
        self.encoder = encoder
        self.sigma = sigma
        self.cross_replica = bool(cross_replica)
        self.class_names = list(class_names) if class_names is not None else None
        self.centroid_accuracy_tracker = CentroidAccuracy(name="centroid_accuracy")
        self._set_gaussian_state(
            np.zeros((0, 0), "float32"), np.zeros((0,), "int64"), np.zeros((0,), "int64")
        )
        if encoder.built:
            self.build(encoder.input_shape)

    # ----------------------------------------------------------------- training
    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.encoder(inputs, training=training)

    def compile(self, optimizer="adam", loss=None, **kwargs):
        """Compile; `loss` defaults to `SGMLoss(sigma=self.sigma)`."""
        if loss is None:
            loss = SGMLoss(sigma=self.sigma)
        elif isinstance(loss, SGMLoss) and loss.sigma != self.sigma:
            warnings.warn(
                f"SGMLoss(sigma={loss.sigma}) differs from SGMModel(sigma={self.sigma}); "
                "predict_proba uses the model's sigma.",
                stacklevel=2,
            )
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def get_compile_config(self):
        """Keras' compile config, with an optimizer any backend can load (`_portable_optimizer`)."""
        config = super().get_compile_config()
        return _portable_optimizer(config) if config else config

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(_portable_optimizer(config))
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate`, reporting `loss` and `centroid_accuracy`."""
        _backend.require_training_backend("SGMModel.evaluate")
        return super().evaluate(*args, **kwargs)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, **kw):
        """`keras.Model.fit`, which also stops with a `ValueError` on a non-finite batch.

        Runs on TensorFlow, JAX and PyTorch (`keras_sgm.steps`); `x` may be
        arrays or a `tf.data.Dataset` (such as `ClassBalancedSampler.dataset()`)
        on every backend.
        """
        _backend.require_training_backend("SGMModel.fit")
        if _backend.is_tf_dataset(x):
            kw.setdefault("shuffle", False)  # a dataset orders itself; spare Keras' warning
        callbacks = list(callbacks or [])
        if not any(isinstance(c, StopOnNonFinite) for c in callbacks):
            callbacks.append(StopOnNonFinite())
        return super().fit(
            x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks, **kw
        )

    @property
    def embedding_dim(self):
        """The number of dimensions the encoder embeds in."""
        return int(self.encoder.output_shape[-1])

    def local_copy(self):
        """An undistributed twin of this (distributed) model, with its weights and Gaussians.

        Its `predict` runs on this process alone, with no collective ops, so every
        worker of a multi-worker run may use it, or only the chief.
        """
        twin = type(self).from_config(self.get_config())
        twin.set_weights(self.get_weights())
        twin.set_gaussians(self.gaussian_means, self.gaussian_ids, self.gaussian_classes)
        twin.posterior_sigma, twin.reject_below = self.posterior_sigma, self.reject_below
        return twin

    # ------------------------------------------------------ Gaussian classifier
    @property
    def gaussian_means(self):
        """`[gaussians, dim]` float32 means fitted by `fit_gaussians`."""
        return self._gaussian_means

    @property
    def gaussian_ids(self):
        """`[gaussians]` label id of each Gaussian (class or sub-class id)."""
        return self._gaussian_ids

    @property
    def gaussian_classes(self):
        """`[gaussians]` original class id of each Gaussian."""
        return self._gaussian_classes

    @property
    def classes_(self):
        """Sorted original class ids: the columns of `predict_proba`."""
        return np.unique(self._gaussian_classes)

    def _set_gaussian_state(self, means, ids, classes):
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
        self._gaussian_means, self._gaussian_ids, self._gaussian_classes = means, ids, classes

    def set_gaussians(self, means, ids, classes=None):
        """Set the Gaussians directly (e.g. sub-class means found by DGMS).

        Args:
            means: `[G, dim]` array of means.
            ids: `[G]` integer label id of each Gaussian.
            classes: optional `[G]` original class of each Gaussian; defaults
                to `ids`.

        Clears `posterior_sigma` and `reject_below`: they were fitted to other Gaussians
        (`calibrate` and `fit_reject_threshold` fit them again).

        Returns:
            The model, for chaining.
        """
        self._set_gaussian_state(means, ids, ids if classes is None else classes)
        # a sigma and a threshold fitted to other Gaussians no longer hold
        self.posterior_sigma = self.reject_below = None
        return self

    def fit_gaussians(self, x, y=None, batch_size=256, class_map=None, verbose=0):
        """Estimate one Gaussian per label from the embeddings of a data set.

        Args:
            x: inputs (array), or a `tf.data.Dataset` of `(inputs, labels)`.
            y: integer labels `[n]` when `x` is an array.
            batch_size: int, default 256; batch size for embedding `x`.
            class_map: optional dict label id -> original class id (DGMS
                sub-classes); defaults to the identity.
            verbose: passed to `predict`.

        Returns:
            The model, for chaining.
        """
        embeddings, labels = self._embed_with_labels(x, y, batch_size, verbose)
        ids, index = np.unique(labels, return_inverse=True)
        sums = ops.segment_sum(ops.convert_to_tensor(embeddings), index, num_segments=len(ids))
        counts = np.bincount(index, minlength=len(ids)).astype("float32")[:, None]
        means = ops.convert_to_numpy(sums) / counts
        classes = ids if class_map is None else _map_classes(ids, class_map)
        return self.set_gaussians(means, ids, classes)

    def _embed_with_labels(self, x, y, batch_size, verbose):
        if y is None:
            if not _backend.is_tf_dataset(x):
                raise ValueError("fit_gaussians needs labels: pass y, or a dataset of (x, y).")
            parts = [(self.predict_on_batch(bx), by) for bx, by in x.as_numpy_iterator()]
            if not parts:
                raise ValueError("fit_gaussians received an empty dataset.")
            embeddings = np.concatenate([np.asarray(p[0]) for p in parts])
            labels = np.concatenate([np.asarray(p[1]).reshape(-1) for p in parts])
        else:
            labels = np.asarray(y).reshape(-1)
            embeddings = self.predict(x, batch_size=batch_size, verbose=verbose)
        if labels.shape[0] != embeddings.shape[0]:
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
        return embeddings, labels

    def predict_proba(self, x, batch_size=256, verbose=0):
        """Class posteriors by Bayes' rule over the fitted Gaussians.

        Args:
            x: inputs, as for `predict`.
            batch_size: int, default 256.
            verbose: passed to `predict`.

        Returns:
            `[n, classes]` numpy array; columns follow `classes_`.
        """
        if len(self._gaussian_ids) == 0:
            raise ValueError(
                "This SGMModel has no Gaussians yet: call "
                "model.fit_gaussians(x_train, y_train) after training."
            )
        embeddings = self.predict(x, batch_size=batch_size, verbose=verbose)
        return self.posterior_from_embeddings(embeddings)

    def gaussian_posterior_from_embeddings(self, embeddings, gaussians=None):
        """Posteriors over the Gaussians themselves (classes or DGMS sub-classes), `[n, G]`.

        Args:
            embeddings: `[n, dim]` embeddings already computed.
            gaussians: optional indices into the fitted Gaussians: the
                posterior among those alone (e.g. the sub-classes of one class).

        Returns:
            `[n, G]` float32 numpy array whose rows sum to 1; columns follow
            `gaussian_ids` (or `gaussian_ids[gaussians]`).
        """
        means = self._gaussian_means if gaussians is None else self._gaussian_means[gaussians]
        if len(means) == 0:
            raise ValueError(
                "This SGMModel has no Gaussians yet: call "
                "model.fit_gaussians(x_train, y_train) after training."
            )
        log_post = gaussian_log_posterior(
            ops.convert_to_tensor(np.asarray(embeddings, "float32")),
            ops.convert_to_tensor(means),
            self.posterior_sigma or self.sigma,
        )
        # exp of a float32 log-softmax of large squared distances sums to 1 only within ~1e-6;
        # dividing by the sum makes every row a distribution to float32 rounding.
        posterior = ops.exp(log_post)
        return ops.convert_to_numpy(posterior / ops.sum(posterior, axis=1, keepdims=True))

    def posterior_from_embeddings(self, embeddings):
        """`predict_proba` for embeddings already computed, `[n, classes]`."""
        membership = (self._gaussian_classes[:, None] == self.classes_[None, :]).astype("float32")
        return self.gaussian_posterior_from_embeddings(embeddings) @ membership

    def predict_classes(self, x, batch_size=256, verbose=0, reject=False):
        """The most probable original class id of each input, `[n]`.

        Args:
            x, batch_size, verbose: as for `predict_proba`.
            reject: False (default) answers a class for every input; True
                answers `UNKNOWN` (-1) for inputs whose `known_score` is below
                `reject_below` (set by `fit_reject_threshold`); a float is
                that threshold.
        """
        embeddings = self.predict(x, batch_size=batch_size, verbose=verbose)
        answers = self.classes_[np.argmax(self.posterior_from_embeddings(embeddings), axis=1)]
        if reject is False or reject is None:
            return answers
        if UNKNOWN in self.classes_:
            raise ValueError(
                f"The model has a class {UNKNOWN}, the id reject= answers for unknown inputs; "
                "renumber the classes to use reject."
            )
        if reject is True:
            if self.reject_below is None:
                raise ValueError(
                    "reject=True needs a threshold: call model.fit_reject_threshold(x_val) "
                    "first, or pass reject=THRESHOLD."
                )
            threshold = self.reject_below
        else:
            threshold = _validation.number(reject, "reject", -np.inf)
        return np.where(self.known_score_from_embeddings(embeddings) < threshold, UNKNOWN, answers)

    # ------------------------------------------------- calibration, open set
    def _squared_distances(self, embeddings):
        if len(self._gaussian_means) == 0:
            raise ValueError(
                "This SGMModel has no Gaussians yet: call "
                "model.fit_gaussians(x_train, y_train) after training."
            )
        embeddings = ops.convert_to_tensor(np.asarray(embeddings, "float32"))
        return ops.convert_to_numpy(
            squared_distances(embeddings, ops.convert_to_tensor(self._gaussian_means))
        ).astype("float64")

    def known_score_from_embeddings(self, embeddings):
        """How much each embedding looks like a known class, `[n]`: the largest log-likelihood
        of its Gaussians, `-min_g ||e - mu_g||^2 / (2 sigma^2)` (without the constant).

        Far from every mean means "none of the known classes"; the ranking, and
        so any AUROC, does not depend on sigma.
        """
        sigma = self.posterior_sigma or self.sigma
        return -self._squared_distances(embeddings).min(axis=1) / (2.0 * sigma**2)

    def known_score(self, x, batch_size=256, verbose=0):
        """`known_score_from_embeddings` of inputs `x`, `[n]`."""
        embeddings = self.predict(x, batch_size=batch_size, verbose=verbose)
        return self.known_score_from_embeddings(embeddings)

    def calibrate(self, x_val, y_val, batch_size=256, verbose=0):
        """Fit the posterior's sigma (a temperature) on held-out data, minimising the NLL.

        The training sigma (`sigma`, the loss's) is untouched; `predict_proba`
        uses the fitted `posterior_sigma` from then on, and it is saved with
        the model.

        Args:
            x_val: held-out inputs (a validation split, never the test split).
            y_val: their original class ids `[n]`; every class of the model
                needs at least 2 examples.

        Returns:
            A dict: `sigma` (the fitted one), `nll_before`, `nll_after`.

        Raises:
            ValueError: classes of the model missing from `y_val`, a class with
                a single example, or labels the model does not know.
        """
        from scipy.optimize import minimize_scalar

        embeddings = self.predict(x_val, batch_size=batch_size, verbose=verbose)
        labels = _validation.class_ids(y_val, "calibrate's y_val", n=len(embeddings))
        columns = self._check_held_out(labels, "calibrate")
        distances = self._squared_distances(embeddings)
        membership = self._gaussian_classes[:, None] == self.classes_[None, :]
        own = membership[:, columns].T  # [n, G]: the Gaussians of each row's class

        def nll(log_sigma):
            logits = -distances / (2.0 * np.exp(2.0 * log_sigma))
            logits -= logits.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(logits).sum(axis=1))
            mine = np.log(np.where(own, np.exp(logits), 0.0).sum(axis=1) + 1e-300)
            # clipped as keras_sgm.evaluation.calibration.negative_log_likelihood clips
            return float(np.mean(-np.maximum(mine - log_norm, np.log(1e-12))))

        start = np.log(self.posterior_sigma or self.sigma)
        found = minimize_scalar(
            nll, bounds=(start - np.log(100.0), start + np.log(100.0)), method="bounded"
        )
        before = nll(start)
        old = self.posterior_sigma or self.sigma
        if found.fun < before:
            self.posterior_sigma = float(np.exp(found.x))
        else:
            self.posterior_sigma = float(np.exp(start))
        if self.reject_below is not None:  # known_score scales as 1 / sigma^2: same inputs kept
            self.reject_below *= (old / self.posterior_sigma) ** 2
        return {
            "sigma": self.posterior_sigma,
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
        name = lambda c: (  # noqa: E731
            self.class_names[c] if self.class_names and 0 <= c < len(self.class_names) else c
        )
        missing = [name(c) for c, n in counts.items() if n == 0]
        if missing:
            raise ValueError(
                f"{what} needs held-out examples of every class; y_val has none of {missing}."
            )
        single = [name(c) for c, n in counts.items() if n == 1]
        if single:
            raise ValueError(
                f"{what} needs at least 2 held-out examples of every class; {single} have only one."
            )
        return np.searchsorted(classes, labels)

    def fit_reject_threshold(self, x_val, accept=0.95, threshold=None, batch_size=256, verbose=0):
        """Choose `reject_below` on held-out inputs of the known classes.

        Args:
            x_val: held-out inputs of the known classes (a validation split).
            accept: float in (0, 1], default 0.95; the share of `x_val` whose
                `known_score` reaches the threshold (kept, not rejected).
            threshold: optional float, a threshold to check and keep instead.

        Returns:
            The threshold, also stored as `reject_below`.

        Raises:
            ValueError: `accept` outside (0, 1], or a `threshold` that would
                reject every input of `x_val` (the message gives their scores).
        """
        scores = self.known_score(x_val, batch_size=batch_size, verbose=verbose)
        if scores.size == 0:
            raise ValueError("fit_reject_threshold needs at least one held-out input.")
        if threshold is None:
            accept = _validation.number(accept, "accept")
            if accept > 1.0:
                raise ValueError(f"accept is a share of inputs in (0, 1]; received {accept}.")
            threshold = float(np.quantile(scores, 1.0 - accept, method="lower"))
        threshold = _validation.number(threshold, "threshold", -np.inf)
        kept = int(np.sum(scores >= threshold))
        if kept == 0:
            raise ValueError(
                f"threshold {threshold:.4g} would reject all {scores.size} held-out inputs: "
                f"their known scores lie in [{scores.min():.4g}, {scores.max():.4g}]. Choose a "
                f"threshold at most {scores.max():.4g}, or pass accept=0.95."
            )
        self.reject_below = threshold
        return threshold

    # ----------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "sigma": self.sigma,
                "cross_replica": self.cross_replica,
                "class_names": self.class_names,
                "posterior_sigma": self.posterior_sigma,
                "reject_below": self.reject_below,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store["gaussian_means"] = self._gaussian_means
        store["gaussian_ids"] = self._gaussian_ids
        store["gaussian_classes"] = self._gaussian_classes

    def load_own_variables(self, store):
        keys = list(store.keys())
        if all(k in keys for k in _GAUSSIAN_KEYS):
            self._set_gaussian_state(*(np.asarray(store[k]) for k in _GAUSSIAN_KEYS))
        super().load_own_variables({k: store[k] for k in keys if k not in _GAUSSIAN_KEYS})


@keras.saving.register_keras_serializable(package="keras_sgm")
class SoftmaxClassifier(DistributedFit, keras.Model):
    """The softmax CNN baseline: a functional model, encoder then logits.

    Built and used like any functional `keras.Model`
    (`SoftmaxClassifier(inputs, logits)`); unlike one, it also trains under
    `MultiWorkerMirroredStrategy` (`keras_sgm.distribute.multiworker.MultiWorkerFit`).
    """


def _portable_optimizer(config):
    """`config` with a backend's own optimizer class named by its public Keras name.

    Under PyTorch, Keras 3 serializes `keras.optimizers.SGD` (and others) as
    `keras.src.backend.torch.optimizers.torch_sgd.SGD`; loading that file
    elsewhere would import torch. Every built-in optimizer is
    `keras.optimizers.<class_name>` on every backend, so the file names that.
    """
    optimizer = config.get("optimizer")
    if not isinstance(optimizer, dict):
        return config
    module = str(optimizer.get("module") or "")
    public = getattr(keras.optimizers, str(optimizer.get("class_name")), None)
    if module.startswith("keras.src.backend.") and public is not None:
        optimizer = {**optimizer, "module": "keras.optimizers", "registered_name": None}
        config = {**config, "optimizer": optimizer}
    return config


def _map_classes(ids, class_map):
    missing = [int(i) for i in ids if int(i) not in class_map]
    if missing:
        raise ValueError(f"class_map has no original class for label ids {missing[:10]}.")
    return np.array([class_map[int(i)] for i in ids], "int64")


@keras.saving.register_keras_serializable(package="keras_sgm")
class StopOnNonFinite(keras.callbacks.Callback):
    """Stop training with a `ValueError` at the first batch with a non-finite loss.

    `SGMModel.fit` adds it automatically; `SGMModel.train_step` has already
    kept that batch's gradients out of the weights, so the model is left as it
    was before the batch (up to the optimizer's momentum).
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.model.stop_training = True
            raise ValueError(
                f"Non-finite loss or gradients at epoch {getattr(self, '_epoch', 0) + 1}, "
                f"batch {batch + 1}: the inputs or labels of that batch probably hold "
                "NaN/Inf values (or fractional / out-of-range class ids, or soft-label rows "
                "summing to 0), or the learning rate is too high. The batch's gradients were "
                "not applied."
            )
