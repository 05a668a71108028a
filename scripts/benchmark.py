"""Train several methods and backbones with identical settings; write the paper's tables.

    python scripts/benchmark.py --methods sgm triplet ce --archs fmpnet resnet18 --epochs 5
    python scripts/benchmark.py --config configs/paper.yaml --dataset image_folder --data-dir DATA

Takes every flag of scripts/train.py, plus --methods and --archs; writes
OUTPUT/benchmark.md, OUTPUT/benchmark.json and one run folder per pair.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train import build_parser, read_config_file  # noqa: E402

from keras_sgm.training import METHODS, TrainConfig, run_benchmark  # noqa: E402


def main(argv=None):
    parser = build_parser()
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--archs", nargs="+", default=["fmpnet"])
    args = vars(parser.parse_args(argv))
    methods, archs = args.pop("methods"), args.pop("archs")
    values = read_config_file(args.pop("config")) if args.get("config") else {}
    values.update({k: v for k, v in args.items() if v is not None})
    values.setdefault("output", "runs/benchmark")
    try:
        config = TrainConfig.from_dict(values)
        for arch in archs:  # fail on a bad name before any training
            TrainConfig.from_dict({**values, "arch": arch})
        for method in methods:
            TrainConfig.from_dict({**values, "method": method})
        results = run_benchmark(config, methods, archs)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        json.dumps([{k: r[k] for k in ("method", "arch", "nmi", "knn_accuracy")} for r in results])
    )
    print(f"Tables in {config.output}/benchmark.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
