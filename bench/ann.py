"""Approximate (faiss IVF-Flat) against exact k-NN search on a million embeddings.

Run on demand (not part of the tests); prints recall@10 and the speed-up measured in one run:

    python bench/ann.py [--gallery 1000000] [--queries 10000] [--dim 64] [--k 10]
                        [--nprobe 8 16 32] [--clusters 1000]

The gallery imitates trained embeddings: `--clusters` Gaussian blobs (spread 1
around centres of spread 4); queries are drawn the same way (not gallery rows).
recall@10 = the share of the exact 10 nearest neighbours that the approximate
search returns. Speed-up = exact search time / approximate search time, both
over the same queries; index build (faiss k-means training) is timed apart.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def blobs(rng, n, centres):
    which = rng.integers(0, len(centres), n)
    return (centres[which] + rng.normal(size=(n, centres.shape[1]))).astype("float32")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--clusters", type=int, default=1000)
    args = parser.parse_args()

    import numpy as np

    from keras_sgm.retrieval import ApproximateIndex, ExactIndex

    rng = np.random.default_rng(0)
    centres = 4.0 * rng.normal(size=(args.clusters, args.dim))
    gallery = blobs(rng, args.gallery, centres)
    queries = blobs(rng, args.queries, centres)

    exact = ExactIndex(gallery)
    exact.search(queries[:64], args.k)  # compile
    (_, truth), exact_s = timed(lambda: exact.search(queries, args.k))
    print(
        f"data: gallery {args.gallery} x {args.dim}, {args.queries} queries, k={args.k}, "
        f"{args.clusters} blobs"
    )
    print(f"exact search            {exact_s:8.2f} s")
    approx, build_s = timed(lambda: ApproximateIndex(gallery, nprobe=args.nprobe[0]))
    print(f"faiss IVF-Flat build    {build_s:8.2f} s  (nlist={approx.nlist})")
    for nprobe in args.nprobe:
        approx.nprobe = nprobe
        (_, found), approx_s = timed(lambda: approx.search(queries, args.k))
        hits = [len(np.intersect1d(a, b)) for a, b in zip(found, truth)]
        recall = float(np.sum(hits)) / truth.size
        print(
            f"nprobe={approx.nprobe:<4d} search {approx_s:8.2f} s   recall@{args.k} = "
            f"{recall:.4f}   speed-up exact/approx = {exact_s / approx_s:.1f}x"
        )


if __name__ == "__main__":
    main()
