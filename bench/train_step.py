"""Train-step time: SGMModel with SGMLoss against a softmax CNN with cross-entropy.

Run on demand (not part of the tests); prints the times and their ratio, measured in one run:

    python bench/train_step.py [--arch fmpnet] [--batch-classes 8] [--samples-per-class 30]
                               [--steps 20] [--repeats 3] [--rounds 3] [--jit]

Both models use the same backbone, input (48x48x1), batch (8 classes x 30 = 240) and
optimizer (Adam); the softmax CNN adds a Dense classifier on the 64-d embedding, as
`scripts/train.py --method ce` does. Each `fit` epoch runs `--steps` steps on one
fixed batch in memory (no input pipeline in the time); the best epoch of
`--repeats` after a warm-up epoch (compilation), over `--rounds` models of each
method built in turn (CE, SGM, CE, ...: shared machines drift by 10-20% within
minutes, which a single pair would mistake for a difference), is reported per
step. Target: SGM / CE <= 1.03.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm.runs.training import _EpochTimer  # noqa: E402  (records epoch seconds)


def step_seconds(model, x, y, steps, repeats):
    """Best seconds per step over `repeats` epochs of `steps` steps, after one warm-up epoch."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    timer = _EpochTimer()
    model.fit(data, steps_per_epoch=steps, epochs=1 + repeats, verbose=0, callbacks=[timer])
    return min(timer.seconds[1:]) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="fmpnet")
    parser.add_argument("--batch-classes", type=int, default=8)
    parser.add_argument("--samples-per-class", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="models built per method")
    parser.add_argument("--jit", action="store_true", help="compile both steps with XLA")
    args = parser.parse_args()

    import numpy as np

    from keras_sgm.data.expressions import FERPLUS_CLASSES
    from keras_sgm.runs import TrainConfig, build_models

    names = list(FERPLUS_CLASSES[: args.batch_classes])
    n = args.batch_classes * args.samples_per_class
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n, 48, 48, 1)).astype("float32")
    y = np.tile(np.arange(args.batch_classes), args.samples_per_class).astype("int64")
    times = {}
    for method in ("ce", "sgm") * args.rounds:  # interleaved: drift hits both alike
        model, _ = build_models(TrainConfig(method=method, arch=args.arch), x.shape[1:], names)
        if args.jit:
            model.jit_compile = True
        seconds = step_seconds(model, x, y, args.steps, args.repeats)
        times[method] = min(times.get(method, np.inf), seconds)
    print(
        f"backbone {args.arch}, batch {n} = {args.batch_classes} x {args.samples_per_class}, "
        f"48x48x1, jit_compile={args.jit}"
    )
    print(f"cross-entropy step  {1000 * times['ce']:8.2f} ms")
    print(f"SGM step            {1000 * times['sgm']:8.2f} ms")
    print(f"ratio SGM / CE = {times['sgm'] / times['ce']:.3f}  (target <= 1.03)")


if __name__ == "__main__":
    main()
