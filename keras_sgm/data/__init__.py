"""Data pipelines: class-balanced `tf.data` batches (dataset builders come later)."""

from keras_sgm.data.augment import augment, augmenter
from keras_sgm.data.sampler import ClassBalancedSampler, class_balanced_batches

__all__ = ["ClassBalancedSampler", "augment", "augmenter", "class_balanced_batches"]
