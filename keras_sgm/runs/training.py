"""Train one run: the models a config builds, the batches they train on, `fit`, and evaluation.

`train(config)` is the whole of `scripts/train.py`: the run folder is made
ready (`RunDir.prepare`: resume, overwrite), the splits loaded
(`keras_sgm.runs.datasets`), the models built, fitted with a backup every
epoch, and evaluated with the paper's protocol
(`keras_sgm.evaluation.report`); `keras_sgm.runs.benchmark` calls it once per
method, backbone and seed.
"""

import contextlib
import dataclasses
import time
import warnings

import keras
import numpy as np

from keras_sgm.backbones import get as get_backbone
from keras_sgm.backbones import on_sphere
from keras_sgm.data import ClassBalancedSampler, augment, augmenter
from keras_sgm.distribute import (
    check_balanced_slices,
    check_same_everywhere,
    in_multiworker,
    is_chief,
    make_strategy,
    task,
)
from keras_sgm.evaluation.metrics import hidden_group_nmi
from keras_sgm.evaluation.open_set import unknown_inputs
from keras_sgm.evaluation.report import classifier_metrics, evaluate_model
from keras_sgm.losses import SGMLoss, TripletLoss
from keras_sgm.model import SGMModel, SoftmaxClassifier
from keras_sgm.runs import recipe
from keras_sgm.runs.config import TrainConfig
from keras_sgm.runs.datasets import describe_splits, load_splits, other_dataset_images
from keras_sgm.runs.dgms import dgms_outputs, run_splitter
from keras_sgm.runs.rundir import RunDir


