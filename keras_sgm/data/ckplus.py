"""CK+ (the extended Cohn-Kanade database) as a TFDS builder, registered as "ckplus".

CK+ holds 593 posed sequences of 123 subjects, each going from a neutral face
to the peak of an expression; 327 of them carry an emotion label. Following
the usual practice, the last three frames of a labelled sequence take its
label and its first frame is a `neutral` example. Subjects never cross splits.
"""

from etils import epath

from keras_sgm.data._builder import expression_features, tfds
from keras_sgm.data._subject_builder import SubjectSplitBuilder, subject_split_configs
from keras_sgm.data.expressions import SkipCounter

CKPLUS_CODES = (
    "neutral",
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
)
"""CK+ emotion code (the number in an `_emotion.txt` file) -> FER+ class name."""

FRAMES_PER_PEAK = 3
"""How many of a labelled sequence's last frames take its label."""

_CITATION = """\
@inproceedings{lucey2010ckplus,
  title={The Extended Cohn-Kanade Dataset ({CK+}): A complete dataset for action unit and
         emotion-specified expression},
  author={Lucey, Patrick and Cohn, Jeffrey F. and Kanade, Takeo and Saragih, Jason and
          Ambadar, Zara and Matthews, Iain},
  booktitle={CVPR Workshops},
  pages={94--101},
  year={2010}
}
"""


def parse_emotion(text, source="<emotion file>"):
    """The FER+ class name of a CK+ emotion file's text (one number, a code 0..7).

    Args:
        text: str; the file's contents, e.g. `"   3.0000000e+00\\n"`.
        source: str; the file, named in errors.

    Returns:
        the FER+ class name (see `CKPLUS_CODES`).

    Raises:
        ValueError: naming `source`, when the text is not one whole number in 0..7.

    Examples:
        >>> parse_emotion("   3.0000000e+00\\n")
        'disgust'
        >>> parse_emotion("   5.0000000e+00")
        'happiness'
    """
    tokens = text.split()
    try:
        (value,) = (float(token) for token in tokens)
    except ValueError:
        raise ValueError(
            f"Emotion file {source} should hold one number (a code 0..7); found {text!r}."
        ) from None
    if value != int(value) or not 0 <= value < len(CKPLUS_CODES):
        raise ValueError(
            f"Emotion file {source} holds {value:g}, not an emotion code 0..7 "
            f"({', '.join(f'{i} {n}' for i, n in enumerate(CKPLUS_CODES))})."
        )
    return CKPLUS_CODES[int(value)]


def _subfolders(folder):
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_ckplus(root, skips=None):
    """Find CK+'s labelled frames under `root` (the manual dir), in a fixed order.

    A sequence is used only when its `Emotion/Sxxx/yyy/` folder holds an
    `_emotion.txt` file. Its frames are sorted by name: the last three take
    the label, the first is `neutral` (when the sequence has more than three
    frames). Files that are not `.png` frames are ignored.

    Args:
        root: folder holding `cohn-kanade-images/` and `Emotion/`.
        skips: optional `SkipCounter`; image sequences without an emotion
            file, and sequences too short for a neutral frame, are counted in it.

    Returns:
        list of dicts with `path` (epath.Path of the frame), `label` (FER+
        class name), `subject` (e.g. `"S005"`) and `sequence` (e.g. `"S005_001"`).

    Raises:
        FileNotFoundError: `cohn-kanade-images/` or `Emotion/` is missing.
        ValueError: naming the file or folder, for an emotion file that is not
            one code 0..7, a sequence folder with two emotion files or with no
            frames, and labelled sequences whose image folder is missing.

    Examples:
        >>> import tempfile
        >>> list_ckplus(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: CK+ folder ... not found...
    """
    root = epath.Path(root)
    skips = skips if skips is not None else SkipCounter("ckplus", str(root))
    images_dir, emotion_dir = root / "cohn-kanade-images", root / "Emotion"
    for folder in (images_dir, emotion_dir):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"CK+ folder {folder} not found.\n{CKPlus.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )

    labels = {}
    for subject_dir in _subfolders(emotion_dir):
        for sequence_dir in _subfolders(subject_dir):
            files = sorted(p for p in sequence_dir.iterdir() if p.name.endswith("_emotion.txt"))
            if len(files) > 1:
                raise ValueError(
                    f"Sequence folder {sequence_dir} holds {len(files)} emotion files; "
                    "expected one."
                )
            if files:
                labels[subject_dir.name, sequence_dir.name] = parse_emotion(
                    files[0].read_text(), source=files[0]
                )

    missing = [images_dir / s / q for s, q in sorted(labels) if not (images_dir / s / q).is_dir()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} labelled CK+ sequences have no image folder: {shown}.")
    for subject_dir in _subfolders(images_dir):
        for sequence_dir in _subfolders(subject_dir):
            if (subject_dir.name, sequence_dir.name) not in labels:
                skips.add("sequences without an emotion file")

    records = []
    for (subject, sequence), label in sorted(labels.items()):
        folder = images_dir / subject / sequence
        frames = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.name[0] != "."),
            key=lambda p: p.name,
        )
        if not frames:
            raise ValueError(f"Sequence folder {folder} has no frames (*.png).")
        sequence_id = f"{subject}_{sequence}"
        if len(frames) > FRAMES_PER_PEAK:
            records.append(
                {"path": frames[0], "label": "neutral", "subject": subject, "sequence": sequence_id}
            )
        else:
            skips.add("sequences too short for a neutral first frame")
        records.extend(
            {"path": frame, "label": label, "subject": subject, "sequence": sequence_id}
            for frame in frames[-FRAMES_PER_PEAK:]
        )
    return records


