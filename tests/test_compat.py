"""keras_sgm._compat: the Keras range this release is tested with, and Keras' private names."""

from pathlib import Path

import pytest

from keras_sgm import _compat

ROOT = Path(__file__).resolve().parents[1]


def test_the_keras_range_is_the_one_pyproject_pins(monkeypatch):
    text = (ROOT / "pyproject.toml").read_text()
    assert f'"{_compat.KERAS_RANGE}"' in text  # the dependency and the guard agree
    assert _compat.check_keras_version("3.15.1") == (3, 15)
    assert _compat.check_keras_version("3.10.0") == (3, 10)
    for outside in ("3.9.2", "3.16.0", "4.0.0"):
        with pytest.raises(ImportError, match=rf"tested with keras>=3.10,<3.16; keras {outside}"):
            _compat.check_keras_version(outside)
    monkeypatch.setenv(_compat.ALLOW_ENV, "1")
    assert _compat.check_keras_version("3.16.0") == (3, 16)
    with pytest.raises(ValueError, match="Cannot read the Keras version 'nightly'"):
        _compat.check_keras_version("nightly")


def test_a_missing_private_keras_attribute_is_named():
    class Trainer:
        pass

    with pytest.raises(RuntimeError, match=r"no Trainer\._symbolic_build.*pip install 'keras>="):
        _compat.private(Trainer(), "_symbolic_build")
