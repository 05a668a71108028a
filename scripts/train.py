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

import argparse
import dataclasses
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.training import (  # noqa: E402
    TrainConfig,
    field_type,
    read_settings_file,
    train,
)


def read_config_file(path):
    """Settings from a YAML or JSON file (`keras_sgm.training.read_settings_file`)."""
    return read_settings_file(path)


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--config", help="YAML or JSON file of settings")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = field_type(field)
        if kind is bool:
            parser.add_argument(flag, action="store_true", default=None)
        else:
            parser.add_argument(flag, type=kind, default=None, help=f"default: {field.default}")
    return parser


def main(argv=None):
    args = vars(build_parser().parse_args(argv))
    try:
        values = read_config_file(args.pop("config")) if args.get("config") else {}
        values.update({k: v for k, v in args.items() if v is not None})
        if values.get("resume"):
            # continue the interrupted run with its own settings; flags may only extend it
            output = values.pop("output", TrainConfig.output)
            config = TrainConfig.resumed(output, **values)
        else:
            config = TrainConfig.from_dict(values)
        metrics = train(config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if "worker" in metrics:  # a multi-worker run's other workers: the chief reports
        print(f"Worker {metrics['worker']} finished; the chief writes {config.output}/.")
        return 0
    keys = ("nmi", "cluster_f1", "knn_accuracy", "knn_f1", "bayes_accuracy")
    print(json.dumps({k: metrics[k] for k in keys if k in metrics}, indent=2))
    print(f"Results in {config.output}/: model.keras, metrics.json, figures/, logs/ (TensorBoard).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
