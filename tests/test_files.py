"""keras_sgm._files, and the files the package ships: atomic writes, package data."""

import json
from pathlib import Path

import pytest

import keras_sgm
from keras_sgm import _files

PACKAGE = Path(keras_sgm.__file__).parent


def test_json_is_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "metrics.json"
    _files.write_json(path, {"nmi": 0.5, "missing": float("nan")})
    assert json.loads(path.read_text())["nmi"] == 0.5

    class Unwritable:
        pass

    with pytest.raises(TypeError):
        _files.write_json(path, {"nmi": Unwritable()})
    assert json.loads(path.read_text())["nmi"] == 0.5  # the earlier file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary left


def test_package_data_lies_inside_the_package():
    from keras_sgm.hub import TEMPLATE
    from keras_sgm.serving import space

    assert TEMPLATE.is_relative_to(PACKAGE) and TEMPLATE.is_file()
    for name in space.SPACE_FILES:
        assert (space.TEMPLATE_DIR / name).is_file()
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    assert '"keras_sgm.hub" = ["model_card_template.md"]' in text
    assert '"keras_sgm.serving" = ["space_template/*"]' in text