class _EpochTimer(keras.callbacks.Callback):
    """Records the wall-clock seconds of each training epoch in `seconds`."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def build_models(config, input_shape, class_names):
    """`(trained_model, embedding_model)`: the model `fit` trains and the `SGMModel` saved."""
    options = {"dropout": config.dropout} if config.arch in ("fmpnet", "cvgg13", "alexnet") else {}
    encoder = get_backbone(
        config.arch, input_shape=input_shape, embedding_dim=config.embedding_dim, **options
    )
    if config.radius:
        encoder = on_sphere(encoder, config.radius)
    embedder = SGMModel(
        encoder,
        sigma=config.sigma,
        class_names=class_names,
        cross_replica=config.distributed,
    )
    optimizer = recipe.optimizer(config)
    if config.method == "ce":
        logits = keras.layers.Dense(len(class_names), name="classifier", dtype="float32")(
            encoder.output
        )
        classifier = SoftmaxClassifier(encoder.input, logits, name=f"{config.arch}_softmax_cnn")
        if config.soft_labels:  # vote distributions: Barsoum et al.'s "probability" mode
            loss = keras.losses.CategoricalCrossentropy(from_logits=True)
            metrics = ["categorical_accuracy"]
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            metrics = ["accuracy"]
        classifier.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        return classifier, embedder
    if config.method == "sgm":
        loss = SGMLoss(
            sigma=config.sigma,
            leave_one_out=config.leave_one_out,
            mixture=config.trains_mixture,
            subclass_weight=config.subclass_weight,
        )
    else:
        loss = TripletLoss(margin=config.margin, mining=config.mining)
    embedder.compile(optimizer=optimizer, loss=loss)
    return embedder, embedder


def training_data(config, train, val, start_epoch=0, soft_labels=None):
    """`(train_dataset, val_dataset_or_None, sampler)`: balanced batches, or shuffled ones for `ce`.

    `start_epoch` > 0 (a resumed run) derives a fresh seed, so the resumed
    epochs do not replay the batch order of the run's first epochs. With
    DGMS, epochs keep the length of the first labelling (sub-classes change
    the natural length).

    `soft_labels` (`[n, classes]`, e.g. FER+ vote distributions) are what
    SGMLoss and the softmax CNN train on, batches still balanced on the hard
    labels `train[1]` (the distributions' majority); triplet loss, which
    needs hard labels, trains on `train[1]`. With `config.augment` every
    method's batches pass through the same `keras_sgm.data.augmenter`.
    """
    import tensorflow as tf  # only where a tf.data pipeline is built, as in keras_sgm.data

    seed = config.seed
    if start_epoch:
        seed = int(np.random.SeedSequence([config.seed, start_epoch]).generate_state(1)[0])
    targets = None if config.method == "triplet" else soft_labels  # triplet needs hard labels
    sampler = ClassBalancedSampler(
        train[0],
        train[1],
        config.samples_per_class,
        config.classes_per_batch,
        seed=seed,
        targets=targets,
    )
    batch_size = sampler.batch_size
    if config.method == "ce":
        pairs = train if targets is None else (train[0], targets)
        data = (
            tf.data.Dataset.from_tensor_slices(pairs)
            .shuffle(len(train[1]), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
    elif config.dgms.enabled:
        data = sampler.dataset(steps=sampler.steps_per_epoch, with_classes=config.trains_mixture)
    else:
        data = sampler.dataset()
    if config.augment:
        data = augment(data, augmenter(seed=seed))
    if val is not None and targets is not None:  # validation is labelled by majority
        val = (val[0], np.eye(soft_labels.shape[1], dtype="float32")[val[1]])
    val_data = None if val is None else tf.data.Dataset.from_tensor_slices(val).batch(batch_size)
    return data, val_data, sampler


def train(config, callbacks=()):
    """Run one training job and write its outputs; returns the metrics dict.

    On a multi-worker run (`strategy="multiworker"`) every worker calls
    `train` with the same config; the chief evaluates and writes `output`,
    the others save their model in `output/workers/<task>_<index>/` and
    return `{"worker": ..., "epochs_run_in_this_session": ...}`.

    Args:
        config: a `TrainConfig` (or a dict of its fields).
        callbacks: extra Keras callbacks for `fit`.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    config = config.validated().resolved()
    strategy = make_strategy(config.strategy, config.replicas)  # before any TF op
    # TF_CONFIG names the chief of a multi-worker run only; any other run writes its output.
    chief = config.strategy != "multiworker" or is_chief()
    if not chief:  # another worker of a multi-worker run: its own directory
        worker = RunDir(config.output).worker(*task())
        config = dataclasses.replace(config, output=str(worker.path))
    with _precision(config.mixed_precision):
        return _train(config, strategy, chief, callbacks)


@contextlib.contextmanager
def _precision(policy):
    """Train under a Keras dtype policy (None: leave it), restoring the previous one after."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _train(config, strategy, chief, callbacks):
    run = RunDir(config.output)
    # A run that fails before it trains leaves no folder it created behind.
    with run.removed_on_failure():
        config, splits = _ready(config, run, chief)
        train_split, val, test, names, extras = splits
        with strategy.scope() if strategy else contextlib.nullcontext():
            model, embedder = build_models(config, train_split[0].shape[1:], names)
        start = _start_epoch(config, run, strategy)
        data, val_data, sampler = training_data(
            config, train_split, val, start_epoch=start, soft_labels=extras.get("soft_labels")
        )
    splitter = None
    if config.dgms.enabled:
        splitter = run_splitter(
            config, sampler, run.path, train_split, test, extras.get("subgroup")
        )
    history, timer = _fit(config, run, model, (data, val_data), splitter, callbacks)
    if strategy is not None:
        # Inference from here on runs on this process alone, in the order of its inputs.
        embedder = embedder.local_copy()
        if not chief:  # the chief alone evaluates and writes metrics
            run.save_model(embedder)
            run.discard_backup()
            return {"worker": run.path.name, "epochs_run_in_this_session": len(history.epoch)}
    calibration_fit = _fit_head(embedder, train_split, val, splitter)
    if config.method == "ce":
        run.save_model(model, RunDir.CLASSIFIER)
    run.save_model(embedder)
    metrics = _run_metrics(config, run, model, embedder, strategy, splits, splitter)
    metrics.update(
        calibration_fit=calibration_fit,
        train_seconds_per_epoch=float(np.mean(timer.seconds)) if timer.seconds else None,
        epochs_run_in_this_session=len(history.epoch),
    )
    run.write_metrics(metrics)  # the run is complete: its backup goes
    return metrics


def _ready(config, run, chief):
    """`(config, splits)`: the run folder made ready for `config` (`RunDir.prepare`), the seed
    set, the splits loaded (`load_splits(..., with_extras=True)`) and `config.json` written."""
    config = run.prepare(config)
    keras.utils.set_random_seed(config.seed)
    splits = load_splits(config, with_extras=True)
    if config.verbose and chief:
        print(describe_splits(*splits[:4], flipped=splits[4].get("label_flipped")))
    run.write_config(config)
    return config, splits


def _fit(config, run, model, data, splitter, callbacks):
    """`(history, timer)` of `model.fit` on `data` (`(train, validation)` batches), with the
    run's callbacks (`_callbacks`); `timer.seconds` are the epochs' wall-clock seconds."""
    timer = _EpochTimer()
    history = model.fit(
        data[0],
        validation_data=data[1],
        epochs=config.epochs,
        verbose=config.verbose,
        shuffle=False,
        callbacks=_callbacks(config, run, splitter, timer, callbacks),
    )
    return history, timer


def _fit_head(embedder, train, val, splitter):
    """Fit the saved model's Gaussians on the training split (on the DGMS sub-classes of
    `splitter`, if any), then calibrate them on `val`; returns `calibrate_on`'s record."""
    if splitter:
        embedder.fit_gaussians(train[0], splitter.labels, class_map=splitter.class_map)
    else:
        embedder.fit_gaussians(train[0], train[1])
    return calibrate_on(embedder, val)


