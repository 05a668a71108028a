"""Class-balanced input pipeline throughput against the train step's consumption rate.

Run on demand (not part of the tests); prints both rates and their ratio, measured in one run:

    python bench/pipeline.py [--images 28000] [--classes 8] [--samples-per-class 30]
                             [--batches 200] [--arch fmpnet] [--steps 10]

The pipeline is `ClassBalancedSampler(...).dataset(repeat=True)` over `--images`
48x48x1 float32 images in memory (FER+'s training set is 28k); its rate is the
batches per second a Python loop draws from it (after a warm-up). The consumption
rate is the batches per second `SGMModel.fit` trains on one fixed batch in memory
(`bench/train_step.py`'s measure). Target: pipeline / train step >= 20.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import step_seconds  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=28_000)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--samples-per-class", type=int, default=30)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--arch", default="fmpnet")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    import numpy as np

    from keras_sgm.data import ClassBalancedSampler
    from keras_sgm.data.expressions import FERPLUS_CLASSES
    from keras_sgm.runs import TrainConfig, build_models

    rng = np.random.default_rng(0)
    images = rng.uniform(size=(args.images, 48, 48, 1)).astype("float32")
    labels = rng.integers(0, args.classes, args.images)
    sampler = ClassBalancedSampler(images, labels, args.samples_per_class, seed=0)
    stream = iter(sampler.dataset(repeat=True))
    for _ in range(10):  # warm-up: tracing, prefetch buffers
        next(stream)
    start = time.perf_counter()
    for _ in range(args.batches):
        x, y = next(stream)
    pipeline_rate = args.batches / (time.perf_counter() - start)

    names = list(FERPLUS_CLASSES[: args.classes])
    model, _ = build_models(TrainConfig(arch=args.arch), images.shape[1:], names)
    step = step_seconds(model, x.numpy(), y.numpy(), args.steps, repeats=2)
    print(
        f"{args.images} images 48x48x1, batch {sampler.batch_size} "
        f"({args.classes} classes x {args.samples_per_class}), backbone {args.arch}"
    )
    print(f"pipeline     {pipeline_rate:10.1f} batches/s")
    print(f"train step   {1 / step:10.2f} batches/s ({1000 * step:.0f} ms a step)")
    print(f"ratio pipeline / train step = {pipeline_rate * step:.1f}  (target >= 20)")


if __name__ == "__main__":
    main()
