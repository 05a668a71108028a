"""BU-3DFE's 2D face textures as a TFDS builder, registered as "bu3dfe".

BU-3DFE (Binghamton University 3D Facial Expression) scanned 100 subjects (56
female, 44 male) posing six expressions at four intensities each, and a
neutral face. Each scan comes with a frontal 2D texture,
`F0001/F0001_AN01WH_F2D.bmp`: subject `F0001`, expression `AN` at intensity
`01`, race `WH`. Only these textures are read; subjects never cross splits.
"""

import dataclasses
import re

import numpy as np
from etils import epath

from keras_sgm.data._builder import expression_features, tfds
from keras_sgm.data._subject_builder import (
    SubjectSplitBuilder,
    SubjectSplitConfig,
    subject_split_configs,
)
from keras_sgm.data.expressions import SkipCounter

BU3DFE_CODES = {
    "AN": "anger",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happiness",
    "NE": "neutral",
    "SA": "sadness",
    "SU": "surprise",
}
"""BU-3DFE expression code -> FER+ class name (BU-3DFE has no contempt)."""

BU3DFE_RACES = {
    "AE": "East Asian",
    "BL": "Black",
    "IN": "Indian",
    "LA": "Hispanic/Latino",
    "ME": "Middle-East Asian",
    "WH": "White",
}
"""BU-3DFE race code (stored in the `race` feature) -> what it stands for."""

BU3DFE_FOLDER = "BU_3DFE"
"""The folder, in the manual dir, holding one sub-folder per subject."""

_NAME = re.compile(
    r"^(?P<subject>[A-Z]\d{4})_(?P<code>[A-Z]{2})(?P<intensity>\d{2})(?P<race>[A-Z]{2})"
    r"_F2D\.bmp$",
    re.IGNORECASE,
)

_CITATION = """\
@inproceedings{yin2006bu3dfe,
  title={A {3D} facial expression database for facial behavior research},
  author={Yin, Lijun and Wei, Xiaozhou and Sun, Yi and Wang, Jun and Rosato, Matthew J.},
  booktitle={International Conference on Automatic Face and Gesture Recognition},
  pages={211--216},
  year={2006}
}
"""


@dataclasses.dataclass(eq=False)
class BU3DFEConfig(SubjectSplitConfig):
    """A subject-wise split config of BU-3DFE that can drop the weaker expressions.

    Args:
        min_intensity: int in 1..4, default 1; expressions below this
            intensity are left out (3 keeps the two strongest, the usual
            protocol). Neutral faces are always kept.

    The other fields are `SubjectSplitConfig`'s (`name`, `image_size`,
    `test_fraction`, `val_fraction`, `folds`, `fold`).

    Examples:
        >>> BU3DFEConfig.make(min_intensity=3, folds=10, fold=0).name
        '48px_fold0of10_intensity3'

    Reference:
        Yin et al., "A 3D facial expression database for facial behavior
        research", IEEE FG 2006.
    """

    min_intensity: int = 1

    def name_parts(self):
        parts = super().name_parts()
        return parts + [f"intensity{self.min_intensity}"] if self.min_intensity != 1 else parts

    def split_description(self):
        text = super().split_description()
        if self.min_intensity != 1:
            text += f", intensities {self.min_intensity}..4 and neutral"
        return text


def parse_bu3dfe_name(name, source=None):
    """Subject, FER+ label, intensity and race of a BU-3DFE texture name (None if not one).

    Args:
        name: str; a file name like `F0001_AN01WH_F2D.bmp`.
        source: optional path named in errors (default: `name`).

    Returns:
        dict with `subject` (e.g. `"F0001"`), `label` (FER+ class name),
        `intensity` (int, 0 for neutral, else 1..4) and `race` (a code of
        `BU3DFE_RACES`); None when `name` is not a 2D texture's name (a `.wrl`
        mesh, a `_F3D.bmp`, a README).

    Raises:
        ValueError: naming the file, for a subject not starting with F or M,
            an unknown expression or race code, or an intensity that does not
            fit its expression (`NE00`, otherwise `01`..`04`).

    Examples:
        >>> parse_bu3dfe_name("M0012_SU04AE_F2D.bmp")
        {'subject': 'M0012', 'label': 'surprise', 'intensity': 4, 'race': 'AE'}
        >>> parse_bu3dfe_name("M0012_SU04AE_F3D.wrl") is None
        True
    """
    match = _NAME.match(name)
    if match is None:
        return None
    source = source or name
    subject, code, race = match["subject"].upper(), match["code"].upper(), match["race"].upper()
    intensity = int(match["intensity"])
    if subject[0] not in "FM":
        raise ValueError(f"BU-3DFE file {source}: subject {subject!r} should start with F or M.")
    if code not in BU3DFE_CODES:
        raise ValueError(
            f"BU-3DFE file {source} has expression code {code!r}; "
            f"expected one of {sorted(BU3DFE_CODES)}."
        )
    if (code == "NE") != (intensity == 0) or intensity > 4:
        raise ValueError(
            f"BU-3DFE file {source} has intensity {match['intensity']} for {code}; "
            "expected 00 for NE and 01..04 for the other expressions."
        )
    if race not in BU3DFE_RACES:
        raise ValueError(
            f"BU-3DFE file {source} has race code {race!r}; expected one of {sorted(BU3DFE_RACES)}."
        )
    return {"subject": subject, "label": BU3DFE_CODES[code], "intensity": intensity, "race": race}


