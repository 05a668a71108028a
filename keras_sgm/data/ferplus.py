"""FER+ as a TensorFlow Datasets builder: FER2013's faces with Microsoft's ten-tagger votes.

FER2013 (Kaggle) gives 35,887 gray 48x48 faces with one label each; FER+
(Microsoft) had ten crowd taggers relabel every face into eight expressions,
plus `unknown` and `NF` (not a face). Both files are read from the manual
download directory, checked row by row and aligned one to one.

The label rules, after FER+'s outlier rule (a count of one vote is zeroed):

* `majority`: a row keeps the class holding *more than half* of all the
  remaining votes, `unknown` and `NF` included. A tie can never be a majority
  (5 happiness and 5 neutral: neither holds more than half), nor can exactly
  half; such rows are dropped as "no majority". A row whose majority is
  `unknown` or `NF` is dropped, as is a row with no vote left.
* `probability`: the label is the vote distribution over the eight
  expressions (feature `votes`); a row is kept when its best expression has
  strictly more votes than `unknown` and than `NF` (a tie with either drops
  it). Its `label` is the best expression, ties going to the earlier class in
  FER+ order. Only the train split uses it: validation and test always use
  `majority`, so every config is evaluated on the same examples.

Rows of `fer2013new.csv` with an empty `Image name` are dropped. Every
dropped row is counted by reason, logged as a warning, and stored in
`builder.info.metadata["skipped"]` (`{split: {reason: count}}`).
"""

import csv
import dataclasses
import itertools

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from keras_sgm.data._builder import ExpressionConfig, default_configs, expression_features
from keras_sgm.data.expressions import FERPLUS_CLASSES, SkipCounter, gray_square

FER2013_CSV = "fer2013.csv"
FERPLUS_CSV = "fer2013new.csv"
FER2013_COLUMNS = ("emotion", "pixels", "Usage")
VOTE_COLUMNS = (*FERPLUS_CLASSES, "unknown", "NF")
"""The ten vote columns of `fer2013new.csv`: the eight expressions, then unknown and NF."""
FERPLUS_COLUMNS = ("Usage", "Image name", *VOTE_COLUMNS)
_FERPLUS_HEADER = ",".join(FERPLUS_COLUMNS)
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
LABEL_MODES = ("majority", "probability")
IMAGE_SIDE = 48
MAX_VOTES = 10

NO_IMAGE_NAME = "empty Image name"
NO_VOTES_LEFT = "all counts <= 1"
NO_MAJORITY = "no majority"
WINNER_UNKNOWN = "winner is unknown"
WINNER_NOT_A_FACE = "winner is NF"

_CITATION = r"""@inproceedings{barsoum2016ferplus,
  title={Training Deep Networks for Facial Expression Recognition with Crowd-Sourced Label
         Distribution},
  author={Barsoum, Emad and Zhang, Cha and Canton Ferrer, Cristian and Zhang, Zhengyou},
  booktitle={ACM International Conference on Multimodal Interaction (ICMI)},
  year={2016}
}
@inproceedings{goodfellow2013challenges,
  title={Challenges in Representation Learning: A Report on Three Machine Learning Contests},
  author={Goodfellow, Ian J. and others},
  booktitle={International Conference on Neural Information Processing (ICONIP)},
  year={2013}
}"""


def clean_votes(votes):
    """FER+'s outlier rule: the ten counts as int64, each count of one (or zero) set to zero.

    Args:
        votes: ten vote counts in `VOTE_COLUMNS` order.

    Examples:
        >>> clean_votes([6, 1, 3, 0, 0, 0, 0, 0, 0, 0]).tolist()
        [6, 0, 3, 0, 0, 0, 0, 0, 0, 0]

    Reference:
        Barsoum et al., "Training Deep Networks for Facial Expression
        Recognition with Crowd-Sourced Label Distribution", ICMI 2016.
    """
    votes = np.asarray(votes, dtype=np.int64)
    if votes.shape != (len(VOTE_COLUMNS),):
        raise ValueError(
            f"Expected {len(VOTE_COLUMNS)} vote counts ({', '.join(VOTE_COLUMNS)}); "
            f"received shape {votes.shape}."
        )
    return np.where(votes <= 1, 0, votes)


