"""A run's DGMS: the sub-class splitter it trains with, and the summary and figures it reports."""

import numpy as np

from keras_sgm.dgms import SubclassSplitter, groups_of_labels
from keras_sgm.evaluation.metrics import knn_predict, subclass_nmi
from keras_sgm.evaluation.report import draw_all
from keras_sgm.runs.rundir import RunDir
from keras_sgm.viz import plot_group_grid, plot_tsne


def run_splitter(config, sampler, out, train, test, hidden):
    """The DGMS callback of a run (`config.dgms`), reporting test kNN accuracy (and hidden-group
    NMI) per level."""

    def report(splitter):
        # The model is the one trained on the previous level's labels.
        train_emb = splitter.model.predict(train[0], verbose=0)
        test_emb = splitter.model.predict(test[0], verbose=0)
        predicted = knn_predict(train_emb, train[1], test_emb, k=config.knn_k)
        values = {"knn_accuracy_before_split": float(np.mean(predicted == test[1]))}
        if hidden is not None:
            values["subclass_nmi_vs_hidden"] = subclass_nmi(train[1], hidden, splitter.labels)
        return values

    return SubclassSplitter(
        sampler,
        **config.dgms.kwargs,
        seed=config.seed,
        state_path=RunDir(out).dgms_state_path,
        resume=config.resume,
        fit_gaussians=False,  # train() fits them once, after training
        report=report,
        verbose=config.verbose,
    )


def dgms_outputs(embeddings, splitter, train, class_names, out, hidden=None, seed=0):
    """The `metrics.json["dgms"]` summary of a DGMS run, and its figures.

    `embeddings` are the trained model's embeddings of the training images
    `train[0]`, whose labels are `train[1]`.

    Writes `figures/tsne_subclasses.png` (the training embedding coloured by
    sub-class, paper Fig. 7) and `figures/subclass_groups.png` (the Top-16 of
    every sub-class of the class split the most, paper Fig. 8).
    """
    class_map = splitter.class_map
    names = {s: f"{class_names[c]}/{s}" for s, c in class_map.items()}
    figures = RunDir(out).figures
    counts = np.bincount(list(class_map.values()), minlength=len(class_names))
    shown = int(np.argmax(counts))
    rows = np.flatnonzero(train[1] == shown)
    groups = groups_of_labels(embeddings[rows], splitter.labels[rows], 16, class_map)
    failed = draw_all(
        {
            figures / "tsne_subclasses.png": lambda path: plot_tsne(
                embeddings, splitter.labels, path, names, seed=seed
            ),
            figures / "subclass_groups.png": lambda path: plot_group_grid(
                train[0][rows], groups, path, 16, class_names
            ),
        }
    )
    summary = {
        "representation": splitter.representation,
        "method": splitter.method,
        "schedule": splitter.schedule,
        "covariance_type": splitter.covariance_type,
        "pca_dims": splitter.pca_dims,
        "levels": splitter.history,
        "subclasses": splitter.num_subclasses,
        "subclasses_per_class": {class_names[c]: int(n) for c, n in enumerate(counts) if n},
        "figure_class": class_names[shown],
    }
    if failed:
        summary["figures_not_drawn"] = failed
    if hidden is not None:
        summary["subclass_nmi_vs_hidden"] = subclass_nmi(train[1], hidden, splitter.labels)
    return summary
