"""Benchmarks in the paper's layout: every method x backbone x seed, in-domain and cross-domain.

`run_benchmark` trains one run per (seed, method, backbone) with otherwise
identical settings (`keras_sgm.runs.train`), evaluates each trained model
on the test split of further datasets when asked, and writes:

- `benchmark.json`: every run's metrics;
- `benchmark.md`: Table 1 (k-means NMI of the test split of each evaluation
  dataset, embedded by one trained model: the paper's cross-domain layout),
  the in-domain clustering table, Table 2 (classification: the softmax CNN's
  own head, kNN on its features, and kNN on the TripletLoss and SGMLoss
  embeddings), the training time, and how many seeds stand behind each
  number (mean and sample standard deviation);
- `figures/retrieval_<arch>.png` (Fig. 3: Recall@K and Acc@K of the methods
  on one plot) and `figures/f1_vs_k_<arch>.png` (Fig. 5: F1 against K).

Evaluation datasets are matched to the model by expression name
(`keras_sgm.data.expressions.expression_key`), and k-means uses k = the number
of classes in each evaluation set's test split (8 for FER+, AffectNet and CK+;
7 for JAFFE and BU-3DFE, which lack contempt).

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition,
    section 4.2, Tables 1 and 2, Figures 3 and 5.
"""

import dataclasses
from pathlib import Path

import keras
import numpy as np

from keras_sgm._files import write_json
from keras_sgm.data.expressions import expression_key
from keras_sgm.data.names import DATASETS
from keras_sgm.evaluation.metrics import cluster_f1, kmeans_clusters, nmi
from keras_sgm.evaluation.open_set import KINDS
from keras_sgm.runs.config import METHODS, TrainConfig
from keras_sgm.runs.datasets import class_names_of, load_test_split
from keras_sgm.runs.rundir import RunDir
from keras_sgm.runs.training import train
from keras_sgm.viz import plot_f1_vs_k_comparison, plot_retrieval_comparison

ARCH_NAMES = {
    "fmpnet": "FMPNet",
    "cvgg13": "CVGG13",
    "alexnet": "AlexNet",
    "resnet18": "ResNet18",
    "preact_resnet18": "PreActResNet18",
}
"""How the tables name each backbone (the paper's names)."""

DATASET_NAMES = {name: d.short for name, d in DATASETS.items()}
"""How the tables name each dataset (the paper's names where it has them)."""

_TABLE_2_METRICS = ("accuracy", "precision", "recall", "f1", "macro_f1")


@dataclasses.dataclass(frozen=True)
class EvalDataset:
    """A dataset whose test split every trained model of a benchmark is evaluated on.

    Attributes:
        name: a dataset of `keras_sgm.data.names.DATASETS`.
        data_dir: its folder (the manual download, or an image folder's root),
            None for the datasets that ship with keras_sgm.
    """

    name: str
    data_dir: str | None = None

    @classmethod
    def parse(cls, spec):
        """`"NAME"` or `"NAME=DATA_DIR"` (the command line's `--eval-datasets` items).

        Examples:
            >>> EvalDataset.parse("jaffe=/data/jaffe")
            EvalDataset(name='jaffe', data_dir='/data/jaffe')
        """
        if isinstance(spec, cls):
            return spec
        name, _, data_dir = str(spec).partition("=")
        name, data_dir = name.strip(), data_dir.strip() or None
        if not name:
            raise ValueError(f"Evaluation dataset {spec!r} has no name; write NAME or NAME=DIR.")
        if name == "image_folder" and data_dir is None:
            raise ValueError(
                f"Evaluation dataset {spec!r} needs its folder: write image_folder=DIR "
                "(DIR/test/<class>/*)."
            )
        return cls(name, data_dir)

    @property
    def label(self):
        """The column name in Table 1 (an image folder adds its folder's name)."""
        if self.name == "image_folder":
            return f"image_folder:{Path(self.data_dir).name}"
        return DATASET_NAMES.get(self.name, self.name)

    def config(self, base):
        """The `TrainConfig` that loads this dataset at `base`'s input size and channels."""
        try:
            return TrainConfig(
                dataset=self.name,
                data_dir=self.data_dir,
                tfds_dir=base.tfds_dir,
                image_size=base.image_size,
                channels=base.channels,
                seed=base.seed,
                output=base.output,
            ).validated()
        except ValueError as error:
            raise ValueError(
                f"Evaluation dataset {self.name!r}: {error} (--eval-datasets {self.name}=DIR)"
            ) from error


