"""The model card of a keras_sgm repo: `README.md` from a Jinja2 template and the run's metrics."""

import math
from pathlib import Path

import keras

from keras_sgm._version import __version__
from keras_sgm.data.names import DATASETS
from keras_sgm.hub.errors import _import_hub
from keras_sgm.runs.config import METHOD_TITLES

TEMPLATE = Path(__file__).resolve().parent / "model_card_template.md"
"""The default model card template (a Jinja2 template shipped inside the package)."""

CARD_TAGS = ("keras", "keras_sgm", "metric-learning", "facial-expression-recognition")

_CLASSIFY, _EMBED = "image-classification", "image-feature-extraction"
_TASK_NAMES = {
    _CLASSIFY: "Expression classification (kNN and Bayes)",
    _EMBED: "Embedding quality (k-means clustering and retrieval)",
}
# key in metrics.json -> (model-index task type, task in the card, metric type, metric name)
_SCALAR_METRICS = {
    "knn_accuracy": (_CLASSIFY, "kNN, K={k}", "accuracy", "accuracy"),
    "knn_precision": (_CLASSIFY, "kNN, K={k}", "precision", "precision (macro)"),
    "knn_recall": (_CLASSIFY, "kNN, K={k}", "recall", "recall (macro)"),
    "knn_f1": (_CLASSIFY, "kNN, K={k}", "f1", "F1 (2PR/(P+R) of macro P, R)"),
    "knn_macro_f1": (_CLASSIFY, "kNN, K={k}", "f1", "F1 (mean of per-class F1)"),
    "bayes_accuracy": (_CLASSIFY, "Bayes, the model's Gaussians", "accuracy", "accuracy"),
    "classifier_accuracy": (_CLASSIFY, "softmax CNN head", "accuracy", "accuracy"),
    "classifier_precision": (_CLASSIFY, "softmax CNN head", "precision", "precision (macro)"),
    "classifier_recall": (_CLASSIFY, "softmax CNN head", "recall", "recall (macro)"),
    "classifier_f1": (_CLASSIFY, "softmax CNN head", "f1", "F1 (2PR/(P+R) of macro P, R)"),
    "classifier_macro_f1": (_CLASSIFY, "softmax CNN head", "f1", "F1 (mean of per-class F1)"),
    "nmi": (_EMBED, "k-means clustering", "nmi", "NMI"),
    "cluster_f1": (_EMBED, "k-means clustering", "f1", "F1 (pairwise)"),
}
# key in metrics.json (a dict K -> value) -> (metric type, metric name)
_AT_K_METRICS = {
    "recall_at_k": ("recall_at_{k}", "Recall@{k}"),
    "acc_at_k": ("acc_at_{k}", "Acc@{k}"),
}
_NOT_METRICS = ("train_seconds_per_epoch", "epochs_run_in_this_session", "seed", "replicas")
_FIGURE_CAPTIONS = {
    "tsne": "t-SNE of the test embeddings",
    "retrieval": "Recall@K and Acc@K on the test split",
    "f1_vs_k": "kNN F1 (2PR/(P+R)) against K",
    "confusion": "kNN confusion matrix on the test split",
}


def evaluation_results(metrics, knn_k=11):
    """The paper's metrics present in `metrics` (a run's metrics.json), as card rows.

    Missing keys and non-finite values are skipped, so runs that hold fewer
    or more keys (DGMS, say) still describe what they have.

    Returns:
        A list of dicts: `source` (the metrics.json key, `"recall_at_k/4"`
        for a K entry), `task_type` (model-index), `task`, `metric` (type),
        `name` and `value` (float).
    """
    rows = []
    metrics = metrics or {}
    for key, (task_type, task, metric, name) in _SCALAR_METRICS.items():
        value = _finite(metrics.get(key))
        if value is not None:
            task = task.format(k=knn_k)
            rows.append(_row(key, task_type, task, metric, name, value))
    for key, (metric, name) in _AT_K_METRICS.items():
        table = metrics.get(key)
        for k, value in sorted((table or {}).items() if isinstance(table, dict) else []):
            value = _finite(value)
            if value is not None:
                task = "retrieval in the test split"
                row = _row(f"{key}/{k}", _EMBED, task, metric.format(k=k), name.format(k=k), value)
                rows.append(row)
    return sorted(rows, key=lambda r: (r["task_type"] != _CLASSIFY, _k_order(r["source"])))


def _row(source, task_type, task, metric, name, value):
    return {
        "source": source,
        "task_type": task_type,
        "task": task,
        "metric": metric,
        "name": name,
        "value": value,
    }


def _k_order(source):
    """Sort K entries numerically after the scalar metrics, in table order."""
    key, _, k = source.partition("/")
    order = [*_SCALAR_METRICS, *_AT_K_METRICS]
    return (order.index(key), int(k) if k.isdigit() else 0)


def _other_metrics(metrics):
    """Numbers in metrics.json that the card's model-index does not know (e.g. DGMS)."""
    known = {*_SCALAR_METRICS, *_AT_K_METRICS, *_NOT_METRICS}
    return [
        (key, value)
        for key, value in sorted((metrics or {}).items())
        if key not in known and _finite(value) is not None
    ]