class CKPlus(SubjectSplitBuilder):
    """CK+ peak and neutral frames, FER+ class order, split by subject.

    Every FER+ class is present: CK+ poses contempt, and its neutral examples
    are the first frames of its sequences.

    Each example holds `image` (a gray uint8 square), `label` (its FER+ class),
    `subject` (who posed it, e.g. `"S005"`) and `sequence` (e.g. `"S005_001"`).

    Configs:

    - `48px` (the default), `64px`, `96px`: 20 % of the subjects as test;
    - `48px_fold0of10` ... `48px_fold9of10`: ten folds by subject;
    - any other split: `SubjectSplitConfig.make(...)`.

    Examples:
        >>> import tempfile
        >>> from keras_sgm.data._subject_builder import SubjectSplitConfig
        >>> builder = CKPlus(config="48px", data_dir=tempfile.mkdtemp())
        >>> sorted(builder.info.features)
        ['image', 'label', 'sequence', 'subject']
        >>> builder.builder_config.test_fraction
        0.2
        >>> config = SubjectSplitConfig.make(folds=5, fold=2)
        >>> CKPlus(config=config, data_dir=tempfile.mkdtemp()).builder_config.name
        '48px_fold2of5'

    Reference:
        Lucey et al., "The Extended Cohn-Kanade Dataset (CK+): A complete
        dataset for action unit and emotion-specified expression", CVPR
        Workshops 2010.
    """

    name = "ckplus"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = subject_split_configs("CK+ peak and neutral frames")
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Request CK+ from its authors (https://www.jeffcohn.net/Resources/), then put
two folders from the archives in the manual dir (default
~/tensorflow_datasets/downloads/manual/):
  cohn-kanade-images/   from extended-cohn-kanade-images.zip:
                        cohn-kanade-images/S005/001/S005_001_00000001.png ...
  Emotion/              from Emotion_labels.zip:
                        Emotion/S005/001/S005_001_00000011_emotion.txt ...
The landmark (Landmarks/) and action-unit (FACS/) folders are not used.
"""

    def _info(self):
        size = self.builder_config.image_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "The extended Cohn-Kanade database: the last three frames of each "
                "emotion-labelled sequence take its label, the first frame is neutral; "
                "labels in FER+ class order, splits by subject."
            ),
            features=expression_features(
                size, subject=tfds.features.Text(), sequence=tfds.features.Text()
            ),
            supervised_keys=("image", "label"),
            homepage="https://www.jeffcohn.net/Resources/",
            citation=_CITATION,
        )

    EXTRA_KEYS = ("sequence",)

    def _list_records(self, manual_dir, skips):
        return list_ckplus(manual_dir, skips)
