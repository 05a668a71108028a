"""SGMModel: an encoder, the Gaussian (Bayes) classifier `GaussianHead`, and the SGM train step."""

import warnings

import keras
import numpy as np

from keras_sgm import _backend
from keras_sgm.gaussian_head import STATE_KEYS, UNKNOWN, GaussianHead
from keras_sgm.losses import SGMLoss
from keras_sgm.metrics import CentroidAccuracy
from keras_sgm.steps import DistributedFit, Steps

__all__ = ["UNKNOWN", "SGMModel", "SoftmaxClassifier", "StopOnNonFinite"]


@keras.saving.register_keras_serializable(package="keras_sgm")
class SGMModel(Steps, keras.Model):
    """An embedding model trained with `SGMLoss` that can also classify.

    An encoder (any Keras model mapping images to `[batch, dim]` embeddings)
    and a `GaussianHead` (`model.head`, the classifier). `fit` trains the
    encoder with the compiled loss (by default `SGMLoss(sigma)`), reporting
    `loss` and the batch `centroid_accuracy`; `predict` returns embeddings.
    After training, `fit_gaussians` fits the head's Gaussians to the class means
    of the training set, saved with the model, so that `predict_proba`
    classifies by Bayes' rule.

    Each Gaussian has an id (the label it was fitted on: a class, or a
    sub-class after DGMS splitting) and the original class it belongs to;
    `predict_proba` sums the posteriors of a class's Gaussians. The head's
    settings (`class_names`, `posterior_sigma`, `reject_below`) and Gaussians
    read as the model's own; what takes embeddings rather than inputs is the
    head's (`model.head.posterior(embeddings)`).

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
        if not isinstance(encoder, keras.Model):
            raise ValueError(f"encoder must be a keras.Model; received {type(encoder).__name__}.")
        self.encoder = encoder
        self.head = GaussianHead(
            sigma,
            class_names=class_names,
            posterior_sigma=posterior_sigma,
            reject_below=reject_below,
            name="gaussian_head",
        )
        self.cross_replica = bool(cross_replica)
        self.centroid_accuracy_tracker = CentroidAccuracy(name="centroid_accuracy")
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
    # The classifier is `self.head`, a `GaussianHead`; what follows embeds inputs and
    # asks it, and names its settings as the model's own.
    sigma = property(lambda self: self.head.sigma, doc="The shared sigma of loss and head.")
    gaussian_means = property(lambda self: self.head.gaussian_means, doc="`[G, dim]` means.")
    gaussian_ids = property(lambda self: self.head.gaussian_ids, doc="`[G]` label ids.")
    gaussian_classes = property(lambda self: self.head.gaussian_classes, doc="`[G]` classes.")
    classes_ = property(lambda self: self.head.classes_, doc="The columns of `predict_proba`.")

    @property
    def class_names(self):
        """Optional list of strings; `class_names[i]` names class id `i`."""
        return self.head.class_names

    @class_names.setter
    def class_names(self, names):
        self.head.class_names = names

    @property
    def posterior_sigma(self):
        """The calibrated sigma of the posteriors (`calibrate`), or None (`sigma`)."""
        return self.head.posterior_sigma

    @posterior_sigma.setter
    def posterior_sigma(self, value):
        self.head.posterior_sigma = value

    @property
    def reject_below(self):
        """The known score below which `predict_classes(reject=True)` answers `UNKNOWN`."""
        return self.head.reject_below

    @reject_below.setter
    def reject_below(self, value):
        self.head.reject_below = value

    def set_gaussians(self, means, ids, classes=None):
        """`GaussianHead.set_gaussians`; returns the model."""
        self.head.set_gaussians(means, ids, classes)
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
        self.head.fit(embeddings, labels, class_map=class_map)
        return self

    def _embed_with_labels(self, x, y, batch_size, verbose):
        if y is not None:
            return self.predict(x, batch_size=batch_size, verbose=verbose), y
        if not _backend.is_tf_dataset(x):
            raise ValueError("fit_gaussians needs labels: pass y, or a dataset of (x, y).")
        parts = [(self.predict_on_batch(bx), by) for bx, by in x.as_numpy_iterator()]
        if not parts:
            raise ValueError("fit_gaussians received an empty dataset.")
        embeddings = np.concatenate([np.asarray(p[0]) for p in parts])
        return embeddings, np.concatenate([np.asarray(p[1]).reshape(-1) for p in parts])

    def predict_proba(self, x, batch_size=256, verbose=0):
        """Class posteriors by Bayes' rule over the fitted Gaussians.

        Args:
            x: inputs, as for `predict`.
            batch_size: int, default 256.
            verbose: passed to `predict`.

        Returns:
            `[n, classes]` numpy array; columns follow `classes_`.
        """
        self.head._require_gaussians()
        return self.head.posterior(self.predict(x, batch_size=batch_size, verbose=verbose))

    def predict_classes(self, x, batch_size=256, verbose=0, reject=False):
        """The most probable original class id of each input, `[n]`.

        Args:
            x: inputs, as for `predict_proba`.
            batch_size: int, default 256, passed to `predict`.
            verbose: passed to `predict`.
            reject: False (default) answers a class for every input; True
                answers `UNKNOWN` (-1) for inputs whose `known_score` is below
                `reject_below` (set by `fit_reject_threshold`); a float is
                that threshold.
        """
        embeddings = self.predict(x, batch_size=batch_size, verbose=verbose)
        return self.head.predict_classes(embeddings, reject=reject)

    def known_score(self, x, batch_size=256, verbose=0):
        """`GaussianHead.known_score` of inputs `x`, `[n]`."""
        return self.head.known_score(self.predict(x, batch_size=batch_size, verbose=verbose))

    def calibrate(self, x_val, y_val, batch_size=256, verbose=0):
        """Fit the posterior's sigma (a temperature) on held-out data, minimising the NLL.

        The training sigma (`sigma`, the loss's) is untouched; `predict_proba`
        uses the fitted `posterior_sigma` from then on, and it is saved with
        the model. See `GaussianHead.calibrate`.

        Args:
            x_val: held-out inputs (a validation split, never the test split).
            y_val: their original class ids `[n]`; every class of the model
                needs at least 2 examples.

        Returns:
            A dict: `sigma` (the fitted one), `nll_before`, `nll_after`.
        """
        embeddings = self.predict(x_val, batch_size=batch_size, verbose=verbose)
        return self.head.calibrate(embeddings, y_val)

    def fit_reject_threshold(self, x_val, accept=0.95, threshold=None, batch_size=256, verbose=0):
        """Choose `reject_below` on held-out inputs of the known classes
        (`GaussianHead.fit_reject_threshold` of their embeddings).

        Args:
            x_val: held-out inputs of the known classes (a validation split).
            accept: float in (0, 1], default 0.95; the share of `x_val` whose
                `known_score` reaches the threshold (kept, not rejected).
            threshold: optional float, a threshold to check and keep instead.

        Returns:
            The threshold, also stored as `reject_below`.
        """
        embeddings = self.predict(x_val, batch_size=batch_size, verbose=verbose)
        return self.head.fit_reject_threshold(embeddings, accept=accept, threshold=threshold)

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

    def load_own_variables(self, store):
        # files written before the head was a layer keep its Gaussians in this entry
        keys = list(store.keys())
        if all(k in keys for k in STATE_KEYS):
            self.head._set_state(*(np.asarray(store[k]) for k in STATE_KEYS))
        super().load_own_variables({k: store[k] for k in keys if k not in STATE_KEYS})


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
