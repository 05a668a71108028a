"""The paper's protocol on a trained model, with its figures: what a run writes to metrics.json."""

import warnings
from pathlib import Path

import numpy as np

from keras_sgm import viz
from keras_sgm.evaluation import metrics as evaluation


def classifier_metrics(classifier, test, num_classes):
    """The softmax CNN's own predictions on `test`, scored as the paper's CNN rows of Table 2.

    Returns `classifier_accuracy`, `classifier_precision`, `classifier_recall`,
    `classifier_f1` (the paper's `2PR / (P + R)`), `classifier_macro_f1` and
    `classifier_confusion_matrix` (rows true, columns predicted, every class).
    """
    logits = classifier.predict(test[0], verbose=0)
    predicted = np.argmax(logits, axis=1)
    scores = evaluation.knn_scores(test[1], predicted, classes=np.arange(num_classes))
    keys = ("accuracy", "precision", "recall", "f1", "macro_f1")
    values = {f"classifier_{key}": scores[key] for key in keys}
    values["classifier_confusion_matrix"] = scores["confusion_matrix"].tolist()
    return values


def evaluate_model(model, train, test, class_names, out, seed=0, knn_k=11, train_emb=None):
    """The paper's protocol for an `SGMModel` on `(images, labels)` splits, with figures.

    Writes `out/figures/*.png`; returns the metrics dict (see
    `keras_sgm.evaluation.evaluate_embeddings`) plus `bayes_accuracy` (the
    model's Gaussians) and `class_names`. `train_emb` may pass the training
    images' embeddings when the caller has them already.
    """
    if train_emb is None:
        train_emb = model.predict(train[0], verbose=0)
    test_emb = model.predict(test[0], verbose=0)
    metrics = evaluation.evaluate_embeddings(
        train_emb, train[1], test_emb, test[1], knn_k=knn_k, seed=seed
    )
    if len(model.gaussian_ids):
        predicted = model.classes_[np.argmax(model.posterior_from_embeddings(test_emb), axis=1)]
        metrics["bayes_accuracy"] = float(np.mean(predicted == test[1]))
    metrics["class_names"] = list(class_names)
    figures = Path(out) / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    shown = [class_names[c] for c in metrics["classes"]]
    failed = draw_all(
        {
            figures / "tsne.png": lambda path: viz.plot_tsne(
                test_emb, test[1], path, class_names=class_names, seed=seed
            ),
            figures / "retrieval.png": lambda path: viz.plot_retrieval_curves(
                metrics["recall_at_k"], metrics["acc_at_k"], path
            ),
            figures / "f1_vs_k.png": lambda path: viz.plot_f1_vs_k(metrics["f1_vs_k"], path),
            figures / "confusion.png": lambda path: viz.plot_confusion_matrix(
                metrics["confusion_matrix"], shown, path
            ),
        }
    )
    if failed:
        metrics["figures_not_drawn"] = failed
    return metrics


def draw_all(figures):
    """Draw `{path: draw(path)}`; `{file name: reason}` of those that failed, each logged.

    A figure is never a reason to lose the metrics of a finished run.
    """
    failed = {}
    for path, draw in figures.items():
        try:
            draw(path)
        except Exception as error:  # noqa: BLE001 - any drawing failure is reported alike
            failed[path.name] = f"{type(error).__name__}: {error}"
            warnings.warn(f"Figure {path} not drawn: {failed[path.name]}", stacklevel=2)
    return failed
