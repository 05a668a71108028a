"""The app's event handlers: what each button of the page answers, over an `ExpressionEngine`.

`Handlers.classify`, `retrieve`, `browse` and `summarize` take the values of
the page's inputs (a file path or a webcam frame, the "Faces" choice, K) and
return what its outputs show (an image, a posterior, table rows, Markdown), in
the order the page lists them. Bad input (an unreadable photo, no face, a face
number out of range) comes back as a warning in the status line, with empty
outputs, instead of an error. Nothing here imports Gradio, so the handlers run
and are tested without a server.
"""

import numpy as np

from keras_sgm.serving import faces
from keras_sgm.serving.drawing import draw_faces

DETECT, WHOLE = "Detect faces (OpenCV)", "The photo is one face crop"
"""The choices of the page's "Faces" input: find the faces, or take the photo as one face crop."""

CLASSIFY_HEADERS = ["face", "Bayes class", "probability", "confidence", "kNN vote", "votes (K)"]
"""The columns of the rows `Handlers.classify` returns, one row per face."""


def _message(lines):
    """Markdown: one bullet per non-empty line."""
    return "\n".join(f"- {line}" for line in lines if line)


def _warning(text):
    return f"⚠️ {text}"


def _rgb(thumbnail):
    return thumbnail if thumbnail.shape[-1] == 3 else np.repeat(thumbnail, 3, axis=-1)


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


def _confidence(result):
    if result.rejected:
        return "rejected"
    return "uncertain" if result.uncertain else "clear"


def _classify_row(number, result):
    """A face's row under `CLASSIFY_HEADERS`."""
    votes = ", ".join(f"{name} {n}" for name, n in result.knn_votes.items())
    return [
        number,
        result.answer,
        round(result.posterior[result.label], 4),
        _confidence(result),
        result.knn_label or "-",
        votes or "-",
    ]


class Handlers:
    """The app's callbacks over an `ExpressionEngine`: each turns bad input into a message.

    Args:
        engine: the `keras_sgm.serving.engine.ExpressionEngine` that answers.
    """

    def __init__(self, engine):
        self.engine = engine

    def _faces(self, upload, webcam, mode):
        photo = _read(upload, webcam)
        return photo, self.engine.classify(photo, whole=mode == WHOLE)

    def classify(self, upload, webcam=None, mode=DETECT):
        """`(image, posterior, rows, status)`: the photo with its faces boxed, face 1's
        posterior `{class: probability}`, one row per face (`CLASSIFY_HEADERS`), Markdown."""
        try:
            photo, results = self._faces(upload, webcam, mode)
        except (faces.PhotoError, ValueError) as error:
            return None, None, [], _warning(error)
        if not results:
            return draw_faces(photo, []), None, [], _warning(_no_face(photo, mode))
        rows = [_classify_row(i + 1, r) for i, r in enumerate(results)]
        lines = self._classify_lines(photo, results)
        return draw_faces(photo, results), results[0].posterior, rows, _message(lines)

    def _classify_lines(self, photo, results):
        """The status of a classified photo: face 1's answers, then the faces rejected or
        uncertain, then the photo's notes."""
        engine, first = self.engine, results[0]
        head = f"{len(results)} face(s) in {photo.name}. Face 1: "
        if first.rejected:
            head += (
                f"**{first.answer}**: it looks like none of the expressions the model knows "
                f"(its Gaussian score {first.known_score:.3g} is below "
                f"{engine.reject_below:.3g})."
            )
        else:
            head += f"**{first.label}** by Bayes' rule" + (
                f", **{first.knn_label}** by its {engine.knn_k} nearest neighbours."
                if first.knn_label
                else "."
            )
        lines = [head]
        rejected = [str(i + 1) for i, r in enumerate(results) if r.rejected and i]
        if rejected:  # face 1's answer is the first line already
            lines.append(f"No clear expression: face(s) {', '.join(rejected)}.")
        unsure = [str(i + 1) for i, r in enumerate(results) if r.uncertain and not r.rejected]
        if unsure:
            lines.append(
                f"Uncertain: face(s) {', '.join(unsure)}, whose posterior is below "
                f"{engine.uncertain_below:.2f} (the level "
                f"{engine.UNCERTAIN_SHARE:.0%} of the gallery's right answers reach)."
            )
        return [*lines, *photo.notes]

    def retrieve(self, upload, webcam=None, mode=DETECT, k=8, which=1):
        """`(query face, gallery items, rows, status)`: face `which`'s thumbnail, the `k`
        nearest gallery faces as `(image, caption)`, their rows, Markdown."""
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
            matches = self.engine.retrieve(query.embedding, int(k))
        except (faces.PhotoError, ValueError) as error:
            return None, [], [], _warning(error)
        items = [
            (_rgb(m.thumbnail), f"{m.label} · d = {m.distance:.3f}")
            for m in matches
            if m.thumbnail is not None
        ]
        rows = [[i + 1, m.label, round(m.distance, 4), m.index] for i, m in enumerate(matches)]
        lines = [f"The {len(matches)} gallery faces nearest to face {which} ({query.answer})."]
        if not self.engine.has_thumbnails:
            lines.append("This model's gallery has no thumbnails: only labels are shown.")
        return _rgb(query.face.thumbnail), items, rows, _message([*lines, *photo.notes])

    def browse(self, class_name, n_groups):
        """`(grid path, map path, status)`: a class's groups (medoid and Top-16 each), the
        gallery's t-SNE map, Markdown."""
        try:
            path, kind, groups = self.engine.group_figure(class_name, int(n_groups))
            embedding_map = self.engine.embedding_map()
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
        """`(gallery items, status)`: the album's `k` representative faces as `(image,
        "source · answer")`, Markdown (with a line per photo skipped)."""
        uploads = uploads or []
        try:
            summary = self.engine.summarize(uploads, int(k), whole=mode == WHOLE)
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
