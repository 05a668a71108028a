"""The engine behind the Gradio app: classify faces, retrieve, browse groups, summarize albums.

`ExpressionEngine` holds a trained `SGMModel` (or its ONNX or LiteRT export,
`keras_sgm.deploy.ExportedModel`), its retrieval gallery (embeddings,
labels and thumbnails from a keras_sgm Hub repo) and an exact index over it,
and answers what the app's tabs ask, with NumPy arrays and plain Python
values, so it can be tested and served without Gradio:

- `classify(photo)`: every face of a photo with its class posteriors by Bayes'
  rule over the model's Gaussians and the vote of its K = 11 nearest gallery
  neighbours (paper section 4.2.2);
- `retrieve(embedding, k)`: the k most similar gallery images;
- `class_groups(name)`: a class's DGMS sub-classes (when the model has
  sub-class Gaussians) or EM groups, each with its medoid and Top-16 (paper
  Fig. 8), and `embedding_map()`: a t-SNE map of the gallery (Fig. 2);
- `summarize(photos, k)`: the k faces that represent an album best (the
  medoids of k EM groups, section 4.2.3).

Model calls are serialized by a lock (the LiteRT interpreter and Keras'
`predict_on_batch` are not thread-safe), so one engine serves Gradio's worker
threads.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition.
"""

import dataclasses
import logging
import os
import tempfile
import threading
import uuid
from pathlib import Path

import numpy as np

from keras_sgm import hub, viz
from keras_sgm.deploy import ExportedModel
from keras_sgm.dgms import find_groups, groups_of_labels, summarize_embeddings
from keras_sgm.evaluation import knn_vote
from keras_sgm.model import SGMModel
from keras_sgm.retrieval import ExactIndex
from keras_sgm.serving import faces as faces_lib
from keras_sgm.serving.runtime import RUNTIMES, export_path

logger = logging.getLogger("keras_sgm.serving")

MAX_ALBUM_PHOTOS = 200
"""Most photos `summarize` takes in one album."""


@dataclasses.dataclass(frozen=True)
class FaceResult:
    """One face of a classified photo.

    Attributes:
        face: the `keras_sgm.serving.faces.Face` (box, model input, thumbnail).
        embedding: float32 `[dim]`.
        posterior: `{class name: probability}` by Bayes' rule over the
            model's Gaussians, most probable first.
        knn_votes: `{class name: votes}` among the `k` nearest gallery
            images, most votes first (empty without a gallery).
        knn_label: the kNN decision (ties go to the nearer class), or None.
        uncertain: whether the Bayes answer's posterior is below the engine's
            `uncertain_below` level.
        known_score: the model's `known_score` of the face (its largest
            Gaussian log-likelihood), or None.
        rejected: whether that score is below the engine's `reject_below`: the
            face looks like none of the known expressions.
    """

    face: faces_lib.Face
    embedding: np.ndarray
    posterior: dict
    knn_votes: dict
    knn_label: str | None
    uncertain: bool = False
    known_score: float | None = None
    rejected: bool = False

    NO_CLEAR_EXPRESSION = "no clear expression"

    @property
    def label(self):
        """The most probable class by Bayes' rule."""
        return next(iter(self.posterior))

    @property
    def answer(self):
        """What to tell a visitor: `label`, or "no clear expression" for a rejected face."""
        return self.NO_CLEAR_EXPRESSION if self.rejected else self.label


@dataclasses.dataclass(frozen=True)
class Match:
    """A retrieved gallery image: its row, class name, distance and thumbnail (or None)."""

    index: int
    label: str
    distance: float
    thumbnail: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class AlbumSummary:
    """What `summarize` returns.

    Attributes:
        faces: the chosen `FaceResult`s, most representative group first.
        sources: the photo name of each chosen face.
        total_faces: the faces found in the album.
        messages: one line per photo that was refused or had no face, and
            per note (animated GIF, transparency, k lowered).
    """

    faces: list
    sources: list
    total_faces: int
    messages: list


