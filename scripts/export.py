"""Export a trained model with its Gaussians for serving: SavedModel, ONNX, LiteRT.

    python scripts/export.py runs/resnet18_sgm --format onnx litert --output exports/
    python scripts/export.py model.keras --format saved_model onnx litert --output exports/ --check
    python scripts/export.py ORG/NAME --format onnx --output exports/   # a repo on the Hub

SOURCE is a .keras file, a run folder written by scripts/train.py, a keras_sgm repo
folder (scripts/push_to_hub.py --dry-run) or a Hub repo id. Each format is written as
OUTPUT/saved_model/, OUTPUT/model.onnx or OUTPUT/model.tflite: one signature from a
batch of face crops (`images`) to `embedding`, `posteriors`, `class_index` and
`known_score`, with the class names and sigma in the file's metadata (see
keras_sgm.deploy). --check runs each file with its own runtime on 32 random inputs and
prints its largest difference from the Keras model (also written to
OUTPUT/export_check.json). ONNX and the check need `pip install keras-sgm[export]`.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_sgm import deploy, hub  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("source", metavar="SOURCE", help=".keras file, run folder, repo or id")
    parser.add_argument(
        "--format",
        nargs="+",
        choices=deploy.FORMATS,
        default=["onnx"],
        help="the formats to write (default: onnx)",
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="the folder to write into")
    parser.add_argument(
        "--check", action="store_true", help="compare each export with the Keras model"
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    out = Path(args.output)
    try:
        model = hub.load_model(args.source)
        report = {}
        for format in dict.fromkeys(args.format):
            path = deploy.export(model, deploy.default_path(out, format), format=format)
            print(f"{format}: wrote {path}")
            if args.check:
                shape = model.encoder.input_shape[1:]
                images = np.random.default_rng(0).uniform(size=(32, *shape)).astype("float32")
                report[format] = deploy.compare(model, path, images)
                r = report[format]
                print(
                    f"  largest difference from Keras: embedding {r['embedding']:.2e}, "
                    f"posteriors {r['posteriors']:.2e}, known score {r['known_score']:.2e}; "
                    f"class index agreement {r['class_index_agreement']:.3f}"
                )
        if report:
            (out / "export_check.json").write_text(json.dumps(report, indent=1) + "\n")
    except (ValueError, OSError, ImportError, RuntimeError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
