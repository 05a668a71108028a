"""Synthetic faces: procedurally drawn gray faces of the eight FER+ expressions, no download.

A STAND-IN, NOT A FACIAL-EXPRESSION DATASET. The faces are cartoons drawn
from a handful of geometric rules (brows, eyelids, mouth curves), so a model
that does well on them has learnt those rules and nothing more: results on
`synthetic_faces` say nothing about facial expression recognition on real
people. They exist so that the package, its scripts and its tests run end to
end, offline, in seconds; real results need the real datasets (FER+,
AffectNet, CK+, JAFFE, BU-3DFE).

Each face shows its expression through cues a small CNN can learn at 48x48:

| expression | brows                           | eyes          | mouth                      |
|------------|---------------------------------|---------------|----------------------------|
| neutral    | level                           | open          | flat, closed               |
| happiness  | level                           | narrowed      | open smile, teeth, folds   |
| surprise   | raised high, arched             | wide open     | open round O               |
| sadness    | inner ends raised               | half closed   | closed, corners down       |
| anger      | lowered, inner ends down, lines | narrowed      | pressed, corners down      |
| disgust    | lowered                         | narrowed      | upper lip raised, teeth,   |
|            |                                 |               | nose wrinkles              |
| fear       | raised, inner ends raised       | wide open     | open wide, stretched       |
| contempt   | right one raised                | open          | right-sided smirk          |

Four nuisance factors, drawn independently of the expression, form hidden
sub-groups inside every class (the kind of sub-classes DGMS splitting should
find): `glasses` (thick frames, tinted lenses), `beard` (dark jaw and
moustache, lips bare), `face_shape` (round, long, wide head) and `skin`
(dark, medium, light gray); `subgroup = 2 * glasses + beard`. Every face also
varies continuously: pose (shift, in-plane rotation, scale), proportions,
expression intensity, background, hair, lighting and pixel noise.

Generation is deterministic and needs only NumPy: shapes are rasterised from
signed distances with IEEE arithmetic (no fonts, no drawing library) and all
randomness comes from `numpy.random.default_rng`, so a seed gives the same
bytes on every machine.

Examples:
    >>> data = generate(4, size=48, seed=0)
    >>> data["image"].shape, data["image"].dtype
    ((32, 48, 48, 1), dtype('uint8'))
    >>> np.bincount(data["label"]).tolist(), np.bincount(data["subgroup"]).tolist()
    ([4, 4, 4, 4, 4, 4, 4, 4], [8, 8, 8, 8])

Reference:
    The sub-groups imitate the within-class variation (glasses, beard, face
    shape, skin) that DGMS groups into sub-classes: Deep Metric Structured
    Learning For Facial Expression Recognition, section 3.2.
"""

import dataclasses
import math

import numpy as np

from keras_sgm.data.expressions import FERPLUS_CLASSES, class_index

try:
    from keras_sgm.data._builder import (
        ExpressionConfig,
        default_configs,
        expression_features,
        tfds,
    )
except ImportError as _error:  # render_face and generate need NumPy only
    tfds, _TFDS_ERROR = None, _error

FACE_SHAPES = ("round", "long", "wide")
"""Names of the `face_shape` factor's values."""

SKIN_TONES = ("dark", "medium", "light")
"""Names of the `skin` factor's values."""

SUBGROUPS = ("plain", "beard", "glasses", "glasses_beard")
"""Names of the `subgroup` factor's values, `2 * glasses + beard`."""

SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3}
"""The seed the TFDS builder gives `generate` for each split."""

_HEAD_RADII = ((0.60, 0.70), (0.50, 0.80), (0.72, 0.64))
"""Head ellipse half-width and half-height per face shape (the image is 2 wide)."""

_SKIN_LEVELS = (0.54, 0.65, 0.76)
"""Gray level of the skin per tone (0 black, 1 white)."""

