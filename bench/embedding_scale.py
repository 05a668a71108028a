"""How sharp are SGMLoss's posteriors before training? The untrained embedding's scale per backbone.

Run on demand (not part of the tests):

    python bench/embedding_scale.py [--dataset mnist] [--archs fmpnet resnet18]
                                    [--image-size 32] [--radius R] [--seed 0]

For 800 training images, with class means of 8 samples per class (the default
batch), prints per backbone the median squared distance of an image to its
nearest mean, the median gap to the second nearest, and the median largest
posterior at sigma 1 (`keras_sgm.losses.gaussian_log_posterior`). A gap far
below `2 sigma^2 = 2` means near-uniform posteriors; far above, posteriors
saturated from the first step (the squared error on them then has almost no
gradient). `--radius` measures the embeddings on a sphere
(`keras_sgm.backbones.on_sphere`) instead.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from keras_sgm import backbones  # noqa: E402
from keras_sgm.losses import gaussian_log_posterior, squared_distances  # noqa: E402
from keras_sgm.runs import TrainConfig, load_splits  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--archs", nargs="+", default=["fmpnet", "resnet18"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--radius", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = TrainConfig(dataset=args.dataset, image_size=args.image_size).validated()
    (x, y), *_ = load_splits(config)
    x, y = x[:800], y[:800]
    rows = np.concatenate([np.flatnonzero(y == c)[:8] for c in np.unique(y)])
    print("arch | nearest sq. distance | gap to 2nd | largest posterior (sigma 1)")
    for arch in args.archs:
        keras.utils.set_random_seed(args.seed)
        encoder = backbones.get(arch, input_shape=x.shape[1:])
        if args.radius:
            encoder = backbones.on_sphere(encoder, args.radius)
        emb = encoder.predict(x, verbose=0)
        means = np.stack([emb[rows][y[rows] == c].mean(axis=0) for c in np.unique(y)])
        sq = np.sort(ops.convert_to_numpy(squared_distances(emb, means)), axis=1)
        top = np.exp(ops.convert_to_numpy(gaussian_log_posterior(emb, means, 1.0))).max(axis=1)
        print(
            f"{arch} | {np.median(sq[:, 0]):.4g} | {np.median(sq[:, 1] - sq[:, 0]):.4g} "
            f"| {np.median(top):.3f}"
        )


if __name__ == "__main__":
    main()
