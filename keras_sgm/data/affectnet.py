"""AffectNet (manually annotated part) as a TensorFlow Datasets builder, in FER+ class order.

AffectNet's annotators gave each face one of eleven categories (0..10).
The eight expressions are kept and mapped by name to `FERPLUS_CLASSES`
(Neutral -> neutral, Happy -> happiness, Sad -> sadness, Surprise -> surprise,
Fear -> fear, Disgust -> disgust, Anger -> anger, Contempt -> contempt);
8 (None), 9 (Uncertain) and 10 (Non-Face) are skipped. The face box of each
row is cropped (clipped to the image), converted to gray and resized to a
square with `gray_square` (a box that is not square is stretched).

Splits: `train` is `training.csv`; `test` is `validation.csv`, AffectNet's
held-out set that papers report as their test set (the real test set was
never released). Skipped rows are counted by reason, logged as a warning and
stored in `builder.info.metadata["skipped"]` (`{split: {reason: count}}`).
"""

import csv

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from keras_sgm.data._builder import default_configs, expression_features, read_image
from keras_sgm.data.expressions import SkipCounter, class_index, gray_square

AFFECTNET_EXPRESSIONS = (
    "Neutral",
    "Happy",
    "Sad",
    "Surprise",
    "Fear",
    "Disgust",
    "Anger",
    "Contempt",
    "None",
    "Uncertain",
    "Non-Face",
)
"""AffectNet's categories, indexed by the csv's `expression` code 0..10."""

_FERPLUS_NAMES = {
    "Neutral": "neutral",
    "Happy": "happiness",
    "Sad": "sadness",
    "Surprise": "surprise",
    "Fear": "fear",
    "Disgust": "disgust",
    "Anger": "anger",
    "Contempt": "contempt",
}
EXPRESSION_TO_LABEL = {
    code: class_index(_FERPLUS_NAMES[name])
    for code, name in enumerate(AFFECTNET_EXPRESSIONS)
    if name in _FERPLUS_NAMES
}
"""AffectNet expression code (0..7) -> index in `FERPLUS_CLASSES`."""

TRAIN_CSV = "training.csv"
TEST_CSV = "validation.csv"
IMAGE_FOLDER = "Manually_Annotated_Images"
LIST_FOLDER = "Manually_Annotated_file_lists"
BOX_COLUMNS = ("face_x", "face_y", "face_width", "face_height")
COLUMNS = ("subDirectory_filePath", *BOX_COLUMNS, "expression", "valence", "arousal")
_CSV_HEADER = ",".join((*COLUMNS[:5], "facial_landmarks", *COLUMNS[5:]))
NON_POSITIVE_BOX = "non-positive face box"
BOX_OUTSIDE = "face box outside the image"

_CITATION = r"""@article{mollahosseini2019affectnet,
  title={AffectNet: A Database for Facial Expression, Valence, and Arousal Computing in the Wild},
  author={Mollahosseini, Ali and Hasani, Behzad and Mahoor, Mohammad H.},
  journal={IEEE Transactions on Affective Computing},
  volume={10},
  number={1},
  pages={18--31},
  year={2019}
}"""


def crop_face(image, x, y, width, height):
    """The face box `(x, y, width, height)` of an image array, clipped to the image.

    Args:
        image: array `[height, width]` or `[height, width, channels]`.
        x: int, left edge of the box (column); may be negative.
        y: int, top edge of the box (row); may be negative.
        width: int, width of the box in pixels.
        height: int, height of the box in pixels.

    Returns:
        The crop (a view of `image`), or None when the box does not overlap
        the image (or is empty).

    Examples:
        >>> import numpy as np
        >>> crop_face(np.zeros((10, 20)), x=15, y=-2, width=8, height=5).shape
        (3, 5)

    Reference:
        Mollahosseini et al., "AffectNet", IEEE Trans. Affective Computing 2019.
    """
    rows, columns = np.shape(image)[:2]
    top, bottom = max(0, y), min(rows, y + height)
    left, right = max(0, x), min(columns, x + width)
    if bottom <= top or right <= left:
        return None
    return image[top:bottom, left:right]


