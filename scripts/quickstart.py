"""A minimal end-to-end keras_sgm run on data that ships with scikit-learn.

Trains a small CNN with SGMLoss on class-balanced batches of the 8x8 digits
(scikit-learn's `load_digits`, 1,797 images, 10 classes), fits the class
Gaussians, and reports on the held-out test split:

- Bayes accuracy: `SGMModel.predict_proba` over the training-set Gaussians;
- kNN accuracy (K=11 over the training embeddings, the paper's classifier);
- batch centroid accuracy from training.

The model is saved to `OUTPUT/model.keras` and the figures to
`OUTPUT/metrics.json`. Usage:

    python scripts/quickstart.py [--epochs 15] [--output runs/quickstart] [--seed 0]
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_encoder(input_shape, embedding_dim):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(embedding_dim)(x), name="digits_encoder")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--samples-per-class", type=int, default=12)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("runs/quickstart"))
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    import keras_sgm
    from keras_sgm.data import class_balanced_batches

    keras.utils.set_random_seed(args.seed)
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, stratify=digits.target, random_state=args.seed
    )

    model = keras_sgm.SGMModel(
        build_encoder(images.shape[1:], args.embedding_dim),
        sigma=args.sigma,
        class_names=[str(d) for d in range(10)],
    )
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    batches = class_balanced_batches(
        x_train, y_train, samples_per_class=args.samples_per_class, seed=args.seed
    )
    history = model.fit(batches, epochs=args.epochs, verbose=args.verbose).history

    model.fit_gaussians(x_train, y_train)
    bayes_accuracy = float(np.mean(model.predict_classes(x_test) == y_test))
    knn = KNeighborsClassifier(n_neighbors=11).fit(model.predict(x_train, verbose=0), y_train)
    knn_accuracy = float(knn.score(model.predict(x_test, verbose=0), y_test))

    args.output.mkdir(parents=True, exist_ok=True)
    model.save(args.output / "model.keras")
    metrics = {
        "dataset": "sklearn digits (8x8), 75/25 stratified split",
        "epochs": args.epochs,
        "train_loss": history["loss"][-1],
        "train_centroid_accuracy": history["centroid_accuracy"][-1],
        "test_bayes_accuracy": bayes_accuracy,
        "test_knn11_accuracy": knn_accuracy,
    }
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    print(f"Model and metrics written to {args.output}/ (load with keras.saving.load_model).")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
