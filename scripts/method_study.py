"""SGM against triplet loss and the softmax CNN where they can differ, every method tuned alike.

    python scripts/method_study.py --dataset mnist --image-size 32 --seeds 0 1 2 \
        --regime n30 train_per_class=30 epochs=40 --regime n100 train_per_class=100 epochs=15
    python scripts/method_study.py --dataset mnist --image-size 32 --seeds 0 1 2 \
        --regime n30 train_per_class=30 epochs=40 --grid learning_rate=1e-4,3e-4 \
        --archs fmpnet resnet18

Takes every flag of scripts/train.py (the settings every run shares), plus --methods, --archs,
--seeds, --regime NAME KEY=VALUE ... (repeatable: named settings on top of the shared ones) and
--grid KEY=V1,V2 (repeatable: every combination is tried, alike for every method). Writes
OUTPUT/study.md and OUTPUT/study.json (mean ± sd over the seeds, and SGM's margins over the
baselines), and one benchmark per regime and grid point in OUTPUT/<regime>/<point>/. Running it
again reads the finished runs back and trains only what is missing.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.runs.cli import config_parser, config_values  # noqa: E402
from keras_sgm.runs.config import METHODS, TrainConfig  # noqa: E402
from keras_sgm.runs.method_study import parse_regimes, run_study  # noqa: E402


def build_parser():
    parser = config_parser(__doc__)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--archs", nargs="+", default=["fmpnet"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--regime",
        nargs="+",
        action="append",
        metavar="NAME KEY=VALUE",
        help="a named regime: settings on top of the shared ones (repeatable)",
    )
    parser.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2",
        help="values tried alike for every method; every combination runs (repeatable)",
    )
    return parser


def main(argv=None):
    args = vars(build_parser().parse_args(argv))
    methods, archs, seeds = args.pop("methods"), args.pop("archs"), args.pop("seeds")
    regimes, grid = args.pop("regime"), args.pop("grid")
    try:
        config = TrainConfig.from_dict({"output": "runs/method_study", **config_values(args)})
        cells = run_study(config, parse_regimes(regimes), grid, methods, archs, seeds)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps([{k: c[k] for k in ("regime", "point", "targets")} for c in cells]))
    print(f"Tables in {config.output}/study.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