def _unique(values, what):
    seen, repeated = set(), []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    if repeated:
        raise ValueError(f"{what} lists {repeated} more than once; give each once.")
    if not values:
        raise ValueError(f"{what} is empty; give at least one.")
    return list(values)


def plan_runs(config, methods, archs, seeds=None):
    """The `TrainConfig` of every run of a benchmark, all validated before any trains.

    Each run goes to `OUTPUT/<method>_<arch>/`, or `OUTPUT/<method>_<arch>/seed_<s>/`
    when `seeds` is given. Unknown or repeated methods, backbones or seeds raise
    a ValueError that names them.

    Returns:
        A list of `TrainConfig`, seeds outermost, then methods, then backbones.
    """
    methods = _unique(list(methods), "methods")
    archs = _unique(list(archs), "archs")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; choose from {list(METHODS)}.")
    per_seed = seeds is not None
    if per_seed:
        bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int | np.integer)]
        if bad:
            raise ValueError(f"Seeds must be integers; received {bad}.")
        seeds = _unique([int(s) for s in seeds], "seeds")
    else:
        seeds = [config.seed]
    root = Path(config.output)
    runs = []
    for seed in seeds:
        for method in methods:
            for arch in archs:
                out = root / f"{method}_{arch}"
                if per_seed:
                    out = out / f"seed_{seed}"
                runs.append(config.updated(method=method, arch=arch, seed=seed, output=str(out)))
    return runs


def match_classes(eval_names, eval_labels, model_names, label):
    """The evaluation labels as the model's class ids, matched by expression name.

    Args:
        eval_names: the evaluation dataset's class names (its label order).
        eval_labels: int labels `[n]` of its test split.
        model_names: the trained model's class names.
        label: how messages name the evaluation dataset.

    Returns:
        int64 `[n]`: each example's class id in `model_names`.

    Raises:
        ValueError: naming every class of the test split that matches none of
            the model's classes, or the classes the model has twice.

    Examples:
        >>> match_classes(["Happy", "sad"], [0, 1, 1], ["sadness", "happiness"], "mine").tolist()
        [1, 0, 0]
    """
    keys = [expression_key(n) for n in model_names]
    doubled = sorted({k for k in keys if keys.count(k) > 1})
    if doubled:
        raise ValueError(f"The model's classes {list(model_names)} name {doubled} more than once.")
    index = {k: i for i, k in enumerate(keys)}
    labels = np.asarray(eval_labels, "int64")
    present = [int(c) for c in np.unique(labels)]
    absent = [eval_names[c] for c in present if expression_key(eval_names[c]) not in index]
    if absent:
        raise ValueError(
            f"Evaluation dataset {label}: its classes {absent} match none of the model's "
            f"{len(model_names)} classes {list(model_names)} (expressions are matched by name, "
            "case and common aliases aside)."
        )
    mapping = np.array([index.get(expression_key(n), -1) for n in eval_names], "int64")
    return mapping[labels]


def load_eval_set(spec, base, model_names, label=None):
    """`(images, labels in the model's ids)` of an evaluation dataset's test split (alone)."""
    images, labels, names = load_test_split(spec.config(base))
    return images, match_classes(names, labels, model_names, label or spec.label)


def cross_domain_scores(model, images, labels, seed=0):
    """k-means NMI and pairwise F1 of a test split embedded by `model` (one Table 1 cell).

    k is the number of classes in `labels`.
    """
    embeddings = model.predict(images, verbose=0)
    k = int(np.unique(labels).size)
    clusters = kmeans_clusters(embeddings, k, seed=seed)
    return {
        "nmi": nmi(labels, clusters),
        "cluster_f1": cluster_f1(labels, clusters),
        "k": k,
        "examples": int(len(labels)),
    }


_REUSE_MAY_DIFFER = ("verbose", "resume", "overwrite", "output")
"""Settings a finished run may differ in and still be reused by a resumed benchmark."""


