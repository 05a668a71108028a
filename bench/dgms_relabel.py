"""DGMS relabelling time against one training epoch, at FER+ scale.

Run on demand (not part of the tests); prints both times and their ratio, measured in one run:

    python bench/dgms_relabel.py [--images 28000] [--classes 8] [--clusters 2]
                                 [--representation pixels] [--pca-dims 64]
                                 [--arch fmpnet] [--steps 10]

One `SubclassSplitter.split` (representation of every training image, k-means
within each class in its top `--pca-dims` principal components (0: every
column), relabelling the sampler in place) on `--images` 48x48x1
images, against one epoch of SGM training on them: the sampler's
`steps_per_epoch` batches times the step time `SGMModel.fit` takes on one fixed
batch (`bench/train_step.py`'s measure, over `--steps` steps). Target:
relabel / epoch <= 0.1.
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
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--representation", default="pixels")
    parser.add_argument("--pca-dims", type=int, default=64, help="0: cluster every column")
    parser.add_argument("--arch", default="fmpnet")
    parser.add_argument("--samples-per-class", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    import numpy as np

    from keras_sgm.data import ClassBalancedSampler
    from keras_sgm.data.expressions import FERPLUS_CLASSES
    from keras_sgm.dgms import SubclassSplitter, representation, split_classes
    from keras_sgm.training import TrainConfig, build_models

    rng = np.random.default_rng(0)
    images = rng.uniform(size=(args.images, 48, 48, 1)).astype("float32")
    labels = rng.integers(0, args.classes, args.images)
    names = list(FERPLUS_CLASSES[: args.classes])
    model, _ = build_models(TrainConfig(arch=args.arch), images.shape[1:], names)
    sampler = ClassBalancedSampler(images, labels, args.samples_per_class, seed=0)
    steps, batch = sampler.steps_per_epoch, sampler.batch_size  # before the split
    x, y = next(iter(sampler.dataset()))
    step = step_seconds(model, x.numpy(), y.numpy(), args.steps, repeats=2)

    pca_dims = args.pca_dims or None
    splitter = SubclassSplitter(
        sampler,
        clusters=args.clusters,
        representation=args.representation,
        pca_dims=pca_dims,
        verbose=0,
    )
    splitter.set_model(model)
    start = time.perf_counter()
    splitter.split()
    relabel = time.perf_counter() - start
    # The same work again, stage by stage: where the time goes.
    stages, start = {}, time.perf_counter()
    features = representation(model, images, args.representation)
    stages["representation"], start = time.perf_counter() - start, time.perf_counter()
    found = split_classes(
        features, labels, args.clusters, min_size=args.samples_per_class, pca_dims=pca_dims
    )
    stages[f"clustering (PCA to {pca_dims}, k-means with 10 inits)"], start = (
        time.perf_counter() - start,
        time.perf_counter(),
    )
    sampler.relabel(found.labels)
    stages["sampler.relabel"] = time.perf_counter() - start
    epoch = steps * step
    print(
        f"{args.images} images 48x48x1, {args.classes} classes, batch {batch}, "
        f"{steps} steps an epoch, backbone {args.arch}"
    )
    print(
        f"relabel ({args.representation}, PCA {pca_dims}, k-means into {args.clusters})  "
        f"{relabel:8.2f} s "
        f"-> {splitter.num_subclasses} sub-classes"
    )
    print(f"one epoch ({steps} x {1000 * step:.0f} ms)          {epoch:8.2f} s")
    print(f"ratio relabel / epoch = {relabel / epoch:.3f}  (target <= 0.1)")
    print("stages: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in stages.items()))


if __name__ == "__main__":
    main()
