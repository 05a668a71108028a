"""The classify answer's image: the photo with each face's box and caption drawn in (PIL).

The page shows one image per answer, so the app draws the boxes into the photo
and sends that image alone, not the photo with a full-size mask per face (what
`gr.AnnotatedImage` sends). Each face is boxed in its own colour, with its
number, its answer and, unless it is rejected, the posterior of that answer.
"""

import numpy as np

MAX_SIDE = 1024
"""Longest side of the image drawn, in pixels: a larger photo is scaled down first."""

BOX_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189))
"""The colour of face i's box and caption (cycling): distinct, and readable under white text."""


def caption(number, result):
    """A face's caption: its number, answer and posterior, and whether the answer is uncertain.

    Args:
        number: int, the face's number on the photo (from 1, left to right).
        result: its `keras_sgm.serving.engine.FaceResult`.

    Returns:
        `"1: happiness 0.93"`, with `" (uncertain)"` below the engine's
        `uncertain_below`, or `"1: no clear expression"` for a rejected face.

    Examples:
        >>> from keras_sgm.serving.engine import FaceResult
        >>> result = FaceResult(None, None, {"happiness": 0.93, "anger": 0.07}, {}, None)
        >>> caption(1, result)
        '1: happiness 0.93'
        >>> caption(2, FaceResult(None, None, {"anger": 0.4, "fear": 0.6}, {}, None, True))
        '2: anger 0.40 (uncertain)'
    """
    if result.rejected:
        return f"{number}: {result.answer}"
    text = f"{number}: {result.label} {result.posterior[result.label]:.2f}"
    return text + (" (uncertain)" if result.uncertain else "")


def draw_faces(photo, results):
    """The photo, at most `MAX_SIDE` a side, with a box and a caption per face.

    Args:
        photo: a `keras_sgm.serving.faces.Photo`.
        results: its faces' `FaceResult`s (`ExpressionEngine.classify`); face
            `i` is drawn in `BOX_COLOURS[i % len(BOX_COLOURS)]`.

    Returns:
        uint8 RGB `[height, width, 3]`: the photo alone when `results` is empty.
    """
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(photo.pixels).convert("RGB")
    scale = min(1.0, MAX_SIDE / max(image.size))
    if scale < 1.0:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.BOX)
    if not results:
        return np.asarray(image)
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 300))
    font = ImageFont.load_default(size=max(11, round(max(image.size) / 45)))
    for i, result in enumerate(results):
        box = tuple(round(v * scale) for v in result.face.box)
        colour = BOX_COLOURS[i % len(BOX_COLOURS)]
        _draw_box(draw, image.size, box, caption(i + 1, result), colour, line, font)
    return np.asarray(image)


def _draw_box(draw, size, box, text, colour, line, font):
    """One face's box `(x, y, w, h)`, outlined `line` pixels wide, and `text` in a band of
    `colour` above it (below it at the photo's top edge), kept inside the image's `size`."""
    x, y, w, h = box
    width, height = size
    draw.rectangle((x, y, x + w - 1, y + h - 1), outline=colour, width=line)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left + 2 * line, bottom - top + 2 * line
    ty = y - th if y - th >= 0 else min(y + h, height - th)
    tx = min(max(0, x), max(0, width - tw))
    draw.rectangle((tx, ty, tx + tw, ty + th), fill=colour)
    draw.text((tx + line - left, ty + line - top), text, fill=(255, 255, 255), font=font)