def _finite(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def render_model_card(
    model,
    *,
    config=None,
    metrics=None,
    repo_id=None,
    files=(),
    gallery=None,
    license=None,
    tags=(),
    template=None,
):
    """The model card (README.md) of a keras_sgm repo, from its config and metrics.

    Renders the Jinja2 `template` (default `TEMPLATE`) through
    `huggingface_hub.ModelCard.from_template`, whose YAML front matter carries
    `library_name: keras`, `pipeline_tag: image-feature-extraction`, the tags,
    the dataset and a `model-index` of the metrics present.

    Args:
        model: the `SGMModel`.
        config: optional dict, the training config.
        metrics: optional dict, the run's metrics.json.
        repo_id: optional str, named in the loading instructions.
        files: the repo's files (relative paths); figures/*.png are shown.
        gallery: optional `Gallery` published with the model.
        license: optional licence id for the front matter.
        tags: extra tags.
        template: optional path of a Jinja2 template (default `TEMPLATE`).

    Returns:
        The card's text, a str.
    """
    hub = _import_hub("Writing a model card")
    config = config or {}
    metrics = metrics or {}
    template = Path(template) if template is not None else TEMPLATE
    if not template.is_file():
        raise ValueError(
            f"No model card template at {template}; pass template= (the default ships inside "
            "keras_sgm, at keras_sgm/hub/model_card_template.md)."
        )
    dataset = config.get("dataset") or metrics.get("dataset")
    knn_k = int(config.get("knn_k") or 11)
    rows = evaluation_results(metrics, knn_k)
    model_name = repo_id.split("/")[-1] if repo_id else "keras_sgm-model"
    data = _card_data(hub, dataset, rows, model_name, license, tags)
    values = _template_values(model, config, metrics, dataset, rows, knn_k, files, gallery)
    card = hub.ModelCard.from_template(
        data,
        template_path=str(template),
        repo_id=repo_id,
        load_target=repo_id or "path/to/this/directory",
        model_name=model_name,
        **values,
    )
    return str(card)


def _dataset_title(dataset):
    return DATASETS[dataset].title if dataset in DATASETS else (dataset or "unknown data")


def _card_data(hub, dataset, rows, model_name, license, tags):
    """The card's YAML front matter: a `huggingface_hub.ModelCardData` with its model-index."""
    eval_results = [
        hub.EvalResult(
            task_type=row["task_type"],
            task_name=_TASK_NAMES[row["task_type"]],
            dataset_type=dataset or "unknown",
            dataset_name=_dataset_title(dataset),
            dataset_split="test",
            metric_type=row["metric"],
            metric_name=f"{row['task']}: {row['name']}",
            metric_value=row["value"],
        )
        for row in rows
    ]
    return hub.ModelCardData(
        library_name="keras",
        pipeline_tag="image-feature-extraction",
        license=license,
        tags=list(dict.fromkeys([*CARD_TAGS, *(t for t in tags if t)])),
        datasets=[dataset] if dataset else None,
        model_name=model_name,
        eval_results=eval_results or None,
    )


def _template_values(model, config, metrics, dataset, rows, knn_k, files, gallery):
    """What the template's sections read: the model, its run, its metrics and the repo's files."""
    class_ids = [int(c) for c in model.classes_]
    names = model.class_names or []
    gaussians = int(len(model.gaussian_ids))
    method = config.get("method") or metrics.get("method")
    return dict(
        dataset=dataset,
        dataset_title=_dataset_title(dataset),
        method=method,
        method_title=METHOD_TITLES.get(method),
        arch=config.get("arch") or metrics.get("arch") or model.encoder.name,
        config=config,
        input_desc=_input_description(model.encoder.input_shape[1:]),
        embedding_dim=model.embedding_dim,
        sigma=model.sigma,
        class_names=names,
        num_classes=len(class_ids) or len(names),
        num_gaussians=gaussians,
        subclasses=gaussians > len(class_ids),
        knn_k=knn_k,
        evaluation=[{**row, "shown": f"{row['value']:.4f}"} for row in rows],
        other_metrics=[{"name": k, "value": f"{v:.4g}"} for k, v in _other_metrics(metrics)],
        seconds_per_epoch=_finite(metrics.get("train_seconds_per_epoch")),
        files=list(files),
        figures=[
            {"path": f, "caption": _FIGURE_CAPTIONS.get(Path(f).stem, Path(f).stem)}
            for f in files
            if f.startswith("figures/") and f.endswith(".png")
        ],
        exports=_exports(files),
        gallery=None
        if gallery is None
        else {"size": len(gallery.labels), "thumbnails": gallery.thumbnails is not None},
        keras_sgm_version=__version__,
        keras_version=keras.__version__,
    )


_EXPORTS = {
    "exports/model.onnx": ("ONNX", "onnxruntime (any of its languages)"),
    "exports/model.tflite": (
        "LiteRT (TensorFlow Lite)",
        "the LiteRT interpreter (ai-edge-litert; LiteRT on Android and iOS)",
    ),
    "exports/saved_model/saved_model.pb": (
        "TensorFlow SavedModel",
        "TensorFlow Serving, tf.saved_model.load",
    ),
}


def _exports(files):
    """The `keras_sgm.export` files among a repo's files, as the card's rows."""
    rows = []
    for file, (title, runtime) in _EXPORTS.items():
        if file in files:
            path = "exports/saved_model/" if file.endswith(".pb") else file
            rows.append({"path": path, "title": title, "runtime": runtime})
    return rows


def _input_description(shape):
    if len(shape) == 3:
        height, width, channels = shape
        kind = {1: "gray", 3: "RGB"}.get(channels, f"{channels}-channel")
        return f"{height}x{width} {kind} images"
    return f"inputs of shape {tuple(shape)}"
