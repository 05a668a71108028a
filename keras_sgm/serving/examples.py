"""Example photos for the app: a group photo and an album of synthetic faces the detector finds."""

from pathlib import Path

import numpy as np

from keras_sgm.data import synthetic_faces
from keras_sgm.data.expressions import FERPLUS_CLASSES
from keras_sgm.serving import faces as faces_lib


def _upscaled(face, side):
    from PIL import Image

    image = Image.fromarray(face.reshape(face.shape[0], face.shape[1]))
    return np.asarray(image.resize((side, side), Image.Resampling.BICUBIC))


def group_photo(detector, expressions=(1, 2, 4), side=160, seed=11, attempts=40):
    """A "group photo" of synthetic faces that `detector` finds one by one, left to right.

    The synthetic faces are cartoons, which OpenCV's cascade finds only in
    some poses; for each expression the first face (of `attempts`, drawn with
    `seed`) it finds alone is placed on the canvas, and the canvas is checked
    to give exactly one box per face.

    Returns:
        `(pixels, labels)`: uint8 RGB `[side + 60, n (side + 40), 3]` and the
        expression ids, left to right.

    Raises:
        ValueError: when no detectable face was found for an expression.
    """
    pad = 20
    cell = side + 2 * pad
    canvas = np.full((cell + 20, cell * len(expressions)), 128, np.uint8)
    for slot, expression in enumerate(expressions):
        for attempt in range(attempts):
            rng = np.random.default_rng([seed, expression, attempt])
            face = _upscaled(synthetic_faces.render_face(expression, rng=rng), side)
            framed = np.pad(face, pad, mode="edge")
            if len(detector.detect(np.repeat(framed[..., None], 3, axis=-1))) == 1:
                canvas[10 : 10 + cell, slot * cell : (slot + 1) * cell] = framed
                break
        else:
            raise ValueError(f"No detectable synthetic face of expression {expression} found.")
    pixels = np.repeat(canvas[..., None], 3, axis=-1)
    found = detector.detect(pixels)
    if len(found) != len(expressions):
        raise ValueError(f"The group photo gives {len(found)} faces, not {len(expressions)}.")
    return pixels, list(expressions)


def write_examples(folder, detector=None, album_per_class=3, side=192, seed=7):
    """Write the app's example photos (all synthetic faces) into `folder`; return their paths.

    Returns:
        dict with `faces` (one PNG per expression, `side` pixels, named after
        it), `group` (a photo of three faces for face detection) and `album`
        (a folder of `8 * album_per_class` faces).
    """
    from PIL import Image

    folder = Path(folder)
    (folder / "album").mkdir(parents=True, exist_ok=True)
    data = synthetic_faces.generate(1 + album_per_class, size=48, seed=seed)
    paths = {"faces": [], "album": []}
    for i, (image, label) in enumerate(zip(data["image"], data["label"])):
        big = _upscaled(image, side)
        if i < len(FERPLUS_CLASSES):
            path = folder / f"{FERPLUS_CLASSES[label]}.png"
            paths["faces"].append(path)
        else:
            path = folder / "album" / f"face_{i:02d}.png"
            paths["album"].append(path)
        Image.fromarray(big).save(path)
    detector = detector or faces_lib.FaceDetector()
    pixels, _ = group_photo(detector)
    paths["group"] = folder / "group_photo.png"
    Image.fromarray(pixels).save(paths["group"])
    return paths
