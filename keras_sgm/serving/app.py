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

All logic lives in keras_sgm.serving (engine, faces, examples, default_model); this
module lays out the page, one function per tab, and `apps/app.py` launches it.
"""

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

try:
    import gradio as gr
except ImportError as error:  # pragma: no cover - only without the extra
    raise SystemExit("The app needs Gradio: pip install 'keras-sgm[app]'.") from error
import numpy as np  # noqa: E402

from keras_sgm.serving import engine, faces  # noqa: E402
from keras_sgm.serving.default_model import ensure_demo_exported, ensure_demo_model  # noqa: E402
from keras_sgm.serving.examples import write_examples  # noqa: E402
from keras_sgm.serving.runtime import RUNTIMES  # noqa: E402
from keras_sgm.serving.space import space_model  # noqa: E402

logger = logging.getLogger("keras_sgm.app")

DETECT, WHOLE = "Detect faces (OpenCV)", "The photo is one face crop"
MAX_DISPLAY_SIDE = 1024

ABOUT = """
**How it works.** The model maps a face to a 64-d embedding trained with the *Structured Gaussian
Manifold* loss: every expression is a Gaussian whose mean is the mean of its embeddings, and
training makes each face's posterior by Bayes' rule match its label. So a face is classified
twice: by **Bayes' rule** over the class Gaussians, and by the vote of its **K = 11 nearest**
gallery faces. **DGMS** splits classes into sub-classes (the *Browse clusters* tab), and the
medoids of EM groups **summarize an album**. Paper: *Deep Metric Structured Learning For Facial
Expression Recognition*; code: keras_sgm.
"""


class _OwnFiles:
    """A Gradio output whose files belong to one response alone.

    Gradio names the file of an output image by its content and rewrites it in
    place, so identical answers to concurrent requests share one file that can be
    served half-written (a "peer closed connection" under load). This mixin gives
    every response a folder of its own inside Gradio's upload folder, where Gradio
    serves files as they are; folders older than `MAX_AGE_S` are removed.

    The component's `GRADIO_CACHE` (where Gradio writes its files) reads, in the
    thread running `postprocess`, that response's folder, and everywhere else the
    shared upload folder.
    """

    MAX_AGE_S = 3600
    PRUNE_EVERY_S = 60  # not on every response: the folder holds up to an hour's answers
    _local = threading.local()
    _pruned_at = 0.0

    @property
    def GRADIO_CACHE(self):  # noqa: N802 - Gradio's attribute name
        own = getattr(_OwnFiles._local, "folders", {}).get(id(self))
        return own or self.__dict__.get("_shared_cache")

    @GRADIO_CACHE.setter
    def GRADIO_CACHE(self, value):  # noqa: N802
        self._shared_cache = value

    def postprocess(self, value):
        root = Path(self._shared_cache) / "keras_sgm_responses"
        self._prune(root)
        folders = _OwnFiles._local.__dict__.setdefault("folders", {})
        folders[id(self)] = str(root / uuid.uuid4().hex)
        try:
            return super().postprocess(value)
        finally:
            del folders[id(self)]

    @classmethod
    def _prune(cls, root):
        now = time.time()
        if now - _OwnFiles._pruned_at < cls.PRUNE_EVERY_S or not root.is_dir():
            return
        _OwnFiles._pruned_at = now
        old = now - cls.MAX_AGE_S
        for folder in root.iterdir():
            try:
                if folder.stat().st_mtime < old:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:  # removed meanwhile
                pass


@contextlib.contextmanager
def _no_stub_files():
    """Define Gradio component subclasses without the `.pyi` stub Gradio writes beside them.

    Gradio's component metaclass writes type stubs next to the defining module, a
    help for authors of custom components; here it would litter apps/ (or fail in a
    read-only install).
    """
    from gradio import component_meta

    write = getattr(component_meta, "create_or_modify_pyi", None)
    if write is not None:
        component_meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        yield
    finally:
        if write is not None:
            component_meta.create_or_modify_pyi = write


with _no_stub_files():

    class Image(_OwnFiles, gr.Image):
        """`gr.Image` with files of its own per response."""

    class Gallery(_OwnFiles, gr.Gallery):
        """`gr.Gallery` with files of its own per response."""


def _message(lines):
    lines = [line for line in lines if line]
    return "\n".join(f"- {line}" for line in lines)


def _warning(text):
    return f"⚠️ {text}"


def _rgb(thumbnail):
    return thumbnail if thumbnail.shape[-1] == 3 else np.repeat(thumbnail, 3, axis=-1)


BOX_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189))
"""The colour of face i's box and caption (cycling): distinct, and readable under white text."""


