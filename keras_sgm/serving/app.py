"""keras_sgm's Gradio app: classify facial expressions, retrieve, browse clusters, summarize albums.

    python apps/app.py                                # the default model (trained once, cached)
    python apps/app.py --model ORG/NAME               # a keras_sgm repo on the Hugging Face Hub
    python apps/app.py --model path/to/repo --port 7860
    python apps/app.py --model path/to/repo --runtime onnx   # its exports/model.onnx

--model takes a keras_sgm model repo (written by scripts/push_to_hub.py or
keras_sgm.hub.save_pretrained), on the Hub or in a local directory; the
KERAS_SGM_MODEL environment variable does the same, and so does the first of
`models:` in the README.md beside the launcher (a Space's front matter). Without
any, the app serves the default model: FMPNet trained with SGMLoss on the
synthetic faces, trained on first start (about a minute on 2 CPU cores) and cached in
$KERAS_SGM_DEMO_MODEL (default ~/.cache/keras_sgm/demo_synthetic_faces).
--runtime onnx (or litert; $KERAS_SGM_RUNTIME) serves the repo's exported model
(scripts/push_to_hub.py --export onnx) with onnxruntime instead of Keras.

This module lays out the page (`build_app`, one function per tab) and serves it
(`main`); the answers come from keras_sgm.serving's `handlers` over its `engine`.
"""

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from keras_sgm.serving import faces
from keras_sgm.serving.default_model import ensure_default_model
from keras_sgm.serving.engine import ExpressionEngine
from keras_sgm.serving.examples import write_examples
from keras_sgm.serving.handlers import CLASSIFY_HEADERS, DETECT, WHOLE, Handlers
from keras_sgm.serving.response_files import Gallery, Image, import_gradio
from keras_sgm.serving.runtime import RUNTIMES
from keras_sgm.serving.space import space_model

gr = import_gradio()
# Gradio reads it when a page is made and when it is launched: no usage statistics are sent.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

logger = logging.getLogger("keras_sgm.app")

ABOUT = """
**How it works.** The model maps a face to a 64-d embedding trained with the *Structured Gaussian
Manifold* loss: every expression is a Gaussian whose mean is the mean of its embeddings, and
training makes each face's posterior by Bayes' rule match its label. So a face is classified
twice: by **Bayes' rule** over the class Gaussians, and by the vote of its **K = 11 nearest**
gallery faces. **DGMS** splits classes into sub-classes (the *Browse clusters* tab), and the
medoids of EM groups **summarize an album**. Paper: *Deep Metric Structured Learning For Facial
Expression Recognition*; code: keras_sgm.
"""


def synthetic_banner(engine):
    """The warning shown first when the model was trained on the synthetic faces, else `""`."""
    if not engine.synthetic:
        return ""
    return (
        "> ⚠️ **This model was trained on synthetic faces**: procedurally drawn cartoons, not "
        "photos of people. It shows how the method works; **its answers on real photos mean "
        "nothing**, and its test-split figures are on the synthetic faces. Serve a model "
        "trained on real expressions with `--model` for real use."
    )


def _examples(items, inputs, label, elem_id):
    """Example photos as thumbnails; a click puts `(path, mode)` into `inputs`."""
    shown = gr.Gallery(
        [(str(path), path.stem) for path, _ in items],
        label=label,
        columns=min(len(items), 10),
        height=150,
        allow_preview=False,
        elem_id=elem_id,
    )

    def choose(event: gr.SelectData):
        path, mode = items[event.index]
        return str(path), mode

    shown.select(choose, None, inputs, api_name=False)
    return shown


def _photo_inputs(label):
    """A photo to upload, or to take with the webcam, and how to find its faces."""
    upload = gr.File(label=label, file_types=["image"], type="filepath")
    webcam = gr.Image(label="...or a webcam photo", sources=["webcam"], type="numpy")
    mode = gr.Radio([DETECT, WHOLE], value=DETECT, label="Faces")
    return upload, webcam, mode