def vote_distribution(votes):
    """The eight expressions' share of their votes after `clean_votes` (float32 `[8]`).

    `unknown` and `NF` are left out, so the eight shares sum to one; a row
    without any expression vote gives all zeros.

    Args:
        votes: ten vote counts in `VOTE_COLUMNS` order.

    Examples:
        >>> vote_distribution([6, 2, 0, 0, 0, 0, 0, 1, 0, 2]).tolist()
        [0.75, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]

    Reference:
        Barsoum et al., ICMI 2016 (the "probability" training mode).
    """
    emotions = clean_votes(votes)[: len(FERPLUS_CLASSES)].astype(np.float32)
    total = emotions.sum()
    return emotions / total if total > 0 else emotions


def vote_label(votes, label_mode="majority"):
    """Apply a FER+ label rule to one row: `(label, None)` if kept, `(None, reason)` if dropped.

    `majority` keeps the class with more than half of all votes left after
    `clean_votes` (`unknown` and `NF` count in the total), so ties and exact
    halves are dropped ("no majority"). `probability` keeps a row whose best
    expression beats both `unknown` and `NF` strictly; its label is the best
    expression, ties going to the first in `FERPLUS_CLASSES`.

    Args:
        votes: ten vote counts in `VOTE_COLUMNS` order.
        label_mode: `"majority"` (default) or `"probability"`.

    Returns:
        `(index in FERPLUS_CLASSES, None)`, or `(None, reason)` with reason one
        of "all counts <= 1", "no majority", "winner is unknown",
        "winner is NF".

    Examples:
        >>> vote_label([2, 8, 0, 0, 0, 0, 0, 0, 0, 0])
        (1, None)
        >>> vote_label([5, 5, 0, 0, 0, 0, 0, 0, 0, 0])
        (None, 'no majority')
        >>> vote_label([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], "probability")
        (0, None)

    Reference:
        Barsoum et al., ICMI 2016, section 3 (majority voting, probability).
    """
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}; received {label_mode!r}.")
    votes = clean_votes(votes)
    total = votes.sum()
    if total == 0:
        return None, NO_VOTES_LEFT
    unknown, not_a_face = votes[len(FERPLUS_CLASSES)], votes[len(FERPLUS_CLASSES) + 1]
    if label_mode == "majority":
        winner = int(np.argmax(votes))
        if 2 * votes[winner] <= total:
            return None, NO_MAJORITY
    else:
        winner = int(np.argmax(votes[: len(FERPLUS_CLASSES)]))
        if max(unknown, not_a_face) >= votes[winner]:
            winner = len(FERPLUS_CLASSES) + int(not_a_face > unknown)
    if winner == len(FERPLUS_CLASSES):
        return None, WINNER_UNKNOWN
    if winner == len(FERPLUS_CLASSES) + 1:
        return None, WINNER_NOT_A_FACE
    return winner, None


def _csv_rows(file, path, columns):
    """Yield `(row, line, {column: text})` for the data rows of an open csv file.

    Header names are matched after stripping spaces (and a byte-order mark),
    in any order; blank lines are ignored.
    """
    reader = csv.reader(file)
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path} is empty; expected a header with columns {list(columns)}.")
    names = [name.strip().lstrip("\ufeff").strip() for name in header]
    missing = [column for column in columns if column not in names]
    if missing:
        raise ValueError(f"{path}: the header lacks columns {missing}; found {names}.")
    positions = {column: names.index(column) for column in columns}
    row = 0
    for fields in reader:
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(names):
            raise ValueError(
                f"{path}, row {row} (line {reader.line_num}): expected {len(names)} fields, "
                f"found {len(fields)}."
            )
        yield row, reader.line_num, {column: fields[i] for column, i in positions.items()}
        row += 1


def _parse_int(text, low, high, what, where):
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{where}: {what} {text.strip()!r} is not an integer.") from None
    if not low <= value <= high:
        raise ValueError(f"{where}: {what} {value} is outside {low}..{high}.")
    return value


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


def _parse_pixels(text, where):
    parts = text.split()
    if len(parts) != IMAGE_SIDE * IMAGE_SIDE:
        raise ValueError(
            f"{where}: expected {IMAGE_SIDE * IMAGE_SIDE} pixels ({IMAGE_SIDE}x{IMAGE_SIDE}), "
            f"found {len(parts)}."
        )
    try:
        values = np.array(parts, dtype=np.int64)
    except ValueError:
        position, bad = next((i, p) for i, p in enumerate(parts) if not _is_int(p))
        raise ValueError(f"{where}: pixel {position} is {bad!r}, not an integer.") from None
    if values.min() < 0 or values.max() > 255:
        position = int(np.argmax((values < 0) | (values > 255)))
        raise ValueError(f"{where}: pixel {position} is {values[position]}, outside 0..255.")
    return values.astype(np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE)


