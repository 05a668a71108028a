"""Class-balanced batches as a `tf.data` pipeline.

Every batch holds exactly `samples_per_class` examples of each of
`classes_per_batch` distinct classes, as metric-learning losses need. The
images stay in memory once; the labels live in a `tf.Variable`, so that
`ClassBalancedSampler.relabel` (used by DGMS sub-class splitting) changes what
the next epoch trains on without reloading anything.

An epoch is made of rounds. In each round every class is visited once, in a
fresh random order, `classes_per_batch` classes per batch (the last batch of a
round is completed with classes drawn from the round's earlier batches). Each
class walks through a shuffled list of its members, `samples_per_class` at a
time, wrapping around when it runs out, so a class smaller than
`samples_per_class` is sampled with replacement, never dropped. There are as
many rounds as the largest class needs to show all its members, so over one
epoch every example is drawn at least once.

Inside a batch the samples are interleaved by class
(`c1, c2, ..., cP, c1, c2, ...`), so any contiguous slice of `k * P` rows -
for instance one replica's share under `tf.distribute` - is balanced too.
"""

import math
import warnings

import numpy as np

from keras_sgm import _validation

_MAX_PLANS = 2**31
"""Bound on the plans one fixed-length epoch may chain (never reached in practice)."""
_SEED_STRIDE = 1_000_003
"""Seed offset between chained plans of one fixed-length epoch."""


def _tf():
    import tensorflow as tf

    return tf


def _collect_dataset(dataset):
    """Read an unbatched `tf.data.Dataset` of (image, label) or {"image", "label"} into arrays."""
    spec = dataset.element_spec
    if isinstance(spec, dict):
        if "image" not in spec or "label" not in spec:
            raise ValueError(
                f"A dataset of dicts needs 'image' and 'label' keys; received keys {sorted(spec)}."
            )
        dataset = dataset.map(lambda e: (e["image"], e["label"]))
        spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise ValueError(
            "Expected a dataset of (image, label) pairs or {'image', 'label'} dicts; "
            f"received elements {spec}."
        )
    if len(spec) > 2:
        dataset = dataset.map(lambda *e: (e[0], e[1]))
    label_spec = dataset.element_spec[1]
    if label_spec.shape.rank == 1 and label_spec.shape[0] is None:
        raise ValueError(
            "The dataset looks batched (labels of shape [None]); pass an unbatched "
            "dataset, e.g. dataset.unbatch()."
        )
    images, labels = [], []
    for i, (image, label) in enumerate(dataset.as_numpy_iterator()):
        if images and image.shape != images[0].shape:
            raise ValueError(
                f"Dataset element {i} has image shape {image.shape}, element 0 has "
                f"{images[0].shape}; resize the images to one shape first."
            )
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError("The dataset is empty.")
    return np.stack(images), np.stack(labels)


def _check_labels(labels, name="labels"):
    return _validation.class_ids(labels, name)


def _check_finite(array, name):
    if array.dtype.kind != "f":
        return
    bad = np.flatnonzero(~np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1))
    if bad.size:
        raise ValueError(
            f"{name} hold NaN or Inf values in {bad.size} examples (first: row {int(bad[0])})."
        )


