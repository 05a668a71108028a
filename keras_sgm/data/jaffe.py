"""JAFFE (the Japanese Female Facial Expression database) as a TFDS builder, registered "jaffe".

JAFFE holds 213 gray 256x256 TIFF images of 10 Japanese women posing six basic
expressions and a neutral face, named `<subject>.<expression><take>.<id>.tiff`
(e.g. `KA.AN1.39.tiff`). Subjects never cross splits.
"""

import re

from etils import epath

from keras_sgm.data._builder import expression_features, tfds
from keras_sgm.data._subject_builder import SubjectSplitBuilder, subject_split_configs
from keras_sgm.data.expressions import SkipCounter

JAFFE_CODES = {
    "AN": "anger",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happiness",
    "NE": "neutral",
    "SA": "sadness",
    "SU": "surprise",
}
"""JAFFE expression code -> FER+ class name (JAFFE has no contempt)."""

JAFFE_FOLDERS = ("jaffe", "jaffedbase")
"""The names the image folder may have in the manual dir, tried in this order."""

_NAME = re.compile(
    r"^(?P<subject>[A-Za-z]+)\.(?P<code>[A-Za-z]+)(?P<take>\d+)\.(?P<id>\d+)\.tiff?$", re.IGNORECASE
)

_CITATION = """\
@inproceedings{lyons1998jaffe,
  title={Coding facial expressions with {Gabor} wavelets},
  author={Lyons, Michael and Akamatsu, Shigeru and Kamachi, Miyuki and Gyoba, Jiro},
  booktitle={IEEE International Conference on Automatic Face and Gesture Recognition},
  pages={200--205},
  year={1998}
}
"""


def parse_jaffe_name(name, source=None):
    """Subject and FER+ label of a JAFFE file name, or None for a name not in JAFFE's pattern.

    Args:
        name: str; a file name like `KA.AN1.39.tiff` (subject `KA`,
            expression `AN` take 1, image id 39).
        source: optional path named in errors (default: `name`).

    Returns:
        dict with `subject` (upper case) and `label` (FER+ class name), or
        None when `name` does not have the pattern (e.g. `README`).

    Raises:
        ValueError: naming the file, for an expression code not in `JAFFE_CODES`.

    Examples:
        >>> parse_jaffe_name("KA.AN1.39.tiff")
        {'subject': 'KA', 'label': 'anger'}
        >>> parse_jaffe_name("README") is None
        True
    """
    match = _NAME.match(name)
    if match is None:
        return None
    code = match["code"].upper()
    if code not in JAFFE_CODES:
        raise ValueError(
            f"JAFFE file {source or name} has expression code {code!r}; "
            f"expected one of {sorted(JAFFE_CODES)}."
        )
    return {"subject": match["subject"].upper(), "label": JAFFE_CODES[code]}


def find_jaffe_folder(root):
    """The JAFFE image folder in the manual dir: `root/jaffe` or `root/jaffedbase`.

    Raises:
        FileNotFoundError: neither folder exists.

    Examples:
        >>> import tempfile
        >>> root = epath.Path(tempfile.mkdtemp())
        >>> (root / "jaffedbase").mkdir()
        >>> find_jaffe_folder(root).name
        'jaffedbase'
    """
    root = epath.Path(root)
    for name in JAFFE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(
        f"No JAFFE folder ({' or '.join(JAFFE_FOLDERS)}) in {root}.\n"
        f"{Jaffe.MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )


def list_jaffe(folder, skips=None):
    """JAFFE's images in a flat `folder`, sorted by name, as example records.

    Args:
        folder: the folder of `.tiff` files.
        skips: optional `SkipCounter`; entries whose name is not in JAFFE's
            pattern (a README, `.DS_Store`, a sub-folder) are counted in it.

    Returns:
        list of dicts with `path` (epath.Path), `subject` and `label` (FER+ class name).

    Raises:
        ValueError: naming the file, for an unknown expression code.

    Examples:
        >>> import tempfile
        >>> folder = epath.Path(tempfile.mkdtemp())
        >>> for name in ("KA.AN1.39.tiff", "KL.HA2.31.tiff", "README"):
        ...     _ = (folder / name).write_bytes(b"")
        >>> skips = SkipCounter("jaffe", str(folder))
        >>> [(r["subject"], r["label"]) for r in list_jaffe(folder, skips)]
        [('KA', 'anger'), ('KL', 'happiness')]
        >>> skips.total
        1
    """
    folder = epath.Path(folder)
    skips = skips if skips is not None else SkipCounter("jaffe", str(folder))
    records = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        parsed = parse_jaffe_name(path.name, source=path) if path.is_file() else None
        if parsed is None:
            skips.add("entries not named like KA.AN1.39.tiff")
            continue
        records.append({"path": path, **parsed})
    return records


class Jaffe(SubjectSplitBuilder):
    """JAFFE's images, FER+ class order, split by subject.

    The classes are FER+'s but `contempt`, which JAFFE does not pose: neutral,
    happiness, surprise, sadness, anger, disgust and fear.

    Each example holds `image` (a gray uint8 square), `label` (its FER+ class)
    and `subject` (who posed it, e.g. `"KA"`).

    Configs:

    - `48px` (the default), `64px`, `96px`: 20 % of the subjects (2 of 10) as test;
    - `48px_fold0of10` ... `48px_fold9of10`: leave one subject out;
    - any other split: `SubjectSplitConfig.make(...)`.

    Examples:
        >>> import tempfile
        >>> builder = Jaffe(config="48px_fold3of10", data_dir=tempfile.mkdtemp())
        >>> sorted(builder.info.features)
        ['image', 'label', 'subject']
        >>> builder.builder_config.folds, builder.builder_config.fold
        (10, 3)

    Reference:
        Lyons, Akamatsu, Kamachi and Gyoba, "Coding facial expressions with
        Gabor wavelets", IEEE FG 1998.
    """

    name = "jaffe"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = subject_split_configs("JAFFE images")
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download JAFFE (https://zenodo.org/record/3451524, free for non-commercial
research), unpack it and put its image folder in the manual dir (default
~/tensorflow_datasets/downloads/manual/) under the name jaffe/ (jaffedbase/
is accepted too), the .tiff files directly inside it:
  jaffe/KA.AN1.39.tiff
  jaffe/KA.AN2.40.tiff ...
Other files there (README, .DS_Store) are skipped and counted.
"""

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "The Japanese Female Facial Expression database: 10 subjects, six basic "
                "expressions and neutral, labels in FER+ class order, splits by subject."
            ),
            features=expression_features(
                self.builder_config.image_size, subject=tfds.features.Text()
            ),
            supervised_keys=("image", "label"),
            homepage="https://zenodo.org/record/3451524",
            citation=_CITATION,
        )

    def _list_records(self, manual_dir, skips):
        return list_jaffe(find_jaffe_folder(manual_dir), skips)