def _display(photo, results):
    """The photo (at most MAX_DISPLAY_SIDE a side) with each face's box and caption drawn in:
    one image, what the page shows (no mask per face to write and send)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(photo.pixels).convert("RGB")
    scale = min(1.0, MAX_DISPLAY_SIDE / max(image.size))
    if scale < 1.0:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.BOX)
    if not results:
        return np.asarray(image)
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 300))
    font = ImageFont.load_default(size=max(11, round(max(image.size) / 45)))
    for i, result in enumerate(results):
        x, y, w, h = (round(v * scale) for v in result.face.box)
        colour = BOX_COLOURS[i % len(BOX_COLOURS)]
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=colour, width=line)
        text = _caption(i + 1, result)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 2 * line, bottom - top + 2 * line
        ty = y - th if y - th >= 0 else min(y + h, image.height - th)  # above, else below
        tx = min(max(0, x), max(0, image.width - tw))
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=colour)
        draw.text((tx + line - left, ty + line - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def _caption(number, result):
    """`"1: happiness 0.93"`, `" (uncertain)"` below the demo's level, or
    `"1: no clear expression"` for a face the model rejects."""
    if result.rejected:
        return f"{number}: {result.answer}"
    text = f"{number}: {result.label} {result.posterior[result.label]:.2f}"
    return text + (" (uncertain)" if result.uncertain else "")


def _confidence(result):
    if result.rejected:
        return "rejected"
    return "uncertain" if result.uncertain else "clear"


def synthetic_banner(demo):
    """The warning shown first when the model was trained on the synthetic faces."""
    if not demo.synthetic:
        return ""
    return (
        "> ⚠️ **This model was trained on synthetic faces**: procedurally drawn cartoons, not "
        "photos of people. It shows how the method works; **its answers on real photos mean "
        "nothing**, and its test-split figures are on the synthetic faces. Serve a model "
        "trained on real expressions with `--model` for real use."
    )


def _read(upload, webcam):
    """The `Photo` of an upload (file path) or webcam frame; `PhotoError` if unusable."""
    if upload:
        return faces.read_photo(upload)
    if webcam is not None:
        return faces.read_photo(webcam, name="webcam photo")
    raise faces.PhotoError("Upload a photo or take one with the webcam first.")


def _no_face(photo, mode):
    if mode == WHOLE:
        return f"No face in {photo.name}."
    return (
        f"No face found in {photo.name} (OpenCV's frontal-face detector). If the photo is "
        f"already a cropped face, choose '{WHOLE}'."
    )


class Handlers:
    """The app's callbacks over an `ExpressionDemo`: each turns bad input into a message."""

    def __init__(self, demo):
        self.demo = demo

    def _faces(self, upload, webcam, mode):
        photo = _read(upload, webcam)
        results = self.demo.classify(photo, whole=mode == WHOLE)
        return photo, results

    def classify(self, upload, webcam=None, mode=DETECT):
        try:
            photo, results = self._faces(upload, webcam, mode)
        except (faces.PhotoError, ValueError) as error:
            return None, None, [], _warning(error)
        if not results:
            return _display(photo, []), None, [], _warning(_no_face(photo, mode))
        rows = []
        for i, r in enumerate(results):
            votes = ", ".join(f"{name} {n}" for name, n in r.knn_votes.items())
            rows.append(
                [
                    i + 1,
                    r.answer,
                    round(r.posterior[r.label], 4),
                    _confidence(r),
                    r.knn_label or "-",
                    votes or "-",
                ]
            )
        first = results[0]
        if first.rejected:
            lines = [
                f"{len(results)} face(s) in {photo.name}. Face 1: **{first.answer}**: it looks "
                "like none of the expressions the model knows (its Gaussian score "
                f"{first.known_score:.3g} is below {self.demo.reject_below:.3g})."
            ]
        else:
            lines = [
                f"{len(results)} face(s) in {photo.name}. Face 1: **{first.label}** by Bayes' rule"
                + (
                    f", **{first.knn_label}** by its {self.demo.knn_k} nearest neighbours."
                    if first.knn_label
                    else "."
                )
            ]
        rejected = [str(i + 1) for i, r in enumerate(results) if r.rejected and i]
        if rejected:  # face 1's answer is the first line already
            lines.append(f"No clear expression: face(s) {', '.join(rejected)}.")
        unsure = [str(i + 1) for i, r in enumerate(results) if r.uncertain and not r.rejected]
        if unsure:
            lines.append(
                f"Uncertain: face(s) {', '.join(unsure)}, whose posterior is below "
                f"{self.demo.uncertain_below:.2f} (the level "
                f"{self.demo.UNCERTAIN_SHARE:.0%} of the gallery's right answers reach)."
            )
        return _display(photo, results), first.posterior, rows, _message([*lines, *photo.notes])

    def retrieve(self, upload, webcam=None, mode=DETECT, k=8, which=1):
        try:
            photo, results = self._faces(upload, webcam, mode)
            if not results:
                raise faces.PhotoError(_no_face(photo, mode))
            which = int(which)
            if not 1 <= which <= len(results):
                raise faces.PhotoError(
                    f"{photo.name} holds {len(results)} face(s); choose a face from 1 to "
                    f"{len(results)}."
                )
            query = results[which - 1]
            matches = self.demo.retrieve(query.embedding, int(k))
        except (faces.PhotoError, ValueError) as error:
            return None, [], [], _warning(error)
        items = [
            (_rgb(m.thumbnail), f"{m.label} · d = {m.distance:.3f}")
            for m in matches
            if m.thumbnail is not None
        ]
        rows = [[i + 1, m.label, round(m.distance, 4), m.index] for i, m in enumerate(matches)]
        lines = [f"The {len(matches)} gallery faces nearest to face {which} ({query.answer})."]
        if not self.demo.has_thumbnails:
            lines.append("This model's gallery has no thumbnails: only labels are shown.")
        return _rgb(query.face.thumbnail), items, rows, _message([*lines, *photo.notes])

    def browse(self, class_name, n_groups):
        try:
            path, kind, groups = self.demo.group_figure(class_name, int(n_groups))
            embedding_map = self.demo.embedding_map()
        except ValueError as error:
            return None, None, _warning(error)
        sizes = ", ".join(str(g.size) for g in groups)
        text = (
            f"**{class_name}**: {len(groups)} {kind} of the gallery (sizes {sizes}); each row is "
            "a group's Top-16, its medoid (outlined) first. "
            + (
                "The model's own DGMS sub-class Gaussians define them."
                if kind.startswith("DGMS")
                else "This model has one Gaussian per class, so EM finds the groups "
                "(the number of groups applies)."
            )
        )
        return str(path), str(embedding_map), text

    def summarize(self, uploads, k, mode):
        uploads = uploads or []
        try:
            summary = self.demo.summarize(uploads, int(k), whole=mode == WHOLE)
        except (faces.PhotoError, ValueError) as error:
            return [], _warning(error)
        items = [
            (_rgb(r.face.thumbnail), f"{source} · {r.answer}")
            for r, source in zip(summary.faces, summary.sources)
        ]
        head = (
            f"{len(summary.faces)} faces chosen from {summary.total_faces} in "
            f"{len(uploads)} photo(s): the medoids of EM groups, largest group first."
        )
        return items, _message([head, *summary.messages])


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