class ClassBalancedSampler:
    """Class-balanced `tf.data` batches whose labels can change between epochs.

    Args:
        images: array `[n, ...]`, or an unbatched `tf.data.Dataset` / TFDS split
            of `(image, label)` pairs or `{"image", "label"}` dicts (read into
            memory once; then `labels` must be None).
        labels: integer class ids `[n]` of any value (ignored for datasets).
        samples_per_class: int, examples of each class in a batch (the paper
            uses 30).
        classes_per_batch: int or None (default): distinct classes per batch;
            None means all classes of the current labels.
        seed: int or None; with a seed every epoch's order is reproducible
            (and differs from epoch to epoch).
        targets: optional `[n, ...]` array yielded instead of the labels
            (e.g. FER+ vote distributions for soft-label SGMLoss); balancing
            still follows `labels`.

    Examples:
        >>> import numpy as np
        >>> from keras_sgm.data import ClassBalancedSampler
        >>> x = np.random.rand(100, 8, 8, 1).astype("float32"); y = np.arange(100) % 4
        >>> sampler = ClassBalancedSampler(x, y, samples_per_class=5, seed=0)
        >>> images, labels = next(iter(sampler.dataset()))
        >>> images.shape, np.bincount(labels.numpy()).tolist()
        (TensorShape([20, 8, 8, 1]), [5, 5, 5, 5])
    """

    def __init__(
        self,
        images,
        labels=None,
        samples_per_class=30,
        classes_per_batch=None,
        seed=None,
        targets=None,
    ):
        tf = _tf()
        if isinstance(images, tf.data.Dataset):
            if labels is not None:
                raise ValueError("Pass labels inside the dataset, not as a separate argument.")
            images, labels = _collect_dataset(images)
        elif labels is None:
            raise ValueError("labels are required when images is an array.")
        images = np.asarray(images)
        labels = _check_labels(labels)
        if images.ndim == 0 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"images hold {images.shape[0] if images.ndim else 0} examples but labels "
                f"hold {labels.shape[0]}; they must match."
            )
        if labels.shape[0] == 0:
            raise ValueError("No examples: images and labels are empty.")
        _check_finite(images, "images")
        if (
            isinstance(samples_per_class, bool)
            or int(samples_per_class) != samples_per_class
            or samples_per_class < 1
        ):
            raise ValueError(
                f"samples_per_class must be a positive int; received {samples_per_class!r}."
            )
        if classes_per_batch is not None and (
            int(classes_per_batch) != classes_per_batch or classes_per_batch < 2
        ):
            raise ValueError(
                f"classes_per_batch must be an int >= 2 or None; received {classes_per_batch!r} "
                "(a batch of one class gives the metric losses nothing to learn)."
            )
        if targets is not None:
            targets = np.asarray(targets)
            if targets.shape[0] != labels.shape[0]:
                raise ValueError(
                    f"targets hold {targets.shape[0]} rows but labels {labels.shape[0]}."
                )
            _check_finite(targets, "targets")
        self.samples_per_class = int(samples_per_class)
        self.classes_per_batch = None if classes_per_batch is None else int(classes_per_batch)
        self.seed = seed
        self._check_class_count(labels)
        self._images = tf.convert_to_tensor(images)
        self._targets = None if targets is None else tf.convert_to_tensor(targets)
        self._labels = tf.Variable(labels, trainable=False, name="balanced_labels", dtype=tf.int64)
        self._classes = tf.constant(labels, tf.int64)  # the labels given, kept through relabels
        # True once dataset() made epochs whose length follows the labels.
        self.made_label_sized_dataset = False

    @property
    def images(self):
        """The examples, a tensor `[n, ...]` (held once, shared by every dataset)."""
        return self._images

    # ----------------------------------------------------------------- labels
    @property
    def labels(self):
        """The current labels, a `tf.Variable` `[n]` of int64."""
        return self._labels

    @property
    def original_labels(self):
        """The labels the sampler was made with, int64 `[n]` (kept through `relabel`)."""
        return self._classes.numpy()

    @property
    def num_examples(self):
        return int(self._labels.shape[0])

    def relabel(self, labels):
        """Replace the labels (same examples, same order); used from the next epoch on."""
        labels = _check_labels(labels)
        if labels.shape[0] != self.num_examples:
            raise ValueError(
                f"relabel received {labels.shape[0]} labels for {self.num_examples} examples."
            )
        self._check_class_count(labels)
        steps = self.steps_per_epoch
        self._labels.assign(labels)
        if self.steps_per_epoch != steps:
            warnings.warn(
                f"relabel changed the epoch from {steps} to {self.steps_per_epoch} batches; "
                "datasets made before keep their old length: call dataset() again.",
                stacklevel=2,
            )

    def _check_class_count(self, labels):
        classes = np.unique(labels)
        if len(classes) < 2:
            raise ValueError(
                f"The labels hold {len(classes)} class(es) ({classes.tolist()}); class-balanced "
                "metric learning needs at least 2."
            )
        if self.classes_per_batch is not None and self.classes_per_batch > len(classes):
            shown = classes.tolist()[:20]
            raise ValueError(
                f"classes_per_batch={self.classes_per_batch} but the labels hold only "
                f"{len(classes)} classes: {shown}{' ...' if len(classes) > 20 else ''}."
            )

    # ------------------------------------------------------------------ sizes
    def _sizes(self):
        labels = self._labels.numpy()
        _, counts = np.unique(labels, return_counts=True)
        per_batch = self.classes_per_batch or len(counts)
        rounds = math.ceil(counts.max() / self.samples_per_class)
        return per_batch, rounds * math.ceil(len(counts) / per_batch)

    @property
    def batch_size(self):
        """Examples per batch: `classes_per_batch * samples_per_class` (current labels)."""
        return self._sizes()[0] * self.samples_per_class

    @property
    def steps_per_epoch(self):
        """Batches in one epoch for the current labels."""
        return self._sizes()[1]

    # --------------------------------------------------------------- pipeline
    def epoch_plan(self, seed, labels):
        """Indices of one epoch, `[batches, batch_size]` int64 (a graph function).

        Args:
            seed: int64 scalar tensor; the plan is a pure function of it and
                `labels`.
            labels: `[n]` int64 tensor, the labels the plan balances.
        """
        tf = _tf()
        s = self.samples_per_class
        _, class_idx = tf.unique(labels, out_idx=tf.int64)
        counts = tf.math.bincount(class_idx, dtype=tf.int64)
        num_classes = tf.size(counts, out_type=tf.int64)
        per_batch = (
            tf.constant(self.classes_per_batch, tf.int64) if self.classes_per_batch else num_classes
        )
        seeds = tf.random.experimental.stateless_split(tf.stack([seed, seed // 7 + 1]), num=3)
        # Members grouped by class, shuffled inside each class.
        noise = tf.random.stateless_uniform(tf.shape(labels), seeds[0], dtype=tf.float64)
        members = tf.argsort(tf.cast(class_idx, tf.float64) + noise)
        offsets = tf.cumsum(counts, exclusive=True)
        rounds = (tf.reduce_max(counts) + s - 1) // s
        batches_per_round = (num_classes + per_batch - 1) // per_batch
        pad = batches_per_round * per_batch - num_classes
        # Each round visits every class once, in a fresh order; fillers complete the last batch.
        order = tf.argsort(
            tf.random.stateless_uniform(tf.stack([rounds, num_classes]), seeds[1]), axis=1
        )
        order = tf.cast(order, tf.int64)
        slots = tf.concat([order, order[:, :pad]], axis=1)  # [rounds, batches_per_round * P]
        filler = tf.concat(
            [tf.zeros_like(order, tf.bool), tf.ones_like(order[:, :pad], tf.bool)], axis=1
        )
        n = tf.gather(counts, slots)[..., None]  # [rounds, slots, 1]
        walk = tf.range(rounds, dtype=tf.int64)[:, None, None] * s + tf.range(s, dtype=tf.int64)
        random_pos = tf.cast(
            tf.random.stateless_uniform(tf.shape(n * 0 + walk), seeds[2]) * tf.cast(n, tf.float32),
            tf.int64,
        )
        position = tf.where(filler[..., None], random_pos, walk) % n
        index = tf.gather(members, tf.gather(offsets, slots)[..., None] + position)
        index = tf.reshape(index, tf.stack([rounds * batches_per_round, per_batch, s]))
        return tf.reshape(tf.transpose(index, [0, 2, 1]), tf.stack([-1, per_batch * s]))

    def dataset(self, repeat=False, steps=None, with_classes=False):
        """The `tf.data.Dataset` of `(images, labels)` batches (or `(images, targets)`).

        Args:
            repeat: bool, default False. False gives one epoch per iteration,
                which is what `model.fit(dataset, epochs=...)` wants: Keras
                iterates it anew each epoch, so label changes made between
                epochs (`relabel`) are followed exactly, as long as they keep
                `steps_per_epoch` (its length is fixed when the dataset is
                made; otherwise make a new one). True gives an endless
                stream (use `steps_per_epoch`); a label change then takes
                effect from the next epoch the stream plans (epochs already
                planned or prefetched keep their labels, still balanced).
            steps: optional int, a fixed number of batches per epoch whatever
                the labels. Each epoch takes one snapshot of the labels and
                draws `steps` batches from it: plans with fresh seeds follow
                one another until `steps` are reached (so every example is
                drawn when `steps >= steps_per_epoch`). This is what training
                through label changes in one `fit` needs (DGMS's
                `SubclassSplitter`): Keras fixes an epoch's length when `fit`
                starts, and a relabel changes `steps_per_epoch`.
            with_classes: bool, default False. Yield `[batch, 2]` labels:
                (current label, label given at construction) pairs, e.g.
                (DGMS sub-class, class) for `SGMLoss(mixture=True)`.

        The dataset feeds `fit` on every backend (Keras 3 accepts `tf.data` on
        all of them; under JAX or PyTorch, TensorFlow is the input pipeline only).
        """
        tf = _tf()
        seeds = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True)
        if not repeat:
            seeds = seeds.take(1)
        images, targets = self._images, self._targets

        if steps is not None and (isinstance(steps, bool) or int(steps) != steps or steps < 1):
            raise ValueError(f"steps must be a positive int or None; received {steps!r}.")
        if steps is None and not repeat:
            self.made_label_sized_dataset = True
        if with_classes and self._targets is not None:
            raise ValueError("with_classes=True yields label pairs; it cannot go with targets.")
        classes = self._classes

        def batches_of(labels):
            def plan(seed):
                plan = self.epoch_plan(seed, labels)
                return tf.data.Dataset.from_tensor_slices((plan, tf.gather(labels, plan)))

            return plan

        def epoch(seed):
            # One snapshot of the labels both plans the epoch and labels its
            # batches, so a relabel mid-stream can never mix two labellings.
            labels = self._labels.read_value()
            if steps is None:
                return batches_of(labels)(seed)
            follow_on = tf.data.Dataset.range(1, _MAX_PLANS).map(lambda i: seed + i * _SEED_STRIDE)
            plans = tf.data.Dataset.from_tensors(seed).concatenate(follow_on)
            return plans.flat_map(batches_of(labels)).take(steps)

        def gather(index, labels):
            y = labels if targets is None else tf.gather(targets, index)
            if with_classes:
                y = tf.stack([labels, tf.gather(classes, index)], axis=-1)
            return tf.gather(images, index), y

        plans = seeds.flat_map(epoch)

        batches = plans.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
        if not repeat:
            # Known length: Keras shows progress and never meets an unexpected end.
            length = self.steps_per_epoch if steps is None else int(steps)
            batches = batches.apply(tf.data.experimental.assert_cardinality(length))
        return batches.prefetch(tf.data.AUTOTUNE)


def class_balanced_batches(
    images,
    labels=None,
    samples_per_class=30,
    classes_per_batch=None,
    seed=None,
    targets=None,
    repeat=False,
):
    """A class-balanced `tf.data.Dataset`; see `ClassBalancedSampler` for the arguments.

    Use `ClassBalancedSampler` directly when the labels must change between
    training phases (DGMS).

    Examples:
        >>> import numpy as np
        >>> from keras_sgm.data import class_balanced_batches
        >>> y = np.array([0] * 50 + [7] * 3 + [40213] * 20)
        >>> ds = class_balanced_batches(np.zeros((73, 4)), y, samples_per_class=4, seed=1)
        >>> _, labels = next(iter(ds))
        >>> sorted(labels.numpy().tolist())
        [0, 0, 0, 0, 7, 7, 7, 7, 40213, 40213, 40213, 40213]
    """
    sampler = ClassBalancedSampler(
        images,
        labels,
        samples_per_class=samples_per_class,
        classes_per_batch=classes_per_batch,
        seed=seed,
        targets=targets,
    )
    return sampler.dataset(repeat=repeat)
