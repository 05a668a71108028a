"""How a run optimizes: Adam, or AdamW with weight decay, and the learning rate of each epoch.

Every method of a run gets the same optimizer and schedule, so that a study tunes them alike:

- `weight_decay` 0 (the default) is Adam, as the paper trains; above 0, AdamW's decoupled decay;
- `lr_schedule` `"constant"` (the default) keeps `learning_rate`; `"cosine"` decays it from
  `learning_rate` to 0 over the epochs after the warm-up, `0.5 * (1 + cos(pi * t))`;
- `warmup_epochs` W > 0 raises it linearly over the first W epochs, `learning_rate * (e + 1) / W`.

The rate is set at the start of each epoch (`keras.callbacks.LearningRateScheduler`) from the
epoch's index, so a resumed run goes on with the rate it stopped at.

Example:

    >>> [round(epoch_learning_rate(1e-3, e, 5, "cosine", warmup_epochs=1), 6) for e in range(5)]
    [0.001, 0.001, 0.000854, 0.0005, 0.000146]
"""

import math

import keras

from keras_sgm.runs.config import LR_SCHEDULES


def epoch_learning_rate(base, epoch, epochs, schedule="constant", warmup_epochs=0):
    """The learning rate of 0-based `epoch` of `epochs`, from `base` (see the module)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"Unknown lr_schedule {schedule!r}; choose one of {list(LR_SCHEDULES)}.")
    if epoch < warmup_epochs:
        return base * (epoch + 1) / warmup_epochs
    if schedule == "constant":
        return base
    decay_epochs = max(epochs - warmup_epochs, 1)
    progress = min((epoch - warmup_epochs) / decay_epochs, 1.0)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def optimizer(config):
    """Adam at `config.learning_rate`, or AdamW when `config.weight_decay` > 0."""
    if config.weight_decay:
        return keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(config.learning_rate)


def schedule_callbacks(config):
    """`[LearningRateScheduler]` when the rate changes between epochs, else `[]`."""
    if config.lr_schedule == "constant" and not config.warmup_epochs:
        return []

    def rate(epoch, _current):
        return epoch_learning_rate(
            config.learning_rate, epoch, config.epochs, config.lr_schedule, config.warmup_epochs
        )

    return [keras.callbacks.LearningRateScheduler(rate)]