def _train_or_reuse(run):
    """`train(run)`; with `run.resume` an interrupted run resumes, a missing one starts, and a
    finished one is read back if it ran these very settings with this version's metrics
    (else it is refused, or retrained with `overwrite`)."""
    out = RunDir(run.output)
    if not run.resume or out.backup.is_dir():
        return train(run)
    if not out.finished or run.overwrite:
        return train(dataclasses.replace(run, resume=False))
    if not out.config_path.is_file():
        raise ValueError(
            f"{out.path} holds metrics.json but no config.json to tell what it ran; pass "
            "--overwrite to retrain it, or choose another --output."
        )
    details = out.changed_settings(run, may_differ=_REUSE_MAY_DIFFER)
    if details:
        raise ValueError(
            f"{out.path} holds a finished run with other settings ({details}); pass --overwrite "
            "to retrain it, or choose another --output."
        )
    metrics = out.read_metrics()
    if "knn_macro_f1" not in metrics:
        raise ValueError(
            f"{out.metrics_path} was written by an older keras_sgm, whose knn_f1 was the mean of "
            "per-class F1 (and whose CNN runs lack the softmax head's scores); pass --overwrite "
            "to retrain it, or evaluate it again with scripts/evaluate.py."
        )
    return metrics


def run_benchmark(config, methods, archs, seeds=None, eval_datasets=()):
    """Train every seed x method x backbone with the same settings; write the paper's tables.

    Everything that can be checked is checked before the first run trains:
    the methods, backbones and seeds (unknown or repeated ones), and the
    evaluation datasets (loaded, and their classes matched to the training
    classes by name).

    Args:
        config: a `TrainConfig` (or dict) holding the settings every run shares.
        methods: method names (`"sgm"`, `"triplet"`, `"ce"`).
        archs: backbone names.
        seeds: optional list of int seeds; each (method, backbone) trains once
            per seed, in `OUTPUT/<method>_<arch>/seed_<s>/`. Default: the
            config's seed, in `OUTPUT/<method>_<arch>/`.
        eval_datasets: `EvalDataset`s or `"NAME[=DIR]"` strings whose test
            splits every trained model is evaluated on (Table 1).

    Returns:
        The list of per-run metrics dicts, each with `seed`, and with
        `cross_domain` `{dataset label: {nmi, cluster_f1, k, examples}}` when
        `eval_datasets` are given.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    runs = plan_runs(config, methods, archs, seeds)
    specs = [EvalDataset.parse(spec) for spec in eval_datasets]
    if specs:
        _unique(specs, "eval_datasets")
    labels = [spec.label for spec in specs]
    # Two image folders of the same name: their full paths tell the columns apart.
    labels = [
        f"image_folder:{spec.data_dir}" if labels.count(label) > 1 else label
        for spec, label in zip(specs, labels)
    ]
    model_names = class_names_of(config)
    eval_sets = {
        label: load_eval_set(spec, config, model_names, label) for spec, label in zip(specs, labels)
    }

    results = []
    for run in runs:
        metrics = _train_or_reuse(run)
        if eval_sets:
            model = keras.saving.load_model(RunDir(run.output).model_path)
            metrics["cross_domain"] = {
                label: cross_domain_scores(model, images, labels, seed=run.seed)
                for label, (images, labels) in eval_sets.items()
            }
            RunDir(run.output).write_metrics(metrics)
        metrics.setdefault("seed", run.seed)
        results.append(metrics)
    root = Path(config.output)
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "benchmark.json", results)
    figures = write_figures(results, root / "figures")
    markdown = benchmark_markdown(results, config, list(eval_sets), figures, root)
    (root / "benchmark.md").write_text(markdown)
    return results


def _groups(results):
    """`{(method, arch): [metrics of each seed]}`, in the order the runs came."""
    groups = {}
    for metrics in results:
        groups.setdefault((metrics["method"], metrics["arch"]), []).append(metrics)
    return groups


def _cell(values, scale=100.0, digits=3):
    """`mean ± sd` (sample standard deviation) of the finite values; `-` when there are none."""
    values = np.asarray([v for v in values if v is not None], "float64") * scale
    if values.size == 0:
        return "-"
    if values.size == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def _seeds(group):
    return ", ".join(str(m.get("seed", "?")) for m in group)


def _names(method, arch):
    return METHODS.get(method, method), ARCH_NAMES.get(arch, arch)


def benchmark_markdown(results, config, eval_labels=(), figures=(), root=None):
    """The paper's Tables 1 and 2 (and the in-domain clustering and training time) as Markdown.

    Every cell is the mean ± sample standard deviation over the seeds of its
    row (the `Seeds` column names them); one seed gives the value alone.
    """
    groups = _groups(results)
    counts = sorted({len(g) for g in groups.values()})
    seeds_note = (
        f"{counts[0]} seed(s) per row" if len(counts) == 1 else f"{counts} seeds per row (see each)"
    )
    dataset = DATASET_NAMES.get(config.dataset, config.dataset)
    lines = [
        f"# Benchmark: trained on {dataset}, {config.epochs} epochs, {seeds_note}",
        "",
        "Percent; with several seeds a cell is the mean ± the sample standard deviation over",
        "the seeds its row lists. Precision and recall are macro averages; F1 is the paper's",
        "2PR / (P + R) of them, and `mean F1` the mean of the per-class F1 scores.",
        "",
    ]
    if eval_labels:
        lines += _table_1(groups, eval_labels)
    lines += _clustering_table(groups, dataset)
    lines += _table_2(groups, dataset, config.knn_k)
    lines += _calibration_table(groups, dataset)
    lines += _open_set_table(groups)
    lines += _time_table(groups)
    if figures:
        lines += ["", "## Figures", ""]
        for path in figures:
            shown = Path(path).relative_to(root) if root is not None else Path(path)
            lines.append(f"![{Path(path).stem}]({shown.as_posix()})")
    return "\n".join(lines) + "\n"


def _row(method, arch, cells, group):
    """A table row: the method and backbone, the cells, and the seeds behind them."""
    return f"| {' | '.join(_names(method, arch))} | {' | '.join(cells)} | {_seeds(group)} |"


def _table_1(groups, eval_labels):
    """Table 1: k-means NMI of every evaluation dataset's test split, per trained model."""
    lines = [
        "## Table 1: clustering across domains (k-means NMI of each test split)",
        "",
        "One trained model embeds the test split of every evaluation dataset; k-means uses",
        "k = the number of classes in that split.",
        "",
        "| Method | Arch. | " + " | ".join(eval_labels) + " | Seeds |",
        "|---|---|" + "---|" * len(eval_labels) + "---|",
    ]
    for (method, arch), group in groups.items():
        cells = [
            _cell(m.get("cross_domain", {}).get(label, {}).get("nmi") for m in group)
            for label in eval_labels
        ]
        lines.append(_row(method, arch, cells, group))
    first = next(iter(groups.values()))[0].get("cross_domain", {})
    ks = ", ".join(f"{label}: k = {first[label]['k']}" for label in eval_labels if label in first)
    return [*lines, "", f"k per dataset: {ks}.", ""]