def list_bu3dfe(root, min_intensity=1, skips=None):
    """BU-3DFE's 2D textures under `root/BU_3DFE/<subject>/`, sorted, as example records.

    Args:
        root: the manual dir, holding `BU_3DFE/`.
        min_intensity: int in 1..4, default 1; expressions of lower intensity
            are left out (not counted as skipped); neutral faces are kept.
        skips: optional `SkipCounter`; files that are not 2D textures (meshes,
            landmark files, READMEs) are counted in it.

    Returns:
        list of dicts with `path` (epath.Path) and the fields of `parse_bu3dfe_name`.

    Raises:
        FileNotFoundError: `root/BU_3DFE` is missing.
        ValueError: naming the file, for a bad code (see `parse_bu3dfe_name`)
            or a file in another subject's folder; for `min_intensity` outside 1..4.

    Examples:
        >>> import tempfile
        >>> root = epath.Path(tempfile.mkdtemp())
        >>> (root / "BU_3DFE" / "F0001").mkdir(parents=True)
        >>> for name in ("F0001_AN01WH_F2D.bmp", "F0001_AN04WH_F2D.bmp", "F0001_NE00WH_F2D.bmp",
        ...              "F0001_AN04WH_F3D.wrl"):
        ...     _ = (root / "BU_3DFE" / "F0001" / name).write_bytes(b"")
        >>> [(r["label"], r["intensity"]) for r in list_bu3dfe(root, min_intensity=3)]
        [('anger', 4), ('neutral', 0)]
    """
    if min_intensity not in (1, 2, 3, 4):
        raise ValueError(f"min_intensity must be 1, 2, 3 or 4; received {min_intensity!r}.")
    folder = epath.Path(root) / BU3DFE_FOLDER
    if not folder.is_dir():
        raise FileNotFoundError(
            f"BU-3DFE folder {folder} not found.\n{BU3DFE.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    skips = skips if skips is not None else SkipCounter("bu3dfe", str(folder))
    records = []
    for subject_dir in sorted(folder.iterdir(), key=lambda p: p.name):
        if not subject_dir.is_dir():
            skips.add("files that are not 2D textures (*_F2D.bmp)")
            continue
        for path in sorted(subject_dir.iterdir(), key=lambda p: p.name):
            parsed = parse_bu3dfe_name(path.name, source=path) if path.is_file() else None
            if parsed is None:
                skips.add("files that are not 2D textures (*_F2D.bmp)")
                continue
            if parsed["subject"] != subject_dir.name.upper():
                raise ValueError(
                    f"BU-3DFE file {path} is of subject {parsed['subject']}, "
                    f"but lies in folder {subject_dir.name}."
                )
            if parsed["label"] == "neutral" or parsed["intensity"] >= min_intensity:
                records.append({"path": path, **parsed})
    return records


class BU3DFE(SubjectSplitBuilder):
    """BU-3DFE's frontal 2D textures, FER+ class order, split by subject.

    The classes are FER+'s but `contempt`, which BU-3DFE does not pose:
    neutral, happiness, surprise, sadness, anger, disgust and fear.

    Each example holds:

    - `image`: a gray uint8 square;
    - `label`: its FER+ class;
    - `subject`: who posed it, e.g. `"F0001"`;
    - `intensity`: int32, 0 for neutral and 1 to 4 otherwise;
    - `race`: a code of `BU3DFE_RACES`, e.g. `"WH"`.

    Configs:

    - `48px` (the default), `64px`, `96px`: 20 % of the subjects as test, every
      intensity;
    - `48px_intensity3`: the two strongest intensities, and neutral;
    - `48px_fold0of10` ... `48px_fold9of10`: ten folds by subject;
    - any other split: `BU3DFEConfig.make(...)`.

    Examples:
        >>> import tempfile
        >>> builder = BU3DFE(config="48px_intensity3", data_dir=tempfile.mkdtemp())
        >>> sorted(builder.info.features)
        ['image', 'intensity', 'label', 'race', 'subject']
        >>> builder.builder_config.min_intensity
        3

    Reference:
        Yin, Wei, Sun, Wang and Rosato, "A 3D facial expression database for
        facial behavior research", IEEE FG 2006.
    """

    name = "bu3dfe"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = subject_split_configs("BU-3DFE 2D textures", config_class=BU3DFEConfig)
    BUILDER_CONFIGS.insert(3, BU3DFEConfig.make(min_intensity=3, dataset="BU-3DFE 2D textures"))
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Request BU-3DFE from Binghamton University
(https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html), unpack
it and put its folder BU_3DFE/ in the manual dir (default
~/tensorflow_datasets/downloads/manual/), one sub-folder per subject:
  BU_3DFE/F0001/F0001_AN01WH_F2D.bmp
  BU_3DFE/M0001/M0001_NE00AE_F2D.bmp ...
Only the 2D textures (*_F2D.bmp) are read; the other files there (the .wrl
meshes, *_F3D.bmp, landmark files) are skipped and counted.
"""

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "BU-3DFE's frontal 2D face textures: 100 subjects, six expressions at four "
                "intensities and neutral, labels in FER+ class order, splits by subject."
            ),
            features=expression_features(
                self.builder_config.image_size,
                subject=tfds.features.Text(),
                intensity=tfds.features.Scalar(dtype=np.int32),
                race=tfds.features.Text(),
            ),
            supervised_keys=("image", "label"),
            homepage="https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html",
            citation=_CITATION,
        )

    EXTRA_KEYS = ("intensity", "race")

    def _list_records(self, manual_dir, skips):
        return list_bu3dfe(manual_dir, self.builder_config.min_intensity, skips)