def build_app(demo, examples_dir=None):
    """The Gradio Blocks page over an `ExpressionDemo`: a header, then one tab per task."""
    handlers = Handlers(demo)
    examples = _example_photos(demo, examples_dir)
    with gr.Blocks(title="keras_sgm: facial expressions") as app:
        _header(demo)
        with gr.Tab("Classify"):
            _classify_tab(demo, handlers, examples)
        with gr.Tab("Retrieve"):
            _retrieve_tab(handlers, examples)
        with gr.Tab("Browse clusters"):
            _browse_tab(demo, handlers)
        with gr.Tab("Summarize album"):
            _album_tab(handlers, examples)
    return app


def _example_photos(demo, examples_dir):
    """The example photos (`write_examples`), or None when the detector finds no example face."""
    examples_dir = Path(examples_dir or tempfile.mkdtemp(prefix="keras_sgm_examples_"))
    try:
        return write_examples(examples_dir, demo.detector)
    except ValueError as error:  # the cascade found no synthetic face: no group example
        logger.warning("examples: %s", error)
        return None


def _header(demo):
    """The warning about synthetic training data (if any), the title line and the method."""
    metrics = demo.metrics or {}
    figures = [
        f"{k} {metrics[v]:.3f}"
        for k, v in (
            ("kNN accuracy", "knn_accuracy"),
            ("Bayes accuracy", "bayes_accuracy"),
            ("k-means NMI", "nmi"),
        )
        if v in metrics
    ]
    trained_on = f" ({demo.trained_on})" if demo.trained_on else ""
    banner = synthetic_banner(demo)
    if banner:
        gr.Markdown(banner, elem_id="synthetic-warning")
    gr.Markdown(
        f"# Facial expressions with deep metric structured learning\n"
        f"Model: `{demo.title}` ({len(demo.class_names)} classes"
        + (f"; test split{trained_on}: {', '.join(figures)}" if figures else "")
        + f"; gallery: {len(demo.index) if demo.index is not None else 0} faces)."
    )
    with gr.Accordion("About the method", open=False):
        gr.Markdown(ABOUT)


