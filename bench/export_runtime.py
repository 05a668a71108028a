"""Exported runtimes / Keras: the time of one batch through the encoder and the Gaussian head.

Run on demand (not part of the tests); prints the times and their ratios, measured in one run:

    python bench/export_runtime.py [--arch fmpnet] [--batches 1 64] [--repeats 200] [--rounds 3]

The model is an untrained `--arch` SGMModel at 48x48x1 with 8 Gaussians (time does not
depend on training). Keras runs `keras_sgm.deploy.serving_model(model)` (the graph
that is exported: encoder, Gaussian head, class index) with `predict_on_batch`, as the
app's engine does; ONNX runs `model.onnx` with onnxruntime (CPU) and LiteRT
`model.tflite` with its interpreter, through `keras_sgm.deploy.ExportedModel`. Each time is
the median of `--repeats` calls after 10 warm-up calls, best of `--rounds` rounds run
in turn (shared machines drift). The exports' largest difference from Keras on the
same batch is printed too.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_seconds(call, repeats):
    import numpy as np

    for _ in range(10):
        call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="fmpnet")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    from keras_sgm import backbones, deploy
    from keras_sgm.model import SGMModel

    rng = np.random.default_rng(0)
    encoder = backbones.get(args.arch, input_shape=(48, 48, 1), embedding_dim=64)
    model = SGMModel(encoder, class_names=[f"class {c}" for c in range(8)])
    model.set_gaussians(rng.normal(size=(8, 64)).astype("float32"), np.arange(8))
    graph = deploy.serving_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        runners = {"keras": graph.predict_on_batch}
        for format in ("onnx", "litert"):
            path = deploy.export(model, deploy.default_path(tmp, format), format=format)
            runners[format] = deploy.ExportedModel(path)
            print(f"{format}: {Path(path).stat().st_size / 2**20:.1f} MiB")
        print(f"backbone {args.arch}, 48x48x1, 8 Gaussians; median of {args.repeats} calls")
        for batch in args.batches:
            images = rng.uniform(size=(batch, 48, 48, 1)).astype("float32")
            best = {name: np.inf for name in runners}
            for _ in range(args.rounds):
                for name, run in runners.items():
                    best[name] = min(
                        best[name], median_seconds(lambda r=run, x=images: r(x), args.repeats)
                    )
            want = graph.predict_on_batch(images)
            line = [f"batch {batch:3d}: keras {1000 * best['keras']:7.2f} ms"]
            for name in ("onnx", "litert"):
                got = runners[name](images)
                diff = max(
                    float(np.max(np.abs(got[k] - want[k]))) for k in ("embedding", "posteriors")
                )
                ratio = best[name] / best["keras"]
                line.append(
                    f"{name} {1000 * best[name]:7.2f} ms ({name} / keras = {ratio:.3f}, "
                    f"largest difference {diff:.1e})"
                )
            print(";  ".join(line))


if __name__ == "__main__":
    main()
