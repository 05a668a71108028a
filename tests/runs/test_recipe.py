"""keras_sgm.runs.recipe: the optimizer and each epoch's learning rate, alike for all methods."""

import csv

import keras
import pytest

from keras_sgm.runs import TrainConfig, recipe, train


def test_each_epochs_rate_follows_the_schedule():
    rate = recipe.epoch_learning_rate
    assert [rate(0.1, e, 4) for e in range(4)] == [0.1] * 4
    assert [rate(0.1, e, 4, warmup_epochs=2) for e in range(4)] == [0.05, 0.1, 0.1, 0.1]
    cosine = [rate(1.0, e, 5, "cosine") for e in range(5)]
    assert cosine[0] == 1.0 and cosine[2] == pytest.approx(0.5 * (1 + 0.30901699))
    assert all(a > b for a, b in zip(cosine, cosine[1:]))  # falls every epoch
    warm = [rate(1.0, e, 6, "cosine", warmup_epochs=2) for e in range(6)]
    assert warm[:3] == [0.5, 1.0, 1.0] and warm[4] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"Unknown lr_schedule 'step'; choose one of \['constant'"):
        rate(0.1, 0, 3, "step")


def test_weight_decay_turns_adam_into_adamw():
    adam = recipe.optimizer(TrainConfig(learning_rate=3e-4))
    assert type(adam) is keras.optimizers.Adam
    assert float(adam.learning_rate) == pytest.approx(3e-4)
    adamw = recipe.optimizer(TrainConfig(weight_decay=0.05))
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.05
    assert recipe.schedule_callbacks(TrainConfig()) == []


@pytest.mark.parametrize("method", ["sgm", "ce"])
def test_a_run_trains_each_epoch_at_its_scheduled_rate(tmp_path, method):
    config = TrainConfig(
        dataset="digits", image_size=32, epochs=3, method=method, learning_rate=1e-3,
        lr_schedule="cosine", warmup_epochs=1, weight_decay=1e-4, max_train_samples=120,
        verbose=0, output=str(tmp_path / method),
    )  # fmt: skip
    train(config)
    with open(tmp_path / method / "history.csv") as file:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(file)]
    expected = [recipe.epoch_learning_rate(1e-3, e, 3, "cosine", 1) for e in range(3)]
    assert rates == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"weight_decay": -0.1}, "weight_decay must be a number >= 0; received -0.1"),
        ({"lr_schedule": "step"}, "Unknown lr_schedule 'step'"),
        ({"warmup_epochs": 3, "epochs": 3}, r"warmup_epochs must be >= 0 and below epochs \(3\)"),
    ],
)
def test_the_config_refuses_a_recipe_it_cannot_train_with(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(settings)