def _classify_tab(demo, handlers, examples):
    with gr.Row():
        with gr.Column():
            upload, webcam, mode = _photo_inputs("Photo")
            button = gr.Button("Classify", variant="primary")
        with gr.Column():
            status = gr.Markdown(label="Status", elem_id="classify-status")
            boxed = Image(label="Faces found", type="numpy", format="png", interactive=False)
            posterior = gr.Label(
                label="Face 1: posterior by Bayes' rule, every class",
                num_top_classes=len(demo.class_names),
            )
            table = gr.Dataframe(
                headers=[
                    "face",
                    "Bayes class",
                    "probability",
                    "confidence",
                    "kNN vote",
                    "votes (K)",
                ],
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


def _browse_tab(demo, handlers):
    with gr.Row():
        name = gr.Dropdown(demo.class_names, value=demo.class_names[0], label="Class")
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


def load_demo(model=None, progress=print, app_dir=None, runtime=None):
    """The `ExpressionDemo` for `--model`, else $KERAS_SGM_MODEL, else the first of the
    `models:` of the README.md in `app_dir` (a Space's folder), else the default model;
    run by `runtime` (`--runtime`, else $KERAS_SGM_RUNTIME, else `"keras"`)."""
    model = model or os.environ.get("KERAS_SGM_MODEL")
    model = model or (space_model(app_dir) if app_dir is not None else None)
    runtime = runtime or os.environ.get("KERAS_SGM_RUNTIME") or "keras"
    if not model and runtime != "keras":
        model = ensure_demo_exported(runtime, progress=progress)
    elif not model:
        model = ensure_demo_model(progress=progress)
    return engine.ExpressionDemo.from_pretrained(model, runtime=runtime)


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
    """Start the server with the queue and upload limits the app relies on."""
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
        demo = load_demo(args.model, app_dir=app_dir, runtime=args.runtime)
    except (ValueError, OSError, ImportError, RuntimeError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    launch(build_app(demo), args.host, args.port, args.concurrency, args.queue_size)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
