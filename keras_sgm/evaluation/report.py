"""The paper's protocol on a trained model, with its figures: what a run writes to metrics.json."""

import warnings
from pathlib import Path

import numpy as np

from keras_sgm import viz
from keras_sgm.evaluation import calibration
from keras_sgm.evaluation.metrics import evaluate_embeddings, knn_scores
from keras_sgm.evaluation.open_set import open_set_aurocs
from keras_sgm.retrieval import ExactIndex


def _softmax(logits):
    logits = np.asarray(logits, "float64")
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def classifier_metrics(classifier, test, num_classes, unknown=None):
    """The softmax CNN's own predictions on `test`, scored as the paper's CNN rows of Table 2.

    Returns `classifier_accuracy`, `classifier_precision`, `classifier_recall`,
    `classifier_f1` (the paper's `2PR / (P + R)`), `classifier_macro_f1`,
    `classifier_confusion_matrix` (rows true, columns predicted, every class),
    `classifier_calibration` (ECE, NLL, Brier of its softmax probabilities) and,
    with `unknown` (`{kind: images}`), `classifier_open_set`: the AUROC of its
    largest softmax probability for each kind (the usual baseline).
    """
    probabilities = _softmax(classifier.predict(test[0], verbose=0))
    predicted = np.argmax(probabilities, axis=1)
    scores = knn_scores(test[1], predicted, classes=np.arange(num_classes))
    keys = ("accuracy", "precision", "recall", "f1", "macro_f1")
    values = {f"classifier_{key}": scores[key] for key in keys}
    values["classifier_confusion_matrix"] = scores["confusion_matrix"].tolist()
    values["classifier_calibration"] = calibration.calibration_scores(
        probabilities, test[1], classes=np.arange(num_classes)
    )
    if unknown:
        known = {"softmax": probabilities.max(axis=1)}
        others = {
            kind: {"softmax": _softmax(classifier.predict(images, verbose=0)).max(axis=1)}
            for kind, images in unknown.items()
        }
        values["classifier_open_set"] = {
            kind: v["softmax"] for kind, v in open_set_aurocs(known, others).items()
        }
    return values


def probability_scores(model, train_emb, train_labels, test_emb, test_labels, knn_k=11):
    """`{"bayes": ..., "knn": ...}`: calibration of the Gaussians' posteriors and of the kNN
    vote share (K = `knn_k`) on the test embeddings (`calibration.calibration_scores`).

    Test images of a class with no training image (no column to score) are left out and
    counted in `test_images_without_a_class_column`. The kNN `accuracy` here is the argmax
    of the vote share (ties to the first class), which can differ from `knn_accuracy`'s
    distance-weighted vote on ties."""
    test_labels = np.asarray(test_labels)
    scores = {}
    if len(model.gaussian_ids):
        mine = np.isin(test_labels, model.classes_)  # a class with no Gaussian has no column
        posterior = model.head.posterior(test_emb[mine])
        scores["bayes"] = calibration.calibration_scores(
            posterior, test_labels[mine], model.classes_
        )
        scores["bayes"]["test_images_without_a_class_column"] = int(np.sum(~mine))
    index = ExactIndex(train_emb, np.asarray(train_labels))
    classes = np.unique(train_labels)
    mine = np.isin(test_labels, classes)
    _, rows = index.search(test_emb[mine], min(int(knn_k), len(index)))
    shares = calibration.vote_share(index.labels[rows], classes)
    scores["knn"] = calibration.calibration_scores(shares, test_labels[mine], classes)
    scores["knn"]["test_images_without_a_class_column"] = int(np.sum(~mine))
    return scores


def open_set_scores(model, test_emb, unknown):
    """`{kind: {"gaussian": AUROC, "max_posterior": AUROC}}` of the model's two scores of
    "known" (its `known_score`, and the Bayes posterior's largest probability) against each
    kind of unknown images (`{kind: images}`)."""

    def both(embeddings):
        return {
            "gaussian": model.head.known_score(embeddings),
            "max_posterior": model.head.posterior(embeddings).max(axis=1),
        }

    others = {kind: both(model.predict(images, verbose=0)) for kind, images in unknown.items()}
    return open_set_aurocs(both(test_emb), others)


def evaluate_model(
    model,
    train,
    test,
    class_names,
    out,
    seed=0,
    knn_k=11,
    train_emb=None,
    unknown=None,
    softmax=None,
):
    """The paper's protocol for an `SGMModel` on `(images, labels)` splits, with figures.

    Writes `out/figures/*.png`; returns the metrics dict (see
    `keras_sgm.evaluation.evaluate_embeddings`) plus `bayes_accuracy` (the
    model's Gaussians), `class_names`, `calibration` (`probability_scores`;
    `posterior_sigma` is the sigma the posteriors used) and, with `unknown`
    (`{kind: images}`), `open_set` (`open_set_scores`). `train_emb` may pass the
    training images' embeddings when the caller has them already. `softmax`
    (the softmax CNN's `classifier_metrics`) adds its probabilities to the
    calibration, the open-set scores and the reliability diagram.
    """
    if train_emb is None:
        train_emb = model.predict(train[0], verbose=0)
    test_emb = model.predict(test[0], verbose=0)
    metrics = evaluate_embeddings(train_emb, train[1], test_emb, test[1], knn_k=knn_k, seed=seed)
    if len(model.gaussian_ids):
        predicted = model.classes_[np.argmax(model.head.posterior(test_emb), axis=1)]
        metrics["bayes_accuracy"] = float(np.mean(predicted == test[1]))
    metrics["class_names"] = list(class_names)
    metrics["calibration"] = probability_scores(
        model, train_emb, train[1], test_emb, test[1], knn_k
    )
    metrics["posterior_sigma"] = model.posterior_sigma or model.sigma
    if softmax and "classifier_calibration" in softmax:
        metrics["calibration"]["softmax"] = softmax["classifier_calibration"]
    if unknown and len(model.gaussian_ids):
        metrics["open_set"] = open_set_scores(model, test_emb, unknown)
        for kind, value in ((softmax or {}).get("classifier_open_set") or {}).items():
            metrics["open_set"].setdefault(kind, {})["softmax"] = value
    figures = Path(out) / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    shown = [class_names[c] for c in metrics["classes"]]
    titles = {"bayes": "Bayes (Gaussian posteriors)", "knn": "kNN vote share", "softmax": "softmax"}
    curves = {titles[k]: v["reliability"] for k, v in metrics["calibration"].items()}
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
            figures / "reliability.png": lambda path: viz.plot_reliability(curves, path),
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
