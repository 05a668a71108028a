"""Evaluate a saved keras_sgm model with the paper's protocol (section 4.1).

    python scripts/evaluate.py --model runs/train/model.keras --dataset digits --output runs/eval
    python scripts/evaluate.py --model runs/x/model.keras --dataset image_folder --data-dir DATA

Writes OUTPUT/metrics.json and OUTPUT/figures/*.png. The model's Gaussians are
re-fitted on the training split of the dataset given.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.runs.evaluate import evaluate_saved_model  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .keras file saved by scripts/train.py")
    parser.add_argument("--dataset", help="default: the dataset of the run (its config.json)")
    parser.add_argument("--data-dir")
    parser.add_argument("--output", default="runs/eval")
    parser.add_argument("--tfds-dir", help="where TFDS keeps prepared datasets")
    parser.add_argument("--knn-k", type=int, help="default: the run's, else 11")
    parser.add_argument("--seed", type=int, help="default: the run's, else 0")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        metrics = evaluate_saved_model(
            args.model,
            args.output,
            dataset=args.dataset,
            data_dir=args.data_dir,
            tfds_dir=args.tfds_dir,
            seed=args.seed,
            knn_k=args.knn_k,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({k: metrics[k] for k in ("nmi", "cluster_f1", "knn_accuracy")}, indent=2))
    print(f"Results in {args.output}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
