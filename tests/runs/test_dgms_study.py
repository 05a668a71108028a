"""scripts/dgms_study.py's settings: refused by name before any training."""

import dataclasses

import pytest

from keras_sgm.runs.cli import with_settings
from tests.runs.test_training import _script


@pytest.fixture(scope="module")
def study():
    return _script("dgms_study")


@pytest.mark.parametrize(
    "pair, message",
    [
        ("bogus=1", "Unknown config keys ['bogus']"),
        ("embedding_radius=x", "Config key 'embedding_radius' needs a float; received 'x'"),
        ("leave_one_out=maybe", "Config key 'leave_one_out' needs a bool"),
        ("embedding_radius", "expected KEY=VALUE"),
        ("embedding_radius=-1", "embedding_radius must be a number >= 0"),
    ],
)
def test_bad_settings_are_named_and_nothing_runs(study, tmp_path, capsys, pair, message):
    output = tmp_path / "study"
    assert study.main(["--dataset", "mnist_pairs", "--output", str(output), "--set", pair]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_settings_are_typed_like_a_config_file(study):
    base = study.TrainConfig(dataset="mnist_pairs")
    config = with_settings(
        base, ["embedding_radius=2", "leave_one_out=true", "dgms_pca_dims=none", "epochs=4"]
    )
    changed = {"embedding_radius": 2.0, "leave_one_out": True, "epochs": 4}
    dgms = dataclasses.replace(base.dgms, pca_dims=None)
    assert config == dataclasses.replace(base, **changed, dgms=dgms)
    assert isinstance(config.epochs, int) and isinstance(config.embedding_radius, float)