def build_app(engine, examples_dir=None):
    """The Gradio Blocks page over an `ExpressionEngine`: a header, then one tab per task.

    Args:
        engine: the `keras_sgm.serving.engine.ExpressionEngine` that answers.
        examples_dir: optional folder for the example photos (default: a new
            temporary folder).

    Returns:
        The `gr.Blocks`; `launch` serves it.
    """
    handlers = Handlers(engine)
    examples = _example_photos(engine, examples_dir)
    with gr.Blocks(title="keras_sgm: facial expressions") as app:
        _header(engine)
        with gr.Tab("Classify"):
            _classify_tab(engine, handlers, examples)
        with gr.Tab("Retrieve"):
            _retrieve_tab(handlers, examples)
        with gr.Tab("Browse clusters"):
            _browse_tab(engine, handlers)
        with gr.Tab("Summarize album"):
            _album_tab(handlers, examples)
    return app


def _example_photos(engine, examples_dir):
    """The example photos (`write_examples`), or None when the detector finds no example face."""
    examples_dir = Path(examples_dir or tempfile.mkdtemp(prefix="keras_sgm_examples_"))
    try:
        return write_examples(examples_dir, engine.detector)
    except ValueError as error:  # the cascade found no synthetic face: no group example
        logger.warning("examples: %s", error)
        return None


def _header(engine):
    """The warning about synthetic training data (if any), the title line and the method."""
    metrics = engine.metrics or {}
    figures = [
        f"{k} {metrics[v]:.3f}"
        for k, v in (
            ("kNN accuracy", "knn_accuracy"),
            ("Bayes accuracy", "bayes_accuracy"),
            ("k-means NMI", "nmi"),
        )
        if v in metrics
    ]
    trained_on = f" ({engine.trained_on})" if engine.trained_on else ""
    banner = synthetic_banner(engine)
    if banner:
        gr.Markdown(banner, elem_id="synthetic-warning")
    gr.Markdown(
        f"# Facial expressions with deep metric structured learning\n"
        f"Model: `{engine.title}` ({len(engine.class_names)} classes"
        + (f"; test split{trained_on}: {', '.join(figures)}" if figures else "")
        + f"; gallery: {len(engine.index) if engine.index is not None else 0} faces)."
    )
    with gr.Accordion("About the method", open=False):
        gr.Markdown(ABOUT)


def _classify_tab(engine, handlers, examples):
    with gr.Row():
        with gr.Column():
            upload, webcam, mode = _photo_inputs("Photo")
            button = gr.Button("Classify", variant="primary")
        with gr.Column():
            status = gr.Markdown(label="Status", elem_id="classify-status")
            boxed = Image(label="Faces found", type="numpy", format="png", interactive=False)
            posterior = gr.Label(
                label="Face 1: posterior by Bayes' rule, every class",
                num_top_classes=len(engine.class_names),
            )
            table = gr.Dataframe(
                headers=CLASSIFY_HEADERS,
                label="Every face",
                interactive=False,
            )
    button.click(
        handlers.classify,
        [upload, webcam, mode],
        [boxed, posterior, table, status],
        api_name="classify",
    )
    if examples:
        _examples(
            [(examples["group"], DETECT)] + [(p, WHOLE) for p in examples["faces"]],
            [upload, mode],
            "Examples: click one (synthetic faces, a stand-in, not real people)",
            "classify-examples",
        )


def _retrieve_tab(handlers, examples):
    with gr.Row():
        with gr.Column():
            upload, webcam, mode = _photo_inputs("Query photo")
            k = gr.Slider(1, 32, value=8, step=1, label="K (gallery faces)")
            face = gr.Number(value=1, precision=0, label="Face number (left to right)")
            button = gr.Button("Retrieve", variant="primary")
        with gr.Column():
            status = gr.Markdown(label="Status", elem_id="retrieve-status")
            query = Image(label="Query face", interactive=False, height=120)
            gallery = Gallery(label="Nearest gallery faces", columns=8, height=300)
            table = gr.Dataframe(
                headers=["rank", "label", "distance", "gallery row"],
                label="Matches",
                interactive=False,
            )
    button.click(
        handlers.retrieve,
        [upload, webcam, mode, k, face],
        [query, gallery, table, status],
        api_name="retrieve",
    )
    if examples:
        _examples(
            [(p, WHOLE) for p in examples["faces"][:4]],
            [upload, mode],
            "Examples: click one",
            "retrieve-examples",
        )


