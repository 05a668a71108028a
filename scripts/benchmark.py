"""Train several methods and backbones with identical settings; write the paper's tables.

    python scripts/benchmark.py --methods sgm triplet ce --archs fmpnet resnet18 --epochs 5
    python scripts/benchmark.py --config configs/paper.yaml --dataset image_folder --data-dir DATA
    python scripts/benchmark.py --methods sgm triplet --seeds 0 1 2        # mean and spread
    python scripts/benchmark.py --config configs/paper.yaml --dataset ferplus --data-dir FERPLUS \
        --eval-datasets ferplus=FERPLUS affectnet=AFFECTNET jaffe=JAFFE ckplus=CKPLUS bu3dfe=BU3DFE

Takes every flag of scripts/train.py, plus --methods, --archs, --seeds (one run per
seed, in OUTPUT/<method>_<arch>/seed_<s>/) and --eval-datasets NAME[=DIR] ... (the
k-means NMI of each dataset's test split embedded by every trained model: the
paper's Table 1). Writes OUTPUT/benchmark.md (Tables 1 and 2, with the seeds behind
each number), OUTPUT/benchmark.json, OUTPUT/figures/ (Figures 3 and 5) and one run
folder per run. With --resume, finished runs are read back, interrupted ones resumed
and missing ones trained.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.runs.benchmark import run_benchmark  # noqa: E402
from keras_sgm.runs.cli import config_parser, config_values  # noqa: E402
from keras_sgm.runs.config import METHODS, TrainConfig  # noqa: E402


def build_parser():
    parser = config_parser(__doc__)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--archs", nargs="+", default=["fmpnet"])
    parser.add_argument(
        "--seeds", nargs="+", type=int, help="train every pair once per seed (default: --seed)"
    )
    parser.add_argument(
        "--eval-datasets",
        nargs="+",
        default=[],
        metavar="NAME[=DIR]",
        help="also cluster the test split of each (Table 1); DIR: its manual download",
    )
    return parser


def main(argv=None):
    args = vars(build_parser().parse_args(argv))
    methods, archs = args.pop("methods"), args.pop("archs")
    seeds, eval_datasets = args.pop("seeds"), args.pop("eval_datasets")
    try:
        config = TrainConfig.from_dict({"output": "runs/benchmark", **config_values(args)})
        # run_benchmark checks every name, seed and evaluation set before it trains.
        results = run_benchmark(config, methods, archs, seeds, eval_datasets)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    keys = ("method", "arch", "seed", "nmi", "knn_accuracy")
    print(json.dumps([{k: r[k] for k in keys} for r in results]))
    print(f"Tables in {config.output}/benchmark.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
