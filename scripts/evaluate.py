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
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.training import (  # noqa: E402
    TrainConfig,
    evaluate_model,
    load_splits,
    write_json,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .keras file saved by scripts/train.py")
    parser.add_argument("--dataset", help="default: the dataset of the run (its config.json)")
    parser.add_argument("--data-dir")
    parser.add_argument("--output", default="runs/eval")
    parser.add_argument("--tfds-dir", help="where TFDS keeps prepared datasets")
    parser.add_argument("--knn-k", type=int, help="default: the run's, else 11")
    parser.add_argument("--seed", type=int, help="default: the run's, else 0")
    args = parser.parse_args(argv)

    import keras

    import keras_sgm

    try:
        path = Path(args.model)
        if not path.is_file():
            raise ValueError(f"No model file at {path}.")
        model = keras.saving.load_model(path)
        if not isinstance(model, keras_sgm.SGMModel):
            raise ValueError(f"{path} holds a {type(model).__name__}, not a keras_sgm SGMModel.")
        height, width, channels = model.encoder.input_shape[1:]
        # The run's own settings (its config.json beside the model), then the flags given.
        run = path.parent / "config.json"
        values = json.loads(run.read_text()) if run.is_file() else {}
        for key in ("output", "resume", "overwrite"):
            values.pop(key, None)
        if args.dataset and args.dataset != values.get("dataset"):
            values = {"dataset": args.dataset}  # another dataset: none of the run's data settings
        flags = {
            "data_dir": args.data_dir,
            "tfds_dir": args.tfds_dir,
            "seed": args.seed,
            "knn_k": args.knn_k,
        }
        values.update({k: v for k, v in flags.items() if v is not None})
        values.update(image_size=height, channels=channels)
        config = TrainConfig.from_dict(values)
        train, _, test, names = load_splits(config)
        model.fit_gaussians(train[0], train[1])
        out = Path(args.output)
        metrics = evaluate_model(
            model, train, test, names, out, seed=config.seed, knn_k=config.knn_k
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_json(out / "metrics.json", metrics)
    print(json.dumps({k: metrics[k] for k in ("nmi", "cluster_f1", "knn_accuracy")}, indent=2))
    print(f"Results in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