def _browse_tab(engine, handlers):
    with gr.Row():
        name = gr.Dropdown(engine.class_names, value=engine.class_names[0], label="Class")
        groups = gr.Slider(2, 8, value=4, step=1, label="EM groups (without DGMS)")
        button = gr.Button("Show", variant="primary")
    status = gr.Markdown(label="Status", elem_id="browse-status")
    # The grid is 16 faces wide: it gets the page's width, the map goes below.
    # Labels off: they would cover the figures' own titles.
    grid = Image(
        label="Groups: medoid and Top-16",
        show_label=False,
        elem_id="group-grid",
        interactive=False,
    )
    embedding_map = Image(
        label="2-D map of the embedding (t-SNE)",
        show_label=False,
        elem_id="embedding-map",
        interactive=False,
        width=700,
    )
    button.click(handlers.browse, [name, groups], [grid, embedding_map, status], api_name="browse")


def _album_tab(handlers, examples):
    with gr.Row():
        with gr.Column():
            files = gr.File(
                label="Photos",
                file_count="multiple",
                file_types=["image"],
                type="filepath",
            )
            k = gr.Slider(1, 16, value=8, step=1, label="K (faces to show)")
            mode = gr.Radio([DETECT, WHOLE], value=DETECT, label="Faces")
            button = gr.Button("Summarize", variant="primary")
        with gr.Column():
            status = gr.Markdown(label="Status", elem_id="album-status")
            gallery = Gallery(label="Representative faces", columns=4)
    button.click(handlers.summarize, [files, k, mode], [gallery, status], api_name="summarize")
    if examples:
        album = [str(p) for p in examples["album"]]
        gr.Gallery(
            album,
            label=f"Example album: {len(album)} synthetic faces",
            columns=12,
            height=150,
            allow_preview=False,
            elem_id="album-example",
        )
        use = gr.Button("Use the example album")
        use.click(lambda: (album, 8, WHOLE), None, [files, k, mode], api_name=False)


def load_engine(model=None, progress=print, app_dir=None, runtime=None):
    """The engine the app serves: `ExpressionEngine.from_pretrained` of the model repo chosen.

    Args:
        model: optional str, a keras_sgm repo (`--model`: Hub id or directory); else
            $KERAS_SGM_MODEL, else the first of `models:` in `app_dir/README.md` (a
            Space's front matter), else the default model (trained and cached on
            first use, `keras_sgm.serving.default_model`).
        progress: callable taking a message, for the default model's first use.
        app_dir: optional folder of the launcher.
        runtime: optional str (`--runtime`): `"keras"`, `"onnx"` or `"litert"`; else
            $KERAS_SGM_RUNTIME, else `"keras"`.
    """
    model = model or os.environ.get("KERAS_SGM_MODEL")
    model = model or (space_model(app_dir) if app_dir is not None else None)
    runtime = runtime or os.environ.get("KERAS_SGM_RUNTIME") or "keras"
    model = model or ensure_default_model(progress=progress, runtime=runtime)
    return ExpressionEngine.from_pretrained(model, runtime=runtime)


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--model", help="a keras_sgm repo: Hub id ORG/NAME or a local directory")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=None,
        help="run the model with Keras (default) or its exports/model.onnx (.tflite)",
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--concurrency", type=int, default=4, help="requests run at once")
    parser.add_argument("--queue-size", type=int, default=64, help="requests waiting at most")
    return parser


def launch(app, host="127.0.0.1", port=7860, concurrency=4, queue_size=64, **kwargs):
    """Serve `app` with the queue and upload limits the app relies on.

    `concurrency` requests run at once and `queue_size` wait at most; an upload
    larger than `faces.MAX_BYTES` is refused by the server itself. `kwargs` go to
    `gr.Blocks.launch`.
    """
    app.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    return app.launch(
        server_name=host,
        server_port=port,
        max_file_size=faces.MAX_BYTES,
        show_error=True,
        **kwargs,
    )


def main(argv=None, app_dir=None):
    """Parse `argv`, load the model and serve the app; `app_dir` is the launcher's folder."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        engine = load_engine(args.model, app_dir=app_dir, runtime=args.runtime)
    except (ValueError, OSError, ImportError, RuntimeError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    launch(build_app(engine), args.host, args.port, args.concurrency, args.queue_size)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
