"""Which method embeds best, where they can differ? SGM, triplet and the softmax CNN, tuned alike.

A study is a set of **regimes** (named settings that make a training set harder, e.g.
`train_per_class=30 epochs=40`) and a **grid** (settings every method is tried with, the same
values and seeds for each, e.g. `learning_rate=1e-4,3e-4`). Every regime x grid point is one
`run_benchmark` of the methods x backbones x seeds, in `OUTPUT/<regime>/<point>/`; a finished run
is read back when the study is run again, so a study can be extended one regime at a time.

For each cell the study reports, as mean ± sample standard deviation over the seeds (percent),
kNN(11) accuracy and k-means NMI on the test split, the softmax CNN's own head accuracy, SGM's
Bayes accuracy, and the issue's targets for SGM against the baselines on the same backbone:

- `kNN - CE`: SGM's kNN accuracy minus the better of the CNN's head and kNN on its features
  (target >= +0.5 points);
- `kNN - triplet` (target >= 0) and `NMI - best`: SGM's NMI minus the better baseline's (>= 0).
"""

import itertools
from pathlib import Path

import numpy as np

from keras_sgm._files import write_json
from keras_sgm.runs.benchmark import run_benchmark
from keras_sgm.runs.cli import with_settings

TARGET_OVER_CE = 0.5
"""Points of kNN accuracy SGM must lead the softmax CNN by (the better of its head and kNN)."""


def parse_regimes(items):
    """`{name: ["key=value", ...]}` of `[[name, "key=value", ...], ...]` (`--regime` flags)."""
    regimes = {}
    for item in items or [["default"]]:
        name, *pairs = item
        if "=" in name:
            raise ValueError(f"--regime {' '.join(item)}: the first word names the regime.")
        if name in regimes:
            raise ValueError(f"--regime {name!r} is given twice.")
        regimes[name] = list(pairs)
    return regimes


def grid_points(grid):
    """Every combination of `["key=v1,v2", ...]` (`--grid` flags), as lists of `"key=value"`."""
    axes = []
    for item in grid or []:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ValueError(f"--grid {item!r}: expected KEY=VALUE[,VALUE...].")
        axes.append([f"{key}={value}" for value in values.split(",")])
    keys = [axis[0].partition("=")[0] for axis in axes]
    if len(set(keys)) != len(keys):
        raise ValueError(f"--grid names a setting twice: {keys}.")
    return [list(point) for point in itertools.product(*axes)]


def _label(pairs):
    return ",".join(pairs) if pairs else "defaults"


def run_study(config, regimes, grid, methods, archs, seeds):
    """Train every regime x grid point x method x backbone x seed; write `study.json`/`.md`.

    Args:
        config: the `TrainConfig` every run starts from; its `output` is the study's folder.
        regimes: `{name: ["key=value", ...]}` (`parse_regimes`).
        grid: `["key=v1,v2", ...]`, tried alike for every method (`grid_points`).
        methods, archs, seeds: as for `run_benchmark`.

    Returns:
        The list of cells, each `{"regime", "point", "rows", "targets"}` (`summarize`).
    """
    root = Path(config.output)
    points = grid_points(grid)
    plans = []  # every setting is checked before the first run trains
    for name, pairs in regimes.items():
        for point in points:
            output = root / name / _label(point)
            run = with_settings(config, [*pairs, *point, f"output={output}", "resume=true"])
            plans.append((name, _label(point), run))
    cells = []
    for name, point, run in plans:
        results = run_benchmark(run, methods, archs, seeds)
        cells.append({"regime": name, "point": point, **summarize(results)})
        write_json(root / "study.json", cells)
        (root / "study.md").write_text(markdown(cells, config))
    return cells


_COLUMNS = (
    ("knn_accuracy", "kNN(11) acc."),
    ("nmi", "k-means NMI"),
    ("classifier_accuracy", "CE head acc."),
    ("bayes_accuracy", "Bayes acc."),
)


def _stats(values):
    values = np.array([v for v in values if v is not None], "float64") * 100.0
    if values.size == 0:
        return None
    spread = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {"mean": float(values.mean()), "sd": spread, "seeds": int(values.size)}


def summarize(results):
    """`{"rows": {method/arch: {metric: stats}}, "targets": {arch: {...}}}` of one benchmark."""
    groups = {}
    for metrics in results:
        groups.setdefault((metrics["method"], metrics["arch"]), []).append(metrics)
    rows = {
        f"{method}/{arch}": {key: _stats(m.get(key) for m in group) for key, _ in _COLUMNS}
        for (method, arch), group in groups.items()
    }
    targets = {}
    for arch in dict.fromkeys(arch for _, arch in groups):

        def mean(method, key, arch=arch):
            stats = rows.get(f"{method}/{arch}", {}).get(key)
            return None if stats is None else stats["mean"]

        sgm_knn, sgm_nmi = mean("sgm", "knn_accuracy"), mean("sgm", "nmi")
        ce = [mean("ce", "classifier_accuracy"), mean("ce", "knn_accuracy")]
        ce = [v for v in ce if v is not None]
        baselines_nmi = [v for v in (mean("triplet", "nmi"), mean("ce", "nmi")) if v is not None]
        targets[arch] = {
            "knn_minus_ce": None if sgm_knn is None or not ce else sgm_knn - max(ce),
            "knn_minus_triplet": (
                None
                if sgm_knn is None or mean("triplet", "knn_accuracy") is None
                else sgm_knn - mean("triplet", "knn_accuracy")
            ),
            "nmi_minus_best": (
                None if sgm_nmi is None or not baselines_nmi else sgm_nmi - max(baselines_nmi)
            ),
        }
    return {"rows": rows, "targets": targets}


def _cell(stats):
    if stats is None:
        return "-"
    return f"{stats['mean']:.2f} ± {stats['sd']:.2f}"


def _verdict(value, bar):
    if value is None:
        return "-"
    return f"{value:+.2f} ({'met' if value >= bar else 'not met'})"


def markdown(cells, config):
    """The study's tables: one per regime x grid point, then the targets of each."""
    lines = [
        f"# Method study on {config.dataset}",
        "",
        "Percent, mean ± sample standard deviation over the seeds (the `n` column).",
        "",
    ]
    for cell in cells:
        lines += [
            f"## {cell['regime']}, {cell['point']}",
            "",
            "| run | " + " | ".join(title for _, title in _COLUMNS) + " | n |",
            "|---" * (len(_COLUMNS) + 2) + "|",
        ]
        for name, row in cell["rows"].items():
            seeds = max((s["seeds"] for s in row.values() if s), default=0)
            cells_text = " | ".join(_cell(row[key]) for key, _ in _COLUMNS)
            lines.append(f"| {name} | {cells_text} | {seeds} |")
        lines += ["", "| backbone | SGM kNN - CE | SGM kNN - triplet | SGM NMI - best |"]
        lines.append("|---|---|---|---|")
        for arch, target in cell["targets"].items():
            lines.append(
                f"| {arch} | {_verdict(target['knn_minus_ce'], TARGET_OVER_CE)} | "
                f"{_verdict(target['knn_minus_triplet'], 0.0)} | "
                f"{_verdict(target['nmi_minus_best'], 0.0)} |"
            )
        lines.append("")
    return "\n".join(lines)
