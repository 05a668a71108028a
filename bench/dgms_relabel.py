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

With `--compare-dataset synthetic_faces` (or `digit_pairs`) it measures instead
what the principal components cost in quality: one split of that dataset's
training pixels into its hidden groups' number per class (4 for the faces, 2
for the digits) with `--pca-dims` and with every column, and
prints the adjusted Rand index between the two labellings and each one's NMI
against the hidden groups.
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
    parser.add_argument("--compare-dataset", choices=["synthetic_faces", "digit_pairs"])
    args = parser.parse_args()
    if args.compare_dataset:
        if not args.pca_dims:
            parser.error("--compare-dataset compares --pca-dims N (N >= 1) with every column")
        return compare(args.compare_dataset, args.pca_dims or None, args.samples_per_class)

    import numpy as np

    from keras_sgm.data import ClassBalancedSampler
    from keras_sgm.data.expressions import FERPLUS_CLASSES
    from keras_sgm.dgms import SubclassSplitter, representation, split_classes
    from keras_sgm.runs import TrainConfig, build_models

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


def compare(dataset, pca_dims, min_size):
    """One split of `dataset`'s pixels with and without the principal components."""
    from sklearn.metrics import adjusted_rand_score

    from keras_sgm.dgms import split_classes
    from keras_sgm.evaluation import subclass_nmi
    from keras_sgm.runs import TrainConfig, load_splits

    faces = dataset == "synthetic_faces"
    config = TrainConfig(dataset=dataset, image_size=48 if faces else 32)
    (images, labels), _, _, _, extras = load_splits(config, with_extras=True)
    pixels, hidden = images.reshape(len(images), -1), extras["subgroup"]
    clusters = 4 if faces else 2
    found = {}
    for dims in (pca_dims, None):
        start = time.perf_counter()
        found[dims] = split_classes(pixels, labels, clusters, min_size=min_size, pca_dims=dims)
        seconds = time.perf_counter() - start
        nmi = subclass_nmi(labels, hidden, found[dims].labels)
        print(
            f"{dataset}: {pixels.shape[0]} x {pixels.shape[1]} pixels, PCA {dims}: "
            f"{seconds:.2f} s, {found[dims].num_classes} sub-classes, NMI vs hidden {nmi:.3f}"
        )
    agreement = adjusted_rand_score(found[None].labels, found[pca_dims].labels)
    print(f"adjusted Rand index, PCA {pca_dims} vs every column: {agreement:.3f}")


if __name__ == "__main__":
    main()
