"""Exact k-NN search: keras_sgm's ExactIndex against scikit-learn and a bare matmul + top-k.

Run on demand (not part of the tests); prints times and ratios measured in one run:

    python bench/exact_knn.py [--gallery 60000] [--queries 10000] [--dim 64] [--k 11] [--repeats 3]

`ExactIndex / sklearn` below 1 means keras_sgm is faster than scikit-learn's
brute-force NearestNeighbors. `ExactIndex / bare` compares with one XLA-compiled
`matmul + top_k` over the whole query set at once (no batching, no exact distances).
Best of `--repeats` runs, after one warm-up call that compiles.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def best_time(fn, repeats):
    fn()  # warm-up: compilation, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery", type=int, default=60000)
    parser.add_argument("--queries", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    from sklearn.neighbors import NearestNeighbors

    from keras_sgm.retrieval import ExactIndex

    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(args.gallery, args.dim)).astype("float32")
    queries = rng.normal(size=(args.queries, args.dim)).astype("float32")

    index = ExactIndex(gallery)
    ours = best_time(lambda: index.search(queries, args.k), args.repeats)

    knn = NearestNeighbors(n_neighbors=args.k, algorithm="brute").fit(gallery)
    sklearn = best_time(lambda: knn.kneighbors(queries), args.repeats)

    g, q = tf.constant(gallery), tf.constant(queries)

    @tf.function(jit_compile=True)
    def bare(q, g):
        scores = 2.0 * tf.matmul(q, g, transpose_b=True) - tf.reduce_sum(g * g, axis=1)
        return tf.math.top_k(scores, k=args.k)

    bare_time = best_time(lambda: [t.numpy() for t in bare(q, g)], args.repeats)

    _, ours_idx = index.search(queries[:500], args.k)
    _, ref_idx = knn.kneighbors(queries[:500])
    agreement = float(np.mean(ours_idx == ref_idx))
    print(f"data: gallery {args.gallery} x queries {args.queries} x dim {args.dim}, k={args.k}")
    print(f"ExactIndex.search      {ours:8.3f} s")
    print(f"sklearn brute          {sklearn:8.3f} s")
    print(f"bare matmul + top_k    {bare_time:8.3f} s")
    print(f"ratio ExactIndex / sklearn = {ours / sklearn:.3f}  (target <= 1)")
    print(f"ratio ExactIndex / bare    = {ours / bare_time:.3f}  (target <= 1.2)")
    print(f"neighbour indices equal to sklearn's on 500 queries: {agreement:.5f}")


if __name__ == "__main__":
    main()