def ferplus_files(manual_dir):
    """Paths of `fer2013.csv` and `fer2013new.csv` in `manual_dir` (ValueError names a missing one).

    Args:
        manual_dir: the manual download directory (str or path).

    Examples:
        >>> ferplus_files("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: FER+ needs fer2013.csv in the manual download directory /nonexistent; ...

    Reference:
        https://github.com/microsoft/FERPlus
    """
    manual_dir = epath.Path(manual_dir)
    paths = (manual_dir / FER2013_CSV, manual_dir / FERPLUS_CSV)
    for path in paths:
        if not path.exists():
            raise ValueError(
                f"FER+ needs {path.name} in the manual download directory {manual_dir}; "
                f"{path} was not found.\n{FerPlus.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
    return paths


def read_ferplus(manual_dir, label_mode="majority"):
    """Read, check and label FER+: every row of both files is validated, kept rows returned.

    Args:
        manual_dir: directory holding `fer2013.csv` and `fer2013new.csv`.
        label_mode: `"majority"` (default) or `"probability"`; applies to the
            train split only, validation and test always use `"majority"`.

    Returns:
        `(examples, skips)`: `examples` maps "train" / "validation" / "test"
        to lists of dicts with `index` (data row of both csv files, from 0),
        `pixels` (uint8 `[48, 48]`), `label` and `votes` (float32 `[8]`,
        `vote_distribution`); `skips` maps the same splits to `SkipCounter`s.

    Raises:
        ValueError: a missing file, a malformed row (pixel count, non-integer,
            value out of range, unknown Usage), or files that do not align
            (row count or Usage); the message names the file and the row.

    Examples:
        >>> read_ferplus("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: FER+ needs fer2013.csv ...

    Reference:
        Barsoum et al., ICMI 2016; https://github.com/microsoft/FERPlus
    """
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}; received {label_mode!r}.")
    fer_path, new_path = ferplus_files(manual_dir)
    splits = tuple(USAGE_TO_SPLIT.values())
    examples = {split: [] for split in splits}
    skips = {split: SkipCounter("ferplus", f"{FERPLUS_CSV} ({split})") for split in splits}
    with fer_path.open("r", encoding="utf-8") as fer_file:
        with new_path.open("r", encoding="utf-8") as new_file:
            fer_rows = _csv_rows(fer_file, fer_path, FER2013_COLUMNS)
            new_rows = _csv_rows(new_file, new_path, FERPLUS_COLUMNS)
            for fer_row, new_row in itertools.zip_longest(fer_rows, new_rows):
                if fer_row is None or new_row is None:
                    _raise_row_count(fer_path, fer_row, fer_rows, new_path, new_row, new_rows)
                index, split, pixels, votes, named = _parse_row(
                    fer_path, fer_row, new_path, new_row
                )
                if not named:
                    skips[split].add(NO_IMAGE_NAME)
                    continue
                label, reason = vote_label(votes, label_mode if split == "train" else "majority")
                if reason is not None:
                    skips[split].add(reason)
                    continue
                example = {"index": index, "pixels": pixels, "label": label}
                examples[split].append({**example, "votes": vote_distribution(votes)})
    return examples, skips


def _parse_row(fer_path, fer_row, new_path, new_row):
    """Check one aligned pair of rows: `(index, split, pixels, votes, has an Image name)`."""
    (index, fer_line, fer), (_, new_line, new) = fer_row, new_row
    fer_where = f"{fer_path}, row {index} (line {fer_line})"
    new_where = f"{new_path}, row {index} (line {new_line})"
    usage = fer["Usage"].strip()
    if usage not in USAGE_TO_SPLIT:
        raise ValueError(f"{fer_where}: Usage {usage!r} is not one of {list(USAGE_TO_SPLIT)}.")
    if new["Usage"].strip() != usage:
        raise ValueError(
            f"{new_where}: Usage {new['Usage'].strip()!r} does not match {usage!r} in "
            f"{fer_path} (line {fer_line}); the two files must list the same images in the "
            "same order."
        )
    _parse_int(fer["emotion"], 0, 6, "emotion", fer_where)
    pixels = _parse_pixels(fer["pixels"], fer_where)
    votes = [
        _parse_int(new[column], 0, MAX_VOTES, f"vote count {column!r}", new_where)
        for column in VOTE_COLUMNS
    ]
    return index, USAGE_TO_SPLIT[usage], pixels, votes, bool(new["Image name"].strip())