_INK, _BEARD, _MOUTH, _TEETH, _WHITE = 0.06, 0.13, 0.08, 0.85, 0.92
"""Gray levels of lines and brows, beard, mouth interior, teeth and eye whites."""

# The geometry of each expression, in face units (the head is about 1.2 wide, y points
# down). Brows: `brow` raises the (left, right) brow, `inner` raises its inner end
# relative to its outer end, `arch` bows it. Eyes: `upper_lid` and `lower_lid` open
# the lids from the eye line, `crescent` pushes the lower lid up (cheeks raised).
# Mouth: half `width`, lift of the (left, right) `corners`, offsets of the upper and
# lower lips' centres (down is positive), lip `profile` (1 lens, 0.5 round, 2 peaked),
# `teeth`, nasolabial `folds`, nose `wrinkles` and brow `furrows`.
# fmt: off
_FIELDS = ("brow", "inner", "arch", "upper_lid", "lower_lid", "crescent",
           "width", "corners", "upper_lip", "lower_lip", "profile", "teeth", "folds", "wrinkles",
           "furrows")
_EXPRESSIONS = {
    #              brow            inner           arch  upper  lower  crescent
    #              width  corners         upper  lower  prof teeth  folds wrinkles furrows
    "neutral":   ((0.0, 0.0),     (0.0, 0.0),     0.03, 0.050, 0.030, 0.0,
                   0.20,  (0.0, 0.0),     0.0,   0.0,   1.0, False, 0.0,  False, False),
    "happiness": ((0.01, 0.01),   (0.0, 0.0),     0.03, 0.035, 0.010, 1.0,
                   0.27,  (0.09, 0.09),   0.0,   0.10,  1.0, True,  1.0,  False, False),
    "surprise":  ((0.10, 0.10),   (0.0, 0.0),     0.07, 0.080, 0.050, 0.0,
                   0.10,  (0.0, 0.0),     -0.08, 0.13,  0.5, False, 0.0,  False, False),
    "sadness":   ((0.02, 0.02),   (0.09, 0.09),   0.0,  0.030, 0.030, 0.0,
                   0.20,  (-0.07, -0.07), 0.0,   0.0,   1.0, False, 0.0,  False, False),
    "anger":     ((-0.05, -0.05), (-0.10, -0.10), 0.0,  0.030, 0.020, 0.0,
                   0.16,  (-0.03, -0.03), 0.0,   0.0,   1.0, False, 0.0,  False, True),
    "disgust":   ((-0.04, -0.04), (-0.04, -0.04), 0.0,  0.025, 0.015, 0.5,
                   0.20,  (-0.05, -0.05), -0.06, 0.02,  2.0, True,  0.6,  True,  False),
    "fear":      ((0.07, 0.07),   (0.06, 0.06),   0.0,  0.080, 0.050, 0.0,
                   0.23,  (-0.04, -0.04), -0.04, 0.11,  0.5, True,  0.0,  False, False),
    "contempt":  ((-0.02, 0.09),  (0.0, -0.02),   0.03, 0.045, 0.030, 0.0,
                   0.19,  (-0.01, 0.09),  0.0,   0.0,   1.0, False, 0.0,  False, False),
}
# fmt: on
_EXPRESSIONS = {name: dict(zip(_FIELDS, row)) for name, row in _EXPRESSIONS.items()}
assert tuple(_EXPRESSIONS) == FERPLUS_CLASSES


def _clip(a, low, high):
    """`np.clip` for the hot loops (two ufuncs, without np.clip's per-call overhead)."""
    return np.minimum(np.maximum(a, low), high)


def _cover(distance, pixel):
    """Antialiased coverage of a shape from its signed distance (negative inside)."""
    return _clip(0.5 - distance / pixel, 0.0, 1.0)


def _paint(image, alpha, level):
    """Blend gray `level` over `image` (in place) with opacity `alpha`."""
    image += alpha * (level - image)