def affectnet_files(manual_dir):
    """`(training.csv, validation.csv, Manually_Annotated_Images/)` in `manual_dir`.

    The csv files may lie in `manual_dir` itself or in its
    `Manually_Annotated_file_lists/` folder (as in AffectNet's archive).

    Args:
        manual_dir: the manual download directory (str or path).

    Raises:
        ValueError: naming the missing file or folder and the directory.

    Examples:
        >>> affectnet_files("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: AffectNet needs training.csv in the manual download directory /nonexistent ...

    Reference:
        http://mohammadmahoor.com/affectnet/
    """
    manual_dir = epath.Path(manual_dir)
    found = []
    for name in (TRAIN_CSV, TEST_CSV):
        candidates = (manual_dir / name, manual_dir / LIST_FOLDER / name)
        path = next((path for path in candidates if path.exists()), None)
        if path is None:
            raise ValueError(
                f"AffectNet needs {name} in the manual download directory {manual_dir} "
                f"(or in its {LIST_FOLDER}/); {candidates[0]} was not found.\n"
                f"{AffectNet.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        found.append(path)
    image_dir = manual_dir / IMAGE_FOLDER
    if not image_dir.is_dir():
        raise ValueError(
            f"AffectNet needs the image folder {IMAGE_FOLDER}/ in the manual download directory "
            f"{manual_dir}; {image_dir} was not found.\n{AffectNet.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    return found[0], found[1], image_dir


def _number(text, what, where, cast=float):
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{where}: {what} {text.strip()!r} is not a number.") from None
    if not np.isfinite(value) or (cast is int and value != round(value)):
        kind = "an integer" if cast is int else "a finite number"
        raise ValueError(f"{where}: {what} {text.strip()!r} is not {kind}.")
    return cast(value)


def read_affectnet(csv_path, image_dir, image_size=48, skips=None):
    """Yield `(row, example)` for the kept rows of an AffectNet csv file.

    Args:
        csv_path: `training.csv` or `validation.csv` (str or path).
        image_dir: the `Manually_Annotated_Images` folder.
        image_size: int, default 48; side of the gray square crops.
        skips: optional `SkipCounter` that counts the skipped rows by reason
            ("expression 8 (None)", ..., "non-positive face box", "face box
            outside the image").

    Yields:
        `(row, example)`: `row` is the data row of the csv (from 0) and
        `example` a dict with `image` (uint8 `[size, size, 1]`), `label`
        (index in `FERPLUS_CLASSES`), `valence`, `arousal` (float32) and
        `path` (`subDirectory_filePath`).

    Raises:
        ValueError: a missing column, a non-numeric field, an expression
            outside 0..10, or a missing or unreadable image; the message
            names the csv file and row (and the image).

    Examples:
        >>> next(read_affectnet("/nonexistent/training.csv", "/nonexistent"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: /nonexistent/training.csv not found.

    Reference:
        Mollahosseini et al., "AffectNet", IEEE Trans. Affective Computing 2019.
    """
    csv_path, image_dir = epath.Path(csv_path), epath.Path(image_dir)
    skips = SkipCounter("affectnet", csv_path.name) if skips is None else skips
    if not csv_path.exists():
        raise ValueError(f"{csv_path} not found.")
    with csv_path.open("r", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        names = [name.strip().lstrip("\ufeff").strip() for name in header or []]
        missing = [column for column in COLUMNS if column not in names]
        if missing:
            raise ValueError(f"{csv_path}: the header lacks columns {missing}; found {names}.")
        position = {column: names.index(column) for column in COLUMNS}
        row = -1
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            row += 1
            where = f"{csv_path}, row {row} (line {reader.line_num})"
            if len(fields) != len(names):
                raise ValueError(f"{where}: expected {len(names)} fields, found {len(fields)}.")
            field = {column: fields[i] for column, i in position.items()}
            expression = _number(field["expression"], "expression", where, int)
            if not 0 <= expression < len(AFFECTNET_EXPRESSIONS):
                raise ValueError(f"{where}: expression {expression} is outside 0..10.")
            x, y, width, height = (_number(field[c], c, where, int) for c in BOX_COLUMNS)
            valence = _number(field["valence"], "valence", where)
            arousal = _number(field["arousal"], "arousal", where)
            if expression not in EXPRESSION_TO_LABEL:
                skips.add(f"expression {expression} ({AFFECTNET_EXPRESSIONS[expression]})")
                continue
            if width <= 0 or height <= 0:
                skips.add(NON_POSITIVE_BOX)
                continue
            relative = field["subDirectory_filePath"].strip()
            image = read_image(image_dir / relative, where)
            face = crop_face(image, x, y, width, height)
            if face is None:
                skips.add(BOX_OUTSIDE)
                continue
            example = {
                "image": gray_square(face, image_size),
                "label": EXPRESSION_TO_LABEL[expression],
                "valence": np.float32(valence),
                "arousal": np.float32(arousal),
                "path": relative,
            }
            yield row, example


class AffectNet(tfds.core.GeneratorBasedBuilder):
    """AffectNet's manually annotated faces, cropped, gray, in FER+ class order ("affectnet").

    Configs: "48px" (default), "64px", "96px". Splits: `train`
    (`training.csv`) and `test` (`validation.csv`). Features: `image` (uint8
    `[size, size, 1]`), `label` (ClassLabel over `FERPLUS_CLASSES`; AffectNet
    has all eight), `valence` and `arousal` (float32, in [-1, 1]) and `path`
    (the image's `subDirectory_filePath`).

    Keyword arguments are TFDS' `DatasetBuilder`'s: `config` (a str or

    `ExpressionConfig`, default "48px") and `data_dir` (where TFDS stores the

    prepared dataset).

    Examples:
        >>> import tensorflow_datasets as tfds
        >>> builder = tfds.builder("affectnet/96px")
        >>> builder.info.features["image"].shape
        (96, 96, 1)

    Once the files are in the manual directory::

        ds = tfds.load("affectnet", split="test", download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir="~/affectnet")})

    Reference:
        Mollahosseini et al., "AffectNet: A Database for Facial Expression,
        Valence, and Arousal Computing in the Wild", IEEE Trans. Affective
        Computing 2019.
    """

    name = "affectnet"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = default_configs("AffectNet face crops")
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Request AffectNet from its authors (http://mohammadmahoor.com/affectnet/)
    and put, in the manual directory (`~/tensorflow_datasets/downloads/manual/`
    unless `tfds.download.DownloadConfig(manual_dir=...)` says otherwise):

    * `{TRAIN_CSV}` and `{TEST_CSV}`: the manually annotated file lists (at
      the top of the manual directory, or left in `{LIST_FOLDER}/`), header
      `{_CSV_HEADER}`.
    * `{IMAGE_FOLDER}/`: the extracted images, so that
      `{IMAGE_FOLDER}/<subDirectory_filePath>` is each row's image.
    """

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "AffectNet's manually annotated in-the-wild faces: eight expressions mapped to "
                "FER+ order, face boxes cropped to gray squares, with valence and arousal."
            ),
            features=expression_features(
                self.builder_config.image_size,
                valence=tfds.features.Scalar(np.float32, doc="Valence in [-1, 1]."),
                arousal=tfds.features.Scalar(np.float32, doc="Arousal in [-1, 1]."),
                path=tfds.features.Text(doc="subDirectory_filePath of the source image."),
            ),
            supervised_keys=("image", "label"),
            homepage="http://mohammadmahoor.com/affectnet/",
            citation=_CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        train_csv, test_csv, image_dir = affectnet_files(dl_manager.manual_dir)
        return {
            "train": self._generate_examples(train_csv, image_dir, "train"),
            "test": self._generate_examples(test_csv, image_dir, "test"),
        }

    def _generate_examples(self, csv_path, image_dir, split):
        skips = SkipCounter("affectnet", f"{csv_path.name} ({split})")
        yield from read_affectnet(csv_path, image_dir, self.builder_config.image_size, skips)
        self.info.metadata.setdefault("skipped", {})[split] = skips.report()