def _raise_row_count(fer_path, fer_row, fer_rows, new_path, new_row, new_rows):
    """Both files must have as many rows; name the counts and the first unmatched row."""
    row = (fer_row or new_row)[0]
    longer = fer_rows if new_row is None else new_rows
    count = row + 1 + sum(1 for _ in longer)
    counts = (count, row) if new_row is None else (row, count)
    raise ValueError(
        f"{fer_path} has {counts[0]} rows but {new_path} has {counts[1]}; the two files must "
        f"list the same images in the same order (row {row} has no partner)."
    )


@dataclasses.dataclass(eq=False)
class FerPlusConfig(ExpressionConfig):
    """A FER+ config: image size and the train split's label rule (`majority` or `probability`)."""

    label_mode: str = "majority"


def _ferplus_configs():
    configs = []
    for mode in LABEL_MODES:
        for base in default_configs("FER+ faces"):
            suffix = "" if mode == "majority" else f"_{mode}"
            configs.append(
                FerPlusConfig(
                    name=f"{base.name}{suffix}",
                    description=f"{base.description[:-1]}; train labels by {mode} "
                    "(validation and test by majority).",
                    image_size=base.image_size,
                    label_mode=mode,
                )
            )
    return configs


class FerPlus(tfds.core.GeneratorBasedBuilder):
    """FER2013 faces with FER+ labels, in FER+ class order (`tfds` name "ferplus").

    Configs: "48px" (default), "64px", "96px" label the train split by
    majority; "48px_probability", "64px_probability", "96px_probability"
    keep the train rows without a majority too (soft label `votes`, `label`
    its argmax). Validation and test are labelled by majority in every config.
    Splits: train / validation / test = FER2013's Training / PublicTest /
    PrivateTest.

    Features: `image` (uint8 `[size, size, 1]`), `label` (ClassLabel over
    `FERPLUS_CLASSES`), `votes` (float32 `[8]`, `vote_distribution`),
    `index` (int64, the data row in both csv files, from 0).

    Keyword arguments are TFDS' `DatasetBuilder`'s: `config` (a str or

    `FerPlusConfig`, default "48px") and `data_dir` (where TFDS stores the

    prepared dataset).

    Examples:
        >>> import tensorflow_datasets as tfds
        >>> builder = tfds.builder("ferplus/48px_probability")
        >>> builder.builder_config.label_mode, builder.info.features["votes"].shape
        ('probability', (8,))

    Once the two csv files are in the manual directory::

        ds = tfds.load("ferplus/48px", split="train", download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir="~/fer")})

    Reference:
        Barsoum et al., "Training Deep Networks for Facial Expression
        Recognition with Crowd-Sourced Label Distribution", ICMI 2016.
    """

    name = "ferplus"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = _ferplus_configs()
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Put two files, unrenamed and uncompressed, directly in the manual directory
    (`~/tensorflow_datasets/downloads/manual/` unless
    `tfds.download.DownloadConfig(manual_dir=...)` says otherwise):

    * `{FER2013_CSV}`: FER2013 from Kaggle's "Challenges in Representation
      Learning: Facial Expression Recognition Challenge" (inside
      `fer2013.tar.gz`): header `emotion,pixels,Usage` (spaces around the
      names are accepted), 35,887 rows of 2,304 space-separated gray pixels.
    * `{FERPLUS_CSV}`: the FER+ votes from https://github.com/microsoft/FERPlus
      (the file at the repository root): header
      `{_FERPLUS_HEADER}`, one row per row of
      `{FER2013_CSV}`, in the same order.
    """

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "FER2013's 48x48 gray faces relabelled by ten taggers each (FER+): eight "
                "expressions, train labels by majority or by vote distribution."
            ),
            features=expression_features(
                self.builder_config.image_size,
                votes=tfds.features.Tensor(
                    shape=(len(FERPLUS_CLASSES),),
                    dtype=np.float32,
                    doc="Share of each expression's votes after zeroing single votes.",
                ),
                index=tfds.features.Scalar(
                    np.int64, doc="Data row in fer2013.csv and fer2013new.csv, from 0."
                ),
            ),
            supervised_keys=("image", "label"),
            homepage="https://github.com/microsoft/FERPlus",
            citation=_CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        examples, skips = read_ferplus(dl_manager.manual_dir, self.builder_config.label_mode)
        self.info.metadata["skipped"] = {split: skips[split].report() for split in examples}
        return {split: self._generate_examples(rows) for split, rows in examples.items()}

    def _generate_examples(self, rows):
        size = self.builder_config.image_size
        for row in rows:
            example = {
                "image": gray_square(row["pixels"], size),
                "label": row["label"],
                "votes": row["votes"],
                "index": row["index"],
            }
            yield row["index"], example
