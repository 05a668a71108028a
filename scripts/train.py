"""Train an embedding with SGMLoss, triplet loss or a softmax CNN, then evaluate it.

With no arguments: a short, complete example (FMPNet, SGMLoss, 3 epochs on the
CPU) on the synthetic faces, procedurally drawn 48x48 faces of the 8 FER+
expressions that ship with keras_sgm - a stand-in: real results need the real
datasets (--dataset ferplus|affectnet|ckplus|jaffe|bu3dfe --data-dir DIR).

Every flag can also be set in a YAML or JSON file given with --config; flags on
the command line win. The resolved configuration is written to OUTPUT/config.json.

    python scripts/train.py --dataset image_folder --data-dir DATA --method sgm --arch resnet18
    python scripts/train.py --config configs/paper.yaml --output runs/ferplus_sgm
    python scripts/train.py --output runs/x --resume     # continue an interrupted run
    python scripts/train.py --strategy mirrored          # all GPUs of this machine
    python scripts/train.py --strategy mirrored --replicas 2   # two replicas on the CPU
    TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]},
                "task": {"type": "worker", "index": 0}}' \
        python scripts/train.py --strategy multiworker   # on each worker, its own index
    python scripts/train.py --mixed-precision mixed_bfloat16
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.runs import train  # noqa: E402
from keras_sgm.runs.cli import config_from_args, config_parser  # noqa: E402

SUMMARY = ("nmi", "cluster_f1", "knn_accuracy", "knn_f1", "bayes_accuracy")


def build_parser():
    return config_parser(__doc__)


def main(argv=None):
    args = vars(build_parser().parse_args(argv))
    try:
        config = config_from_args(args)
        metrics = train(config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if "worker" in metrics:  # a multi-worker run's other workers: the chief reports
        print(f"Worker {metrics['worker']} finished; the chief writes {config.output}/.")
        return 0
    print(json.dumps({k: metrics[k] for k in SUMMARY if k in metrics}, indent=2))
    print(f"Results in {config.output}/: model.keras, metrics.json, figures/, logs/ (TensorBoard).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