def _run_metrics(config, run, model, embedder, strategy, splits, splitter):
    """The metrics of a trained run (`_evaluate`), what it trained with, and its DGMS summary."""
    train, _, test, names, extras = splits
    metrics, train_emb = _evaluate(
        config, run, model, embedder, strategy, train, test, names, extras
    )
    metrics.update(
        soft_labels=config.trains_on_soft_labels,
        augment=config.augment,
        seed=config.seed,
        method=config.method,
        arch=config.arch,
        dataset=config.dataset,
        replicas=strategy.num_replicas_in_sync if strategy is not None else 1,
    )
    if splitter:
        metrics["dgms"] = dgms_outputs(
            train_emb, splitter, train, names, run.path, extras.get("subgroup"), config.seed
        )
        metrics["dgms"]["loss"] = config.trained_dgms_loss
    return metrics


def _start_epoch(config, run, strategy):
    """The epoch training starts from (a resumed run's), checked to agree across workers."""
    if strategy is not None and config.method != "ce":
        check_balanced_slices(config.samples_per_class, strategy.num_replicas_in_sync)
    start = run.finished_epochs() if config.resume else 0
    if in_multiworker(strategy):
        check_same_everywhere(start, strategy, "epochs finished before --resume")
        check_same_everywhere(run.dgms_level(), strategy, "DGMS levels reached before --resume")
    return start


def _callbacks(config, run, splitter, timer, extra):
    """The callbacks of a run's `fit`, in the order they must run."""
    return [
        # The splitter saves its state before the backup of the same epoch is written.
        *([splitter] if splitter else []),
        # The epoch's rate is set first, and logged by the CSVLogger after it.
        *recipe.schedule_callbacks(config),
        # Kept until metrics.json is written: a run stopped while it evaluates is
        # recognised as trained and only evaluated again.
        keras.callbacks.BackupAndRestore(str(run.backup), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(run.checkpoint_path)),
        keras.callbacks.TensorBoard(str(run.logs)),
        keras.callbacks.CSVLogger(str(run.history_path), append=config.resume),
        timer,
        *extra,
    ]


def calibrate_on(embedder, val):
    """Fit the posterior's sigma and the reject threshold on the validation split, if any.

    Returns what was fitted, `metrics.json["calibration_fit"]`: `validation_images`,
    `SGMModel.calibrate`'s `sigma`, `nll_before` and `nll_after`, `reject_below` and
    `reject_accept`; or `{"skipped": reason}` (no validation split, or one `calibrate`
    refuses). `metrics.json["calibration"]` holds the test split's probability scores.
    """
    if val is None or len(val[1]) == 0:
        return {"skipped": "no validation split (set val_fraction to hold one out)"}
    before = embedder.posterior_sigma, embedder.reject_below
    try:
        fitted = embedder.calibrate(val[0], val[1])
        threshold = embedder.fit_reject_threshold(val[0], accept=REJECT_ACCEPT)
    except ValueError as error:
        embedder.posterior_sigma, embedder.reject_below = before  # all or nothing
        warnings.warn(f"Posteriors not calibrated: {error}", stacklevel=2)
        return {"skipped": str(error)}
    return {
        "validation_images": int(len(val[1])),
        **fitted,
        "reject_below": threshold,
        "reject_accept": REJECT_ACCEPT,
    }


REJECT_ACCEPT = 0.95
"""The share of validation inputs a run's reject threshold keeps."""


def _unknown_inputs(config, shape, extras):
    """`{kind: images}` a run scores its "unknown" detectors on (`evaluation.open_set`)."""
    unknown = unknown_inputs(shape, n=200, seed=config.seed)
    if "held_out_test" in extras and len(extras["held_out_test"][1]):
        unknown["held_out_class"] = extras["held_out_test"][0]
    other = other_dataset_images(config, n=200)
    if other is not None:
        unknown["other_dataset"] = other
    return unknown


def _evaluate(config, run, model, embedder, strategy, train, test, names, extras):
    """`(metrics, train_embeddings)` of a trained run (figures written to its folder)."""
    unknown = _unknown_inputs(config, train[0].shape[1:], extras)
    scores = {}
    if config.method == "ce":
        # Under a strategy, score an undistributed copy: predict would wait on other workers.
        head = model if strategy is None else keras.saving.load_model(run.classifier_path)
        scores = classifier_metrics(head, test, len(names), unknown=unknown)
    train_emb = embedder.predict(train[0], verbose=0)
    metrics = evaluate_model(
        embedder,
        train,
        test,
        names,
        run.path,
        seed=config.seed,
        knn_k=config.knn_k,
        train_emb=train_emb,
        unknown=unknown,
        softmax=scores,
    )
    metrics.update(scores)
    if "subgroup" in extras:  # classes hiding known groups: does the embedding keep them?
        metrics["hidden_group_nmi"] = hidden_group_nmi(
            train_emb, train[1], extras["subgroup"], seed=config.seed
        )
    return metrics, train_emb
