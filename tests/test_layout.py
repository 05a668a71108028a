"""The package's shape: imports point one way, old paths still work, shared checks hold."""

import ast
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

import keras_sgm
from keras_sgm import _compat, _files, _validation

PACKAGE = Path(keras_sgm.__file__).parent

LAYERS = {"core": 0, "runs": 1, "hub": 2, "serving": 3}
"""core <- runs <- hub <- serving: a module may import its own layer and the ones before it."""


def _layer(module):
    """The layer of a `keras_sgm...` module name (anything not named below is core)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "core"


def _imports(path):
    """Every `keras_sgm` module a file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("keras_sgm"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "keras_sgm":
                found.update(f"keras_sgm.{a.name}" for a in node.names)
            elif node.module.startswith("keras_sgm."):
                found.add(node.module)
    return found


def _modules():
    deprecated = {"training", "benchmark", "demo", "space", "faces", "_deprecated"}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) == 2 and parts[1] in deprecated or parts == ("keras_sgm",):
            continue  # aliases of the new modules, and the package's own re-exports
        yield ".".join(parts), path


def test_imports_point_one_way_core_runs_hub_serving():
    backwards = []
    for module, path in _modules():
        mine = LAYERS[_layer(module)]
        for imported in _imports(path):
            if LAYERS[_layer(imported)] > mine:
                backwards.append(f"{module} imports {imported}")
    assert not backwards, backwards


def test_distribution_helpers_import_no_model_and_the_model_imports_no_run():
    for name in ("strategy", "collectives", "multiworker"):
        imported = _imports(PACKAGE / "distribute" / f"{name}.py")
        assert not any(m.startswith("keras_sgm.model") for m in imported), (name, imported)
    assert not any(m.startswith("keras_sgm.runs") for m in _imports(PACKAGE / "model.py"))


@pytest.mark.parametrize(
    "old, name, new",
    [
        ("keras_sgm.training", "TrainConfig", "keras_sgm.runs.config"),
        ("keras_sgm.training", "train", "keras_sgm.runs.training"),
        ("keras_sgm.training", "evaluate_model", "keras_sgm.evaluation.report"),
        ("keras_sgm.benchmark", "run_benchmark", "keras_sgm.runs.benchmark"),
        ("keras_sgm.demo", "ExpressionDemo", "keras_sgm.serving.engine"),
        ("keras_sgm.demo", "ensure_demo_model", "keras_sgm.serving.default_model"),
        ("keras_sgm.faces", "read_photo", "keras_sgm.serving.faces"),
        ("keras_sgm.space", "write_space", "keras_sgm.serving.space"),
    ],
)
def test_old_import_paths_resolve_to_the_new_names_with_a_warning(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} is deprecated.*{new}"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        module.nothing_here  # noqa: B018


def test_the_keras_range_is_the_one_pyproject_pins(monkeypatch):
    text = (PACKAGE.parent / "pyproject.toml").read_text()
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


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([0, 1, 2.5]), "row 2 holds 2.5"),
        (np.array([0.0, np.nan]), "row 1 holds nan"),
        (np.array(["a", "b"]), "integer class ids; received dtype <U1"),
        (np.array([[0, 1], [1, 0]]), r"shape \[n\]; received shape \(2, 2\)"),
        (np.array([0, 2**24]), "class id 16777216 at row 1 is too large"),
    ],
)
def test_every_class_id_check_names_the_row_and_value(labels, message):
    with pytest.raises(ValueError, match=message):
        _validation.class_ids(labels, "labels")


def test_class_ids_accept_whole_floats_and_columns_and_count_rows():
    ids = _validation.class_ids(np.array([[3.0], [40213.0]]), "y")
    assert ids.dtype == np.int64 and ids.tolist() == [3, 40213]
    with pytest.raises(ValueError, match="the inputs hold 3 rows but y hold 2"):
        _validation.class_ids([1, 2], "y", n=3)


def test_the_same_check_guards_the_sampler_the_gallery_and_fit_gaussians():
    from keras_sgm.data import ClassBalancedSampler
    from keras_sgm.hub import Gallery

    bad = np.array([0, 1, 1.5, 0])
    with pytest.raises(ValueError, match="row 2 holds 1.5"):
        ClassBalancedSampler(np.zeros((4, 2), "float32"), bad, samples_per_class=2)
    with pytest.raises(ValueError, match="Gallery labels must be whole class ids; row 2"):
        Gallery(np.zeros((4, 2), "float32"), bad)


def test_package_data_lies_inside_the_package():
    from keras_sgm.hub import TEMPLATE
    from keras_sgm.serving import space

    assert TEMPLATE.is_relative_to(PACKAGE) and TEMPLATE.is_file()
    for name in space.SPACE_FILES:
        assert (space.TEMPLATE_DIR / name).is_file()
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    assert '"keras_sgm.hub" = ["model_card_template.md"]' in text
    assert '"keras_sgm.serving" = ["space_template/*"]' in text