class ExpressionEngine:
    """A served `SGMModel`: face detection, Bayes and kNN classification, retrieval and groups.

    Args:
        model: a trained `keras_sgm.SGMModel` with Gaussians (`fit_gaussians`),
            or a `keras_sgm.deploy.ExportedModel` (its ONNX or LiteRT export: the
            crops then go through onnxruntime or LiteRT, not Keras).
        gallery: optional `keras_sgm.hub.Gallery` for kNN, retrieval and
            the group browser; thumbnails make the images visible.
        detector: optional `keras_sgm.serving.faces.FaceDetector` (default: a new
            one with OpenCV's frontal-face cascade).
        knn_k: int, default 11 (the paper's K).
        margin: float, default 0.2; share of a detected box added on each
            side of the face crop.
        title: str, shown by the app (default: the model's name).
        metrics: optional dict, the model's evaluation (`metrics.json`).
        config: optional dict, the model's training config
            (`training_config.json`); its `dataset` is what the app says the
            model was trained on.
        uncertain_below: optional float in (0, 1); a face whose Bayes answer
            has a lower posterior is marked uncertain. Default: chosen on the
            gallery (the split saved with the model), as the posterior that
            95% of the gallery's right Bayes answers reach (0.5 without a
            gallery).
        reject_below: optional float; a face whose `known_score` is lower is
            answered "no clear expression". Default: the model's own
            `reject_below` (chosen on its validation split by training), else
            the score 95% of the gallery reaches, else none rejected.

    Examples:
        >>> import keras, numpy as np, keras_sgm
        >>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
        ...                             keras.layers.Dense(2)])
        >>> x = np.random.default_rng(0).uniform(size=(6, 8, 8, 1)).astype("float32")
        >>> model = keras_sgm.SGMModel(encoder, class_names=["neutral", "happiness"])
        >>> model = model.fit_gaussians(x, [0, 1, 0, 1, 0, 1])
        >>> engine = ExpressionEngine(model, detector=False)
        >>> photo = keras_sgm.serving.faces.read_photo(np.zeros((8, 8), "uint8"), name="crop.png")
        >>> [sorted(r.posterior) for r in engine.classify(photo, whole=True)]
        [['happiness', 'neutral']]
    """

    def __init__(
        self,
        model,
        gallery=None,
        detector=None,
        knn_k=11,
        margin=0.2,
        title=None,
        metrics=None,
        config=None,
        uncertain_below=None,
        reject_below=None,
    ):
        self.model = model
        self.size, self.channels = _input_size(model)
        self._exported = _is_export(model)  # the export's graph holds the head too
        self.class_names = _class_names(model, gallery)
        self.detector = faces_lib.FaceDetector() if detector is None else detector
        self.knn_k = int(knn_k)
        self.margin = float(margin)
        self.title = title or model.name
        self.metrics = metrics
        self.trained_on = (config or {}).get("dataset")
        self.gallery = gallery
        self.index = None if gallery is None else self._index(gallery)
        self._lock = threading.Lock()
        self._map = None
        self._figures = Path(tempfile.mkdtemp(prefix="keras_sgm_app_"))
        self.uncertain_below = self._uncertainty_level(uncertain_below)
        self.reject_below = self._rejection_level(reject_below)

    UNCERTAIN_SHARE = 0.95
    """The share of the gallery's right Bayes answers the default `uncertain_below` keeps, and
    of the gallery's known scores the default `reject_below` keeps."""

    def _index(self, gallery):
        """An exact index over the gallery's embeddings (K lowered to its size)."""
        dim = self.model.embedding_dim
        if gallery.embeddings.shape[1] != dim:
            raise ValueError(
                f"The gallery holds {gallery.embeddings.shape[1]}-d embeddings; the model "
                f"embeds in {dim}."
            )
        index = ExactIndex(gallery.embeddings, gallery.labels)
        self.knn_k = min(self.knn_k, len(index))
        return index

    def _has_gallery(self):
        return self.gallery is not None and len(self.gallery.labels) > 0

    def _uncertainty_level(self, given):
        """`given`, checked; else the posterior that `UNCERTAIN_SHARE` of the gallery's right
        Bayes answers reach (0.5 without a gallery)."""
        if given is not None:
            if not 0.0 < float(given) < 1.0:
                raise ValueError(f"uncertain_below must be in (0, 1); received {given}.")
            return float(given)
        if not self._has_gallery():
            return 0.5
        posterior = self.model.head.posterior(self.gallery.embeddings)
        answers = self.model.head.classes_[np.argmax(posterior, axis=1)]
        right = posterior.max(axis=1)[answers == self.gallery.labels]
        if not len(right):
            return 0.5
        level = np.quantile(right, 1.0 - self.UNCERTAIN_SHARE)
        return float(np.clip(level, 1e-6, 1.0 - 1e-6))

    def _rejection_level(self, given):
        """`given`; else the model's own `reject_below`; else the known score that
        `UNCERTAIN_SHARE` of the gallery reaches; else None (no face rejected)."""
        level = self.model.head.reject_below if given is None else given
        if level is None and self._has_gallery():
            scores = self.model.head.known_score(self.gallery.embeddings)
            level = np.quantile(scores, 1.0 - self.UNCERTAIN_SHARE)
        return None if level is None else float(level)

    @property
    def synthetic(self):
        """Whether the model was trained on the synthetic faces (its answers on real photos
        mean nothing)."""
        return self.trained_on == "synthetic_faces"

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, repo_id_or_dir, runtime="keras", **kwargs):
        """An `ExpressionEngine` over a keras_sgm repo (a local directory or a Hub repo id).

        Args:
            repo_id_or_dir: the repo.
            runtime: `"keras"` (default) runs the repo's `.keras` model; `"onnx"`
                (`"litert"`) its `exports/model.onnx` (`exports/model.tflite`),
                written by `scripts/push_to_hub.py --export onnx` (`litert`).
            **kwargs: as for `ExpressionEngine`.
        """
        if runtime not in RUNTIMES:
            raise ValueError(f"Unknown runtime {runtime!r}; choose one of {list(RUNTIMES)}.")
        repo = hub.load_pretrained(repo_id_or_dir)
        model = repo.model
        if runtime != "keras":
            model = ExportedModel(export_path(repo.path, runtime))
        title = str(repo_id_or_dir)
        if Path(title).is_dir():
            title = Path(title).resolve().name
        kwargs.setdefault("title", title)
        return cls(model, gallery=repo.gallery, metrics=repo.metrics, config=repo.config, **kwargs)

    @property
    def has_thumbnails(self):
        """Whether gallery images can be shown (the repo's gallery holds thumbnails)."""
        return self.gallery is not None and self.gallery.thumbnails is not None

    @property
    def has_subclasses(self):
        """Whether the model's Gaussians are DGMS sub-classes (more than one for some class)."""
        return len(self.model.head.gaussian_ids) > len(self.model.head.classes_)

    def name_of(self, class_id):
        """The name of a class id: `class_names[class_id]`."""
        return self.class_names[int(class_id)]

    # -------------------------------------------------------------- inference
    def _forward(self, crops):
        """The model's outputs for inputs `[n, size, size, channels]`, one locked run (the
        LiteRT interpreter and Keras' predict are not thread-safe): `{"embedding": ...}`,
        with the posteriors and known scores too when an export computed them."""
        crops = np.asarray(crops, np.float32).reshape(-1, self.size, self.size, self.channels)
        with self._lock:
            if self._exported:  # the whole exported graph at once
                outputs = self.model(crops)
            else:
                outputs = {"embedding": np.asarray(self.model.predict_on_batch(crops), np.float32)}
        if not np.all(np.isfinite(outputs["embedding"])):
            raise ValueError("The model gave non-finite embeddings for this input.")
        return outputs

    def embed(self, crops):
        """Embeddings `[n, dim]` of model inputs `[n, size, size, channels]` (thread-safe)."""
        return self._forward(crops)["embedding"]

    def _infer(self, crops):
        """Embeddings, class posteriors and known scores of model inputs: one run of an
        exported graph, or the Keras encoder then the Gaussian head."""
        outputs = self._forward(crops)
        embeddings = outputs["embedding"]
        if "posteriors" in outputs:
            return embeddings, outputs["posteriors"], outputs["known_score"]
        head = self.model.head
        return embeddings, head.posterior(embeddings), head.known_score(embeddings)

    def _search(self, embeddings, k):
        with self._lock:
            return self.index.search(embeddings, k)

    def _knn(self, embeddings):
        """`(votes, decisions)` over each embedding's `knn_k` nearest gallery images:
        `{class name: votes}`, most votes first, and the kNN decision (ties go to the nearer
        class); `{}` and None without a gallery."""
        if self.index is None:
            return [{} for _ in embeddings], [None] * len(embeddings)
        distances, rows = self._search(embeddings, self.knn_k)
        labels = self.index.labels[rows]
        decisions = [self.name_of(c) for c in knn_vote(labels, distances)]
        votes = []
        for row in labels:
            ids, counts = np.unique(row, return_counts=True)
            order = np.argsort(-counts, kind="stable")
            votes.append({self.name_of(ids[j]): int(counts[j]) for j in order})
        return votes, decisions

    def _results(self, found):
        """The `FaceResult` of each `Face` in `found`: one model run and one search for all."""
        if not found:
            return []
        embeddings, posterior, known = self._infer(np.stack([f.crop for f in found]))
        votes, decisions = self._knn(embeddings)
        classes = self.model.head.classes_
        results = []
        for i, face in enumerate(found):
            order = np.argsort(-posterior[i], kind="stable")
            probs = {self.name_of(classes[j]): float(posterior[i, j]) for j in order}
            score = float(known[i])
            result = FaceResult(
                face,
                embeddings[i],
                probs,
                votes[i],
                decisions[i],
                uncertain=float(posterior[i].max()) < self.uncertain_below,
                known_score=score,
                rejected=self.reject_below is not None and score < self.reject_below,
            )
            results.append(result)
        return results

    def faces_of(self, photo, whole=False):
        """The `Face`s of a `Photo` at the model's input size (see `faces.find_faces`)."""
        return faces_lib.find_faces(
            photo, self.detector, self.size, self.channels, whole=whole, margin=self.margin
        )

    def classify(self, photo, whole=False):
        """Every face of `photo` (a `faces.Photo`) as a `FaceResult`, left to right.

        Args:
            photo: a `keras_sgm.serving.faces.Photo` (`read_photo`).
            whole: bool, default False; use the photo as one face crop
                instead of detecting faces.

        Returns:
            A list of `FaceResult`; empty when no face was found.
        """
        return self._results(self.faces_of(photo, whole=whole))

    def retrieve(self, embedding, k=8):
        """The `k` gallery images nearest to an embedding, nearest first, as `Match`es."""
        if self.index is None:
            raise ValueError("This model repo has no gallery (gallery.npz): nothing to retrieve.")
        k = int(min(max(int(k), 1), len(self.index)))
        distances, rows = self._search(np.asarray(embedding, np.float32).reshape(1, -1), k)
        thumbnails = self.gallery.thumbnails
        return [
            Match(
                int(r),
                self.name_of(self.index.labels[r]),
                float(d),
                None if thumbnails is None else thumbnails[r],
            )
            for d, r in zip(distances[0], rows[0])
        ]

    # ----------------------------------------------------------------- groups
    def class_groups(self, class_name, n_groups=4, top_k=16):
        """The gallery images of one class, in groups with medoids and Top-k (paper Fig. 8).

        A DGMS model's sub-classes are used as they are: each gallery image
        of the class goes to its most probable sub-class Gaussian. Otherwise
        the class is split into `n_groups` EM groups (`dgms.find_groups`).

        Returns:
            `(groups, kind)`: a list of `dgms.Group` (indices into the
            gallery), and `"DGMS sub-classes"` or `"EM groups"`.
        """
        rows, groups, kind = self._local_groups(class_name, n_groups, top_k)
        return [_reindex(g, rows) for g in groups], kind

    def _local_groups(self, class_name, n_groups, top_k):
        """`(rows, groups, kind)`: the class's gallery rows, and groups indexing into them."""
        if self.gallery is None:
            raise ValueError("This model repo has no gallery (gallery.npz): no groups to show.")
        if class_name not in self.class_names:
            raise ValueError(f"Unknown class {class_name!r}; choose one of {self.class_names}.")
        c = self.class_names.index(class_name)
        rows = np.flatnonzero(self.gallery.labels == c)
        if rows.size == 0:
            raise ValueError(f"The gallery holds no image of {class_name!r}.")
        emb = self.gallery.embeddings[rows]
        head = self.model.head
        mine = np.flatnonzero(head.gaussian_classes == c)
        if mine.size > 1:
            posterior = head.gaussian_posterior(emb, gaussians=mine)
            sub = head.gaussian_ids[mine][np.argmax(posterior, axis=1)]
            groups, kind = groups_of_labels(emb, sub, top_k=top_k), "DGMS sub-classes"
        else:
            n = int(min(max(int(n_groups), 1), rows.size))
            groups, kind = find_groups(emb, n_groups=n, top_k=top_k), "EM groups"
        return rows, groups, kind

    def group_figure(self, class_name, n_groups=4, top_k=16):
        """`(png_path, kind, groups)`: the Top-k grid of a class's groups, medoids outlined."""
        if not self.has_thumbnails:
            raise ValueError("This model repo's gallery has no thumbnails: no images to show.")
        rows, groups, kind = self._local_groups(class_name, n_groups, top_k)
        # Only this class's thumbnails are converted.
        images = self.gallery.thumbnails[rows].astype(np.float32) / 255.0
        path = self._figures / f"groups_{self.class_names.index(class_name)}_{len(groups)}.png"
        word = "sub-class" if kind == "DGMS sub-classes" else "group"
        shown = [dataclasses.replace(g, label=i) for i, g in enumerate(groups)]
        names = {i: f"{class_name} {word} {i + 1}" for i in range(len(groups))}
        # Drawn under its own name, then moved into place at once: a concurrent
        # request for the same figure never reads it half-written.
        drawn = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.png")
        viz.plot_group_grid(images, shown, drawn, top_k=top_k, class_names=names)
        os.replace(drawn, path)
        return path, kind, [_reindex(g, rows) for g in groups]

    def embedding_map(self):
        """PNG path of a t-SNE map of the gallery embeddings, one colour per class (cached)."""
        if self.gallery is None:
            raise ValueError("This model repo has no gallery (gallery.npz): nothing to map.")
        with self._lock:
            if self._map is None:
                path = self._figures / "embedding_map.png"
                names = dict(enumerate(self.class_names))
                viz.plot_tsne(
                    self.gallery.embeddings, self.gallery.labels, path, names, max_points=1500
                )
                self._map = path
        return self._map

    # ------------------------------------------------------------------ album
    def summarize(self, sources, k, whole=False, names=None):
        """The `k` faces that represent an album: the medoids of `k` EM groups of all its faces.

        Args:
            sources: file paths (or anything `faces.read_photo` reads).
            k: positive int; lowered to the number of faces found, with a message.
            whole: bool, default False; use each photo whole as one face.
            names: optional names for the messages (default: file names).

        Returns:
            An `AlbumSummary`. Photos that cannot be read or hold no face are
            listed in its `messages`, and the others still summarized.

        Raises:
            ValueError: no photo, more than `MAX_ALBUM_PHOTOS`, or no face in
                any photo (the message lists why for each).
        """
        sources = list(sources or [])
        if not sources:
            raise ValueError("Upload some photos first.")
        if len(sources) > MAX_ALBUM_PHOTOS:
            raise ValueError(
                f"{len(sources)} photos uploaded; an album takes at most {MAX_ALBUM_PHOTOS}."
            )
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be at least 1; received {k}.")
        found, where, messages = self._album_faces(sources, whole, names)
        if not found:
            raise ValueError("No face found in the album. " + " ".join(messages))
        if k > len(found):
            messages.append(f"Only {len(found)} face(s) found: showing all of them, not {k}.")
            k = len(found)
        results = self._results(found)
        chosen = summarize_embeddings(np.stack([r.embedding for r in results]), k)
        return AlbumSummary(
            [results[i] for i in chosen], [where[i] for i in chosen], len(found), messages
        )

    def _album_faces(self, sources, whole, names):
        """`(faces, where, messages)`: every face of the album, the photo each is from
        (`"name #2"` in a photo of several), and a line per photo skipped or noted."""
        found, where, messages = [], [], []
        for i, source in enumerate(sources):
            try:
                photo = faces_lib.read_photo(source, name=names[i] if names else None)
            except faces_lib.PhotoError as error:
                messages.append(f"Skipped: {error}")
                continue
            messages.extend(photo.notes)
            these = self.faces_of(photo, whole=whole)
            if not these:
                messages.append(f"Skipped: no face found in {photo.name}.")
            for j, face in enumerate(these):
                found.append(face)
                where.append(photo.name if len(these) == 1 else f"{photo.name} #{j + 1}")
        return found, where, messages


