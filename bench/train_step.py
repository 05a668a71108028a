"""Train-step time: SGMModel with SGMLoss against a softmax CNN with cross-entropy, per backend.

Run on demand (not part of the tests); prints the times and their ratios, measured in one run:

    python bench/train_step.py [--backend tensorflow] [--arch fmpnet] [--batch-classes 8]
                               [--samples-per-class 30] [--image-size 48] [--steps 20]
                               [--repeats 3] [--rounds 3] [--jit]
    python bench/train_step.py --backend jax tensorflow      # the two, and JAX / TensorFlow

Both models use the same backbone, input (48x48x1), batch (8 classes x 30 = 240) and
optimizer (Adam); the softmax CNN adds a Dense classifier on the 64-d embedding, as
`scripts/train.py --method ce` does. Each `fit` epoch runs `--steps` steps on one
fixed batch in memory (a repeated `tf.data` batch, which Keras feeds to every backend;
no input pipeline in the time); the best epoch of `--repeats` after a warm-up epoch
(compilation), over `--rounds` models of each method built in turn (CE, SGM, CE, ...:
shared machines drift by 10-20% within minutes, which a single pair would mistake for a
difference), is reported per step. Target: SGM / CE <= 1.03.

Keras picks its backend once per process, so with several `--backend` values each
round runs one child process per backend, in turn, and the best step of each is kept.
JAX compiles its steps with XLA (`jit_compile` is on by default there); `--jit` also
compiles TensorFlow's (and asks `torch.compile` of PyTorch's). The loss's share of the
SGM step is bounded by timing the same SGM step on the batch's 64-d embeddings with a
single Dense layer for a backbone (`loss_step_seconds`).
"""

import argparse
import json
import os
import subprocess
import sys


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend",
        nargs="+",
        default=[os.environ.get("KERAS_BACKEND", "tensorflow")],
        choices=["tensorflow", "jax", "torch"],
        help="Keras backend(s) to time; several: each in its own process, interleaved",
    )
    parser.add_argument("--arch", default="fmpnet")
    parser.add_argument("--batch-classes", type=int, default=8)
    parser.add_argument("--samples-per-class", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="models built per method")
    parser.add_argument("--jit", action="store_true", help="compile the steps (XLA, torch.compile)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child output
    return parser.parse_args(argv)


def step_seconds(model, x, y, steps, repeats):
    """Best seconds per step over `repeats` epochs of `steps` steps, after one warm-up epoch."""
    import tensorflow as tf

    from keras_sgm.runs.training import _EpochTimer  # records epoch seconds

    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    timer = _EpochTimer()
    model.fit(data, steps_per_epoch=steps, epochs=1 + repeats, verbose=0, callbacks=[timer])
    return min(timer.seconds[1:]) / steps


def measure(args):
    """`{method: best seconds per step}` on this process's backend, `args.rounds` models each."""
    import keras
    import numpy as np

    from keras_sgm.data.expressions import FERPLUS_CLASSES
    from keras_sgm.runs import TrainConfig, build_models

    names = list(FERPLUS_CLASSES[: args.batch_classes])
    n = args.batch_classes * args.samples_per_class
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n, args.image_size, args.image_size, 1)).astype("float32")
    y = np.tile(np.arange(args.batch_classes), args.samples_per_class).astype("int64")
    times = {}
    for method in ("ce", "sgm") * args.rounds:  # interleaved: drift hits both alike
        config = TrainConfig(method=method, arch=args.arch)
        model, _ = build_models(config, x.shape[1:], names)
        if args.jit or keras.backend.backend() == "jax":
            model.jit_compile = True
        seconds = step_seconds(model, x, y, args.steps, args.repeats)
        times[method] = min(times.get(method, np.inf), seconds)
    times["loss"] = loss_step_seconds(args, y)
    return times


def loss_step_seconds(args, y):
    """Seconds per step of an SGM step whose backbone is one 64 x 64 Dense layer on the batch's
    64-d embeddings: the loss, its gradient, the finite-value guard and the optimizer, with
    almost no network. Its time over the SGM step bounds the loss's share from above."""
    import keras
    import numpy as np

    import keras_sgm

    dim = 64  # TrainConfig's embedding_dim
    embeddings = np.random.default_rng(1).normal(size=(len(y), dim)).astype("float32")
    encoder = keras.Sequential([keras.Input((dim,)), keras.layers.Dense(dim)])
    model = keras_sgm.SGMModel(encoder, sigma=1.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=keras_sgm.SGMLoss(sigma=1.0))
    if args.jit or keras.backend.backend() == "jax":
        model.jit_compile = True
    return min(
        step_seconds(model, embeddings, y, args.steps, args.repeats) for _ in range(args.rounds)
    )


def _child(args, backend):
    """`measure` with one round in a fresh process running `backend`."""
    argv = [sys.executable, __file__, "--json", "--backend", backend, "--rounds", "1"]
    for flag in ("arch", "batch_classes", "samples_per_class", "image_size", "steps", "repeats"):
        argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.jit:
        argv.append("--jit")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"the {backend} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report(args, results):
    n = args.batch_classes * args.samples_per_class
    size = args.image_size
    print(
        f"backbone {args.arch}, batch {n} = {args.batch_classes} x {args.samples_per_class}, "
        f"{size}x{size}x1, {args.steps} steps x {args.repeats} repeats, best of {args.rounds}"
    )
    for backend, times in results.items():
        jit = args.jit or backend == "jax"
        print(f"{backend} (compiled: {jit})")
        print(f"  cross-entropy step  {1000 * times['ce']:8.2f} ms")
        print(f"  SGM step            {1000 * times['sgm']:8.2f} ms")
        print(f"  ratio SGM / CE = {times['sgm'] / times['ce']:.3f}  (target <= 1.03)")
        share = times["loss"] / times["sgm"]
        print(
            f"  SGM loss step (no backbone) {1000 * times['loss']:.2f} ms = "
            f"{100 * share:.1f}% of the SGM step (an upper bound on the loss's share)"
        )
    if len(results) > 1:
        first, *others = list(results)
        for other in others:
            ratio = results[other]["sgm"] / results[first]["sgm"]
            print(f"SGM step {other} / {first} = {ratio:.3f}")


def main(argv=None):
    args = _parse(argv)
    if args.json:  # a child: one backend, set in the environment before Keras is imported
        print(json.dumps(measure(args)))
        return
    results = {backend: {} for backend in args.backend}
    for _ in range(args.rounds):
        for backend in args.backend:  # in turn, so drift hits every backend alike
            for method, seconds in _child(args, backend).items():
                results[backend][method] = min(results[backend].get(method, seconds), seconds)
    _report(args, results)


if __name__ == "__main__":
    main()