def _clustering_table(groups, dataset):
    lines = [
        f"## Clustering on the test split of {dataset} (k-means, k = its classes)",
        "",
        "| Method | Arch. | NMI | Cluster F1 | Seeds |",
        "|---|---|---|---|---|",
    ]
    for (method, arch), group in groups.items():
        cells = [_cell(m["nmi"] for m in group), _cell(m["cluster_f1"] for m in group)]
        lines.append(_row(method, arch, cells, group))
    return lines


def _table_2(groups, dataset, knn_k):
    """Table 2: the softmax CNN's own head, and kNN on every embedding."""
    lines = [
        "",
        f"## Table 2: classification on the test split of {dataset}",
        "",
        "CNN rows score the softmax classifier's own predictions (the paper's CNN rows);",
        f"every other row is kNN with K = {knn_k} on the embedding (`CNN features`: the",
        "softmax CNN's penultimate layer).",
        "",
        "| Method | Arch. | Acc. | Prec. | Rec. | F1 | mean F1 | Seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (method, arch), group in groups.items():
        method_name, arch_name = _names(method, arch)
        rows = []
        if method == "ce":
            if all("classifier_accuracy" in m for m in group):
                rows.append((method_name, "classifier"))
            rows.append(("CNN features + kNN", "knn"))
        else:
            rows.append((method_name, "knn"))
        for name, prefix in rows:
            cells = [_cell(m.get(f"{prefix}_{key}") for m in group) for key in _TABLE_2_METRICS]
            lines.append(f"| {name} | {arch_name} | {' | '.join(cells)} | {_seeds(group)} |")
    return lines


_PROBABILITIES = (("bayes", "Bayes posteriors"), ("knn", "kNN vote share"), ("softmax", "softmax"))


def _calibration_table(groups, dataset):
    """How far each model's probabilities are from calibrated: ECE (15 bins), NLL, Brier."""
    lines = [
        "",
        f"## Calibration on the test split of {dataset}",
        "",
        "ECE (15 equal-width bins), NLL and Brier score of each set of probabilities: the",
        "Gaussians' Bayes posteriors (with the sigma fitted on the validation split when the run",
        "had one), the kNN vote share and the softmax CNN's own. Lower is better; ECE in percent.",
        "",
        "| Method | Arch. | Probabilities | Acc. | ECE | NLL | Brier | Seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (method, arch), group in groups.items():
        method_name, arch_name = _names(method, arch)
        for key, title in _PROBABILITIES:
            scores = [m.get("calibration", {}).get(key) for m in group]
            if not all(scores):
                continue
            cells = [
                _cell(s["accuracy"] for s in scores),
                _cell(s["ece"] for s in scores),
                _cell((s["nll"] for s in scores), scale=1.0),
                _cell((s["brier"] for s in scores), scale=1.0),
            ]
            lines.append(
                f"| {method_name} | {arch_name} | {title} | {' | '.join(cells)} | {_seeds(group)} |"
            )
    return lines


_SCORES = (
    ("gaussian", "Gaussian score"),
    ("max_posterior", "max posterior"),
    ("softmax", "max softmax"),
)


def _open_set_table(groups):
    """AUROC of each "is this known?" score against each kind of unknown input."""
    kinds = [
        k for k in KINDS if any(k in m.get("open_set", {}) for g in groups.values() for m in g)
    ]
    if not kinds:
        return []
    lines = [
        "",
        "## Unknown inputs (AUROC, percent)",
        "",
        "How well each score tells the known test images from unknown ones (100: perfectly,",
        "50: chance): the Gaussians' largest class log-likelihood, the Bayes posterior's",
        "largest probability, and the softmax CNN's largest probability (the usual baseline).",
        "",
        "| Method | Arch. | Score | " + " | ".join(kinds) + " | Seeds |",
        "|---|---|---|" + "---|" * len(kinds) + "---|",
    ]
    for (method, arch), group in groups.items():
        method_name, arch_name = _names(method, arch)
        for key, title in _SCORES:
            if not any(key in v for m in group for v in m.get("open_set", {}).values()):
                continue
            cells = [_cell(m.get("open_set", {}).get(k, {}).get(key) for m in group) for k in kinds]
            lines.append(
                f"| {method_name} | {arch_name} | {title} | {' | '.join(cells)} | {_seeds(group)} |"
            )
    return lines


def _time_table(groups):
    lines = [
        "",
        "## Training time",
        "",
        "| Method | Arch. | s / epoch | Seeds |",
        "|---|---|---|---|",
    ]
    for (method, arch), group in groups.items():
        seconds = _cell((m.get("train_seconds_per_epoch") for m in group), scale=1.0, digits=1)
        lines.append(_row(method, arch, [seconds], group))
    return lines


def _mean_curve(group, key):
    """`{K: mean over the seeds}` of a per-run `{K: value}` dict (keys int or str)."""
    values = {}
    for metrics in group:
        for k, v in metrics.get(key, {}).items():
            values.setdefault(int(k), []).append(float(v))
    return {k: float(np.mean(v)) for k, v in sorted(values.items())}


def write_figures(results, folder):
    """The paper's Figures 3 and 5 for each backbone, over its methods (mean over seeds).

    Returns:
        The paths written: `retrieval_<arch>.png` and `f1_vs_k_<arch>.png`.
    """
    by_arch = {}
    for (method, arch), group in _groups(results).items():
        label = METHODS.get(method, method) + (" features" if method == "ce" else "")
        by_arch.setdefault(arch, {})[label] = group
    written = []
    for arch, methods in by_arch.items():
        retrieval = {
            label: (_mean_curve(g, "recall_at_k"), _mean_curve(g, "acc_at_k"))
            for label, g in methods.items()
            if _mean_curve(g, "recall_at_k")
        }
        f1 = {label: _mean_curve(g, "f1_vs_k") for label, g in methods.items()}
        title = ARCH_NAMES.get(arch, arch)
        if retrieval:
            written.append(
                plot_retrieval_comparison(retrieval, Path(folder) / f"retrieval_{arch}.png", title)
            )
        written.append(plot_f1_vs_k_comparison(f1, Path(folder) / f"f1_vs_k_{arch}.png", title))
    return written