def _reindex(group, rows):
    """A group over a subset, mapped back to the indices of the whole gallery."""
    return dataclasses.replace(
        group,
        members=rows[group.members],
        medoid=int(rows[group.medoid]),
        top_k=rows[group.top_k],
    )


def _is_export(model):
    return isinstance(model, ExportedModel)


def _input_size(model):
    """`(size, channels)` of the square gray or RGB images `model` embeds, after checking it
    is an `SGMModel` (or its export) with Gaussians."""
    if not isinstance(model, (SGMModel, ExportedModel)):
        raise ValueError(
            "model must be a keras_sgm.SGMModel (or an exported one, "
            f"keras_sgm.deploy.ExportedModel); received {type(model)}."
        )
    if len(model.head.gaussian_ids) == 0:
        raise ValueError(
            "The model has no Gaussians: call model.fit_gaussians(x_train, y_train) first."
        )
    shape = model.input_shape if isinstance(model, ExportedModel) else model.encoder.input_shape
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] not in (1, 3):
        raise ValueError(f"The app serves square gray or RGB image models; this one takes {shape}.")
    return int(shape[1]), int(shape[3])


def _class_names(model, gallery):
    """The model's class names, extended with `"class c"` for every class id without a name
    (a gallery class without a Gaussian included)."""
    known = [int(max(model.head.classes_))]
    if gallery is not None and len(gallery.labels):
        known.append(int(gallery.labels.max()))
    names = list(model.head.class_names or [])
    return names + [f"class {c}" for c in range(len(names), max(known) + 1)]