def _ellipse(x, y, cx, cy, rx, ry):
    """Signed distance to an ellipse, first-order (exact enough near its edge)."""
    dx, dy = (x - cx) / rx, (y - cy) / ry
    slope = 2.0 * np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2) + 1e-9
    return (dx * dx + dy * dy - 1.0) / slope


def _graph(x, y, x0, x1, curve):
    """Distance to the curve `y = curve(x)`, `x0 <= x <= x1`, with round ends."""
    xc = _clip(x, x0, x1)
    before, after = curve(xc - 1e-3), curve(xc + 1e-3)
    yc, slope = (before + after) / 2, (after - before) / 2e-3
    across = np.abs(y - yc) / np.sqrt(1.0 + slope * slope)
    return np.where(x == xc, across, np.sqrt((x - xc) ** 2 + (y - yc) ** 2))


def _segment(x, y, a, b):
    """Distance to the segment from point `a` to point `b`."""
    (ax, ay), (bx, by) = a, b
    ex, ey = bx - ax, by - ay
    h = _clip(((x - ax) * ex + (y - ay) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    return np.sqrt((x - ax - h * ex) ** 2 + (y - ay - h * ey) ** 2)


def _profile(t, power=1.0):
    """A bump across `t` in [-1, 1]: 1 in the middle, 0 at the ends (power 0.5, 1 or 2)."""
    base = np.maximum(1.0 - t * t, 0.0)
    if power == 0.5:
        return np.sqrt(base)
    return base if power == 1.0 else base * base


def _params(expression, factors, rng):
    """Everything that decides one face: its expression (times an intensity) and its person."""

    def draw(low, high):  # the middle of the range without a generator: the canonical face
        return (low + high) / 2 if rng is None else float(rng.uniform(low, high))

    shape, neutral = _EXPRESSIONS[FERPLUS_CLASSES[expression]], _EXPRESSIONS["neutral"]
    intensity = draw(0.75, 1.15)
    p = {}
    for key, value in shape.items():
        if isinstance(value, bool):
            p[key] = value
        elif isinstance(value, tuple):
            p[key] = tuple(r + intensity * (v - r) for v, r in zip(value, neutral[key]))
        else:
            p[key] = neutral[key] + intensity * (value - neutral[key])
    unknown = sorted(set(factors) - {"glasses", "beard", "face_shape", "skin"})
    face_shape, skin = int(factors.get("face_shape", 0)), int(factors.get("skin", 1))
    if unknown or not (0 <= face_shape < len(FACE_SHAPES) and 0 <= skin < len(SKIN_TONES)):
        raise ValueError(
            f"factors must have glasses, beard (bools), face_shape and skin (0, 1 or 2); "
            f"received {factors}."
        )
    rx, ry = _HEAD_RADII[face_shape]
    head = draw(0.95, 1.05)
    p.update(
        head=(rx * head, ry * head),
        skin=_SKIN_LEVELS[skin] + draw(-0.03, 0.03),
        glasses=bool(factors.get("glasses", False)),
        beard=bool(factors.get("beard", False)),
        background=draw(0.16, 0.30),
        hair=draw(0.10, 0.18),
        hairline=draw(-0.50, -0.40),
        eye_x=draw(0.21, 0.26),
        eye_y=draw(-0.11, -0.07),
        eye_w=draw(0.10, 0.12),
        iris=draw(0.038, 0.046),
        brow_gap=draw(0.10, 0.13),
        brow_w=draw(0.021, 0.030),
        mouth_y=draw(0.37, 0.42),
        lip=draw(0.016, 0.022),
        shift=(draw(-0.05, 0.05), draw(-0.05, 0.05)),
        angle=math.radians(draw(-7.0, 7.0)),
        scale=draw(0.93, 1.07),
        gain=draw(0.93, 1.07),
        bias=draw(-0.03, 0.03),
        noise=draw(0.01, 0.035),
    )
    return p


def render_face(expression, factors=None, size=48, rng=None):
    """Draw one gray synthetic face (a stand-in for a photograph, see the module docstring).

    Args:
        expression: int index into `FERPLUS_CLASSES`, or the class name.
        factors: optional dict of nuisance factors: `glasses` (bool, default
            False), `beard` (bool, default False), `face_shape` (int, 0 round
            (default), 1 long, 2 wide), `skin` (int, 0 dark, 1 medium
            (default), 2 light).
        size: int, default 48; the image is `size` pixels a side.
        rng: optional `numpy.random.Generator` drawing the continuous
            variation (pose, proportions, intensity, lighting, noise); None
            draws the canonical face: centred, average, noise-free.

    Returns:
        uint8 array `[size, size, 1]`.

    Examples:
        >>> face = render_face("surprise", {"glasses": True}, size=48)
        >>> face.shape, face.dtype
        ((48, 48, 1), dtype('uint8'))

    Reference:
        A stand-in for the paper's datasets (section 4), not a model of faces.
    """
    if isinstance(expression, str):
        expression = class_index(expression)
    if not 0 <= int(expression) < len(FERPLUS_CLASSES):
        raise ValueError(f"expression must be in [0, {len(FERPLUS_CLASSES)}); got {expression}.")
    p = _params(int(expression), factors or {}, rng)

    # Pixel centres in image units ([-1, 1] across), then in face units (pose undone).
    u = (np.arange(size, dtype="float64") + 0.5) * (2.0 / size) - 1.0
    u, v = np.meshgrid(u, u)
    cos, sin = math.cos(p["angle"]), math.sin(p["angle"])
    du, dv = (u - p["shift"][0]) / p["scale"], (v - p["shift"][1]) / p["scale"]
    x, y = cos * du + sin * dv, cos * dv - sin * du
    px = 2.0 / size / p["scale"]  # one pixel in face units

    def window(x0, x1, y0, y1):
        """Row and column slices of the pixels near a face-units box (posed)."""
        corners = [(a, b) for a in (x0 - 0.03, x1 + 0.03) for b in (y0 - 0.03, y1 + 0.03)]
        spans = []
        for k in (1, 0):  # rows from v, columns from u
            ends = [
                p["scale"] * (cos * a - sin * b if k == 0 else sin * a + cos * b) + p["shift"][k]
                for a, b in corners
            ]
            low = math.floor((min(ends) + 1.0) * size / 2.0) - 1
            high = math.ceil((max(ends) + 1.0) * size / 2.0) + 1
            spans.append(slice(max(low, 0), min(max(high, 0), size)))
        return tuple(spans)

    def draw(function, box, *args):
        """Run a drawing function on the pixels of `box` only (views, painted in place)."""
        rows, cols = window(*box)
        function(image[rows, cols], x[rows, cols], y[rows, cols], px, p, *args)

    image = p["background"] + 0.04 * (1.0 - v)
    _draw_head(image, x, y, px, p)
    rx, ry = p["head"]
    ex, ey, y0, w = p["eye_x"], p["eye_y"], p["mouth_y"], p["width"]
    if p["beard"]:
        draw(_draw_mouth, (-rx, rx, y0 - 0.36, ry + 0.02))
    else:
        draw(_draw_mouth, (-w - 0.06, w + 0.06, y0 - 0.2, y0 + 0.2))
    draw(_draw_nose, (-0.1, 0.1, ey, y0 - 0.12))
    for side in (-1, 1):
        draw(_draw_eye, (side * ex - 0.14, side * ex + 0.14, ey - 0.12, ey + 0.09), side)
    if p["glasses"]:
        draw(_draw_glasses, (-rx - 0.04, rx + 0.04, ey - 0.16, ey + 0.16))
    for side in (-1, 1):  # brows last: a frame never hides them
        inner, outer = side * 0.03, side * (p["brow_gap"] + 0.28)
        base = ey - 0.15 - p["brow"][0 if side < 0 else 1]
        draw(_draw_brow, (min(inner, outer), max(inner, outer), base - 0.16, base + 0.12), side)

    image = image * p["gain"] + p["bias"]
    if rng is not None:
        image = image + rng.normal(0.0, p["noise"], image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype("uint8")[..., None]


def _draw_head(image, x, y, px, p):
    """Neck, hair cap, face and the shading at its sides."""
    rx, ry = p["head"]
    head = _ellipse(x, y, 0.0, 0.02, rx, ry)
    _paint(image, _cover(np.maximum(np.abs(x) - 0.26, 0.55 - y), px), p["skin"] - 0.12)
    hairline = y - p["hairline"] - 0.25 * (x / rx) ** 2  # negative above the hairline
    cap = np.maximum(_ellipse(x, y, 0.0, -0.02, rx + 0.06, ry + 0.06), hairline)
    _paint(image, _cover(cap, px), p["hair"])
    _paint(image, _cover(np.maximum(head, 0.02 - hairline), px), p["skin"])
    side_shade = np.clip((np.abs(x) / rx - 0.6) * 0.5, 0.0, 0.2)
    _paint(image, _cover(head, px) * side_shade, _INK)


def _mouth_curves(p):
    """The upper and lower lip curves `y(x)` (they meet at the corners)."""
    w, y0, (left, right) = p["width"], p["mouth_y"], p["corners"]

    def lift(x):
        t = _clip(x / w, -1.0, 1.0)
        return np.where(t < 0, left, right) * t * t

    def upper(x):
        return y0 - lift(x) + p["upper_lip"] * _profile(x / w, p["profile"])

    def lower(x):
        return y0 - lift(x) + p["lower_lip"] * _profile(x / w, p["profile"])

    return upper, lower


def _draw_mouth(image, x, y, px, p):
    """Beard (if any), nasolabial folds, mouth opening, teeth and lips."""
    upper, lower = _mouth_curves(p)
    w, y0, skin = p["width"], p["mouth_y"], p["skin"]
    if p["beard"]:
        # The jaw below the cheeks and a moustache following the upper lip; lips bare,
        # so the mouth still shows the expression.
        rx, ry = p["head"]
        head = _ellipse(x, y, 0.0, 0.02, rx, ry)
        jaw = np.maximum(head, y0 - 0.28 + 0.32 * (1.0 - (x / rx) ** 2) - y)
        reach = w + 0.06
        moustache = np.maximum(np.abs(x) - reach, np.abs(y - upper(x * w / reach) + 0.065) - 0.035)
        lips = np.maximum(
            np.abs(x) - (w + 0.03), np.maximum(upper(x) - 0.025 - y, y - lower(x) - 0.04)
        )
        _paint(image, _cover(np.maximum(np.minimum(jaw, moustache), -lips), px), _BEARD)
    for side in (-1, 1):
        if p["folds"] > 0.3:
            corner = (side * (w + 0.04), upper(side * w) - 0.01)
            fold = _segment(x, y, (side * 0.13, y0 - 0.17), corner) - 0.008
            _paint(image, _cover(fold, px) * 0.6 * min(p["folds"], 1.0), skin - 0.3)
    top, bottom = upper(x), lower(x)
    opening = np.maximum(np.abs(x) - w, np.maximum(top - y, y - bottom))
    if p["lower_lip"] - p["upper_lip"] > 0.015:
        _paint(image, _cover(opening, px), _MOUTH)
        if p["teeth"]:
            teeth = np.maximum(opening, y - (top + 0.35 * (bottom - top)))
            _paint(image, _cover(teeth, px), _TEETH)
    for curve in (upper, lower):
        _paint(image, _cover(_graph(x, y, -w, w, curve) - p["lip"], px), _INK + 0.06)


def _draw_nose(image, x, y, px, p):
    """Nose ridge, nostrils and (disgust) wrinkles across the bridge."""
    y0, skin = p["mouth_y"], p["skin"]
    ridge = _segment(x, y, (0.02, p["eye_y"] + 0.04), (0.04, y0 - 0.18)) - 0.010
    _paint(image, _cover(ridge, px) * 0.35, skin - 0.3)
    for side in (-1, 1):
        nostril = _ellipse(x, y, side * 0.05, y0 - 0.16, 0.028, 0.016)
        _paint(image, _cover(nostril, px) * 0.8, skin - 0.35)
    if p["wrinkles"]:
        for k in range(3):
            yy = p["eye_y"] + 0.05 + 0.035 * k
            line = _segment(x, y, (-0.07, yy), (0.07, yy - 0.01)) - 0.008
            _paint(image, _cover(line, px) * 0.8, skin - 0.3)


def _draw_eye(image, x, y, px, p, side):
    """One eye: white between the lids, iris, lash line and lower lid."""
    cx, cy, w = side * p["eye_x"], p["eye_y"], p["eye_w"]

    def upper_lid(xx):
        return cy - p["upper_lid"] * _profile((xx - cx) / w)

    def lower_lid(xx):
        return cy + (p["lower_lid"] - 0.012 * p["crescent"]) * _profile((xx - cx) / w)

    opening = np.maximum(np.abs(x - cx) - w, np.maximum(upper_lid(x) - y, y - lower_lid(x)))
    _paint(image, _cover(opening, px), _WHITE)
    iris = np.maximum(_ellipse(x, y, cx, cy + 0.005, p["iris"], p["iris"]), opening)
    _paint(image, _cover(iris, px), _INK + 0.04)
    _paint(image, _cover(_graph(x, y, cx - w, cx + w, upper_lid) - 0.014, px), _INK)
    _paint(image, _cover(_graph(x, y, cx - w, cx + w, lower_lid) - 0.007, px) * 0.8, _INK + 0.1)


def _draw_brow(image, x, y, px, p, side):
    """One brow (and, for anger, a furrow line above the nose)."""
    index, length = (0 if side < 0 else 1), 0.26
    inner_x = side * p["brow_gap"]
    base = p["eye_y"] - 0.15 - p["brow"][index]
    inner, arch = p["inner"][index], p["arch"]

    def brow(xx):
        t = _clip((xx - inner_x) * side / length, 0.0, 1.0)  # 0 inner end, 1 outer end
        return base + inner * (t - 0.5) - arch * 4.0 * t * (1.0 - t)

    x0, x1 = sorted((inner_x, inner_x + side * length))
    _paint(image, _cover(_graph(x, y, x0, x1, brow) - p["brow_w"], px), _INK + 0.01)
    if p["furrows"]:
        line = _segment(x, y, (side * 0.035, base - 0.02), (side * 0.05, base + 0.08)) - 0.008
        _paint(image, _cover(line, px) * 0.8, p["skin"] - 0.3)


def _draw_glasses(image, x, y, px, p):
    """Tinted oval lenses, thick rims, bridge and temples."""
    rim, level = 0.04, p["eye_y"] + 0.005
    for side in (-1, 1):
        lens = _ellipse(x, y, side * p["eye_x"], level, 0.17, 0.11)
        image *= 1.0 - 0.6 * _cover(lens, px)
        _paint(image, _cover(np.abs(lens) - rim, px), _INK)
        temple = _segment(
            x,
            y,
            (side * (p["eye_x"] + 0.16), level - 0.03),
            (side * (p["head"][0] + 0.02), level - 0.05),
        )
        _paint(image, _cover(temple - 0.022, px), _INK)
    inner = p["eye_x"] - 0.165
    _paint(
        image,
        _cover(_segment(x, y, (-inner, level - 0.02), (inner, level - 0.02)) - 0.02, px),
        _INK,
    )


def _block(rng):
    """The 36 factor combinations in an order where every 4 hold each sub-group once and
    every 12 each face shape and each skin tone 4 times."""
    shapes, skins, order = rng.permutation(3), rng.permutation(3), []
    for k in rng.permutation(3):
        for i in range(3):
            for subgroup in rng.permutation(4):
                order.append((int(subgroup), int(shapes[i]), int(skins[(i + k) % 3])))
    return order


def iterate(n_per_class, size=48, seed=0):
    """Yield the examples of `generate(n_per_class, size, seed)` one at a time.

    Example `j` of class `c` has the combination `j % 36` of a block of 36
    shuffled by `default_rng([seed, c, j // 36, 1])` and is drawn by
    `default_rng([seed, c, j, 0])`, so a larger `n_per_class` extends a
    smaller one.

    Args:
        n_per_class: int; examples of each of the 8 expressions.
        size: int, default 48; image side in pixels.
        seed: int, default 0.

    Yields:
        dicts with `image` (uint8 `[size, size, 1]`) and the ints `label`,
        `glasses`, `beard`, `face_shape`, `skin`, `subgroup`.

    Examples:
        >>> example = next(iterate(1, size=32))
        >>> sorted(example), example["label"]
        (['beard', 'face_shape', 'glasses', 'image', 'label', 'skin', 'subgroup'], 0)

    Reference:
        A stand-in for the paper's datasets (section 4).
    """
    blocks = {}
    for j in range(n_per_class):
        for label in range(len(FERPLUS_CLASSES)):
            key = (label, j // 36)
            if key not in blocks:
                blocks[key] = _block(np.random.default_rng([seed, label, j // 36, 1]))
            subgroup, face_shape, skin = blocks[key][j % 36]
            factors = {
                "glasses": subgroup // 2,
                "beard": subgroup % 2,
                "face_shape": face_shape,
                "skin": skin,
            }
            rng = np.random.default_rng([seed, label, j, 0])
            image = render_face(label, factors, size=size, rng=rng)
            yield {"image": image, "label": label, **factors, "subgroup": subgroup}


def generate(n_per_class, size=48, seed=0):
    """A class-balanced set of synthetic faces as NumPy arrays (a stand-in, not real faces).

    Classes are interleaved (example `i` has label `i % 8`). In each class
    every 4 consecutive examples hold the 4 sub-groups once, every 12 each
    face shape and skin tone 4 times and every 36 all 36 factor combinations.

    Args:
        n_per_class: int; examples of each of the 8 expressions.
        size: int, default 48; image side in pixels.
        seed: int, default 0; a seed gives the same bytes on any machine.

    Returns:
        dict of arrays: `image` `[n, size, size, 1]` uint8, `label` `[n]` int64
        (FER+ order), and the int64 `[n]` factors `glasses`, `beard` (0 or 1),
        `face_shape`, `skin` (0..2) and `subgroup` (`2 * glasses + beard`).

    Examples:
        >>> data = generate(2, size=32, seed=1)
        >>> data["image"].shape, data["label"][:8].tolist()
        ((16, 32, 32, 1), [0, 1, 2, 3, 4, 5, 6, 7])

    Reference:
        A stand-in for the paper's datasets (section 4): results on it say
        nothing about real facial expression recognition.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1; got {n_per_class}.")
    examples = list(iterate(n_per_class, size=size, seed=seed))
    data = {"image": np.stack([e["image"] for e in examples])}
    for key in ("label", "glasses", "beard", "face_shape", "skin", "subgroup"):
        data[key] = np.asarray([e[key] for e in examples], "int64")
    return data


if tfds is None:

    def __getattr__(name):
        if name in ("SyntheticFaces", "SyntheticFacesConfig"):
            raise _TFDS_ERROR
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

else:

    @dataclasses.dataclass(eq=False)
    class SyntheticFacesConfig(ExpressionConfig):
        """A synthetic-faces config: image size and examples per class of each split."""

        train_per_class: int = 300
        validation_per_class: int = 50
        test_per_class: int = 100

    def _configs():
        counts = {"train_per_class": 300, "validation_per_class": 50, "test_per_class": 100}
        configs = [
            SyntheticFacesConfig(
                name=c.name, description=c.description, image_size=c.image_size, **counts
            )
            for c in default_configs("Synthetic faces, 8 x 300 / 50 / 100 per split")
        ]
        for name, train, validation, test, text in (
            ("48px_tiny", 10, 3, 5, "8 x 10 / 3 / 5 per split, for tests"),
            ("48px_large", 2000, 250, 500, "8 x 2000 / 250 / 500 per split"),
        ):
            configs.append(
                SyntheticFacesConfig(
                    name=name,
                    description=f"Synthetic faces, {text}, 48x48 gray.",
                    image_size=48,
                    train_per_class=train,
                    validation_per_class=validation,
                    test_per_class=test,
                )
            )
        return configs

    class SyntheticFaces(tfds.core.GeneratorBasedBuilder):
        """Procedurally drawn faces of the 8 FER+ expressions (`tfds` name "synthetic_faces").

        A STAND-IN: results on it say nothing about real facial expression
        recognition; real results need the real datasets (FER+, AffectNet,
        CK+, JAFFE, BU-3DFE). It needs no download and prepares in seconds,
        so that scripts and tests run offline. See the module docstring for
        how expressions and sub-groups are drawn.

        Configs (examples per class in train / validation / test): "48px"
        (default), "64px", "96px" (300 / 50 / 100), "48px_tiny" (10 / 3 / 5)
        and "48px_large" (2000 / 250 / 500). Splits are `generate` with the
        seeds `SPLIT_SEEDS` (train 1, validation 2, test 3).

        Features: `image` (uint8 `[size, size, 1]`), `label` (ClassLabel over
        `FERPLUS_CLASSES`), and the ClassLabels `glasses`, `beard`,
        `face_shape` (`FACE_SHAPES`), `skin` (`SKIN_TONES`) and `subgroup`
        (`SUBGROUPS`, `2 * glasses + beard`).

        Keyword arguments are TFDS' `DatasetBuilder`'s: `config` (a str or

        `SyntheticFacesConfig`, default "48px") and `data_dir` (where TFDS stores the

        prepared dataset).

        Examples:
            >>> import tempfile
            >>> builder = SyntheticFaces(config="48px_tiny", data_dir=tempfile.mkdtemp())
            >>> builder.builder_config.train_per_class, builder.info.features["subgroup"].names
            (10, ['plain', 'beard', 'glasses', 'glasses_beard'])

        Prepared in seconds, with no download::

            train = tfds.load("synthetic_faces/48px", split="train")

        Reference:
            A stand-in for the datasets of Deep Metric Structured Learning For
            Facial Expression Recognition, section 4.
        """

        name = "synthetic_faces"
        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES = {"1.0.0": "Initial release."}
        BUILDER_CONFIGS = _configs()

        def _info(self):
            def label(*names):
                return tfds.features.ClassLabel(names=list(names))

            return tfds.core.DatasetInfo(
                builder=self,
                description=(
                    "Procedurally drawn gray cartoon faces of the eight FER+ expressions with "
                    "hidden sub-groups (glasses, beard, face shape, skin tone). A stand-in for "
                    "offline tests: results on it say nothing about real facial expression "
                    "recognition."
                ),
                features=expression_features(
                    self.builder_config.image_size,
                    glasses=label("no_glasses", "glasses"),
                    beard=label("no_beard", "beard"),
                    face_shape=label(*FACE_SHAPES),
                    skin=label(*SKIN_TONES),
                    subgroup=label(*SUBGROUPS),
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            del dl_manager  # nothing to download
            config = self.builder_config
            counts = {
                "train": config.train_per_class,
                "validation": config.validation_per_class,
                "test": config.test_per_class,
            }
            return {
                split: self._generate_examples(counts[split], SPLIT_SEEDS[split])
                for split in SPLIT_SEEDS
            }

        def _generate_examples(self, n_per_class, seed):
            size = self.builder_config.image_size
            yield from enumerate(iterate(n_per_class, size=size, seed=seed))
