"""How the package's modules import each other: one way through the layers, not the root, no circle.

The rules are read from the source (every import statement, at a module's top or inside a
function), and the root's lazy names are checked in fresh processes, where `sys.modules`
says what an import really loaded.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import keras_sgm

PACKAGE = Path(keras_sgm.__file__).parent

LAYERS = {"core": 0, "runs": 1, "hub": 2, "serving": 3}
"""core <- runs <- hub <- serving: a module may import its own layer and the ones before it."""


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
"""Every module of the package, the root included: `{"keras_sgm.losses": path, ...}`."""


def _layer(module):
    """The layer of a `keras_sgm...` module name (anything not named in LAYERS is core)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def _imports(module):
    """`(imported module, line)` for every `keras_sgm` import of `module`, top-level or local.

    `from keras_sgm.data import sampler` imports `keras_sgm.data.sampler` when that is a
    module of its own, and `keras_sgm.data` when `sampler` is a name the package defines.
    """
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("keras_sgm")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "keras_sgm" or node.module.startswith("keras_sgm."):
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    found.append((submodule if submodule in MODULES else node.module, node.lineno))
    return found


def _graph():
    return {module: {name for name, _ in _imports(module)} - {module} for module in MODULES}


def test_the_walk_sees_every_module_and_import():
    assert {"keras_sgm", "keras_sgm.losses", "keras_sgm.serving.app"} <= set(MODULES)
    assert {"keras_sgm.gaussian_head", "keras_sgm.data", "keras_sgm._compat"} <= _graph()[
        "keras_sgm"
    ]
    assert "keras_sgm.deploy" in _graph()["keras_sgm.serving.runtime"]


def test_imports_point_one_way_core_runs_hub_serving():
    backwards = [
        f"{module} imports {imported} (line {line})"
        for module in MODULES
        for imported, line in _imports(module)
        if LAYERS[_layer(imported)] > LAYERS[_layer(module)]
    ]
    assert not backwards, backwards


def test_no_module_imports_the_package_root():
    offenders = [
        f"{module}, line {line}"
        for module in MODULES
        if module != "keras_sgm"
        for imported, line in _imports(module)
        if imported == "keras_sgm"
    ]
    assert not offenders, f"these import the package root (import its module instead): {offenders}"


def test_no_module_imports_itself_back_through_a_circle():
    graph = _graph()
    circles = []
    done, path = set(), []

    def visit(module):
        if module in path:
            circles.append(" -> ".join([*path[path.index(module) :], module]))
            return
        if module in done:
            return
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not circles, circles


def test_the_distribution_helpers_import_no_model_and_the_model_no_run():
    for name in ("strategy", "collectives", "multiworker"):
        imported = _graph()[f"keras_sgm.distribute.{name}"]
        assert not any(m.startswith("keras_sgm.model") for m in imported), (name, imported)
    assert not any(m.startswith("keras_sgm.runs") for m in _graph()["keras_sgm.model"])


def _loaded_by(statement):
    """The `keras_sgm` modules a fresh Python process holds after `statement`."""
    code = (
        f"import json, sys\n{statement}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('keras_sgm'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", ["import keras_sgm.losses", "import keras_sgm"])
def test_the_core_loads_no_run_hub_serving_or_deploy_module(statement):
    loaded = _loaded_by(statement)
    assert "keras_sgm.losses" in loaded and "keras_sgm.gaussian_head" in loaded
    above = [m for m in loaded if _layer(m) != "core" or m == "keras_sgm.deploy"]
    assert not above, above


def test_the_roots_lazy_names_are_imported_on_first_use():
    loaded = _loaded_by(
        "import keras_sgm\n"
        "assert 'hub' in dir(keras_sgm) and 'export' in dir(keras_sgm)\n"
        "from keras_sgm import deploy, hub\n"
        "from keras_sgm.hub import repo\n"
        "assert keras_sgm.export is deploy.export and keras_sgm.deploy is deploy\n"
        "assert keras_sgm.from_pretrained is repo.from_pretrained and keras_sgm.hub is hub"
    )
    assert {"keras_sgm.deploy", "keras_sgm.hub", "keras_sgm.hub.repo"} <= set(loaded)
    with pytest.raises(AttributeError, match="module 'keras_sgm' has no attribute 'nothing_here'"):
        keras_sgm.nothing_here  # noqa: B018
