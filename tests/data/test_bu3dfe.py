"""BU-3DFE builder: name parsing, min_intensity, skipped files, subject splits, named errors.

The fake BU-3DFE tree (16x16 RGB BMP textures named like
`F0001_AN01WH_F2D.bmp`, plus files that are not textures) is written into a
temporary folder when this module is imported.
"""

import atexit
import shutil
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from keras_sgm.data._subject_builder import split_by_subject
from keras_sgm.data.bu3dfe import BU3DFE, BU3DFEConfig, list_bu3dfe, parse_bu3dfe_name
from keras_sgm.data.expressions import SkipCounter

SUBJECTS = {"F0001": "WH", "F0002": "AE", "F0003": "BL", "M0001": "IN", "M0002": "LA"}
EXPRESSIONS = ["AN", "DI", "FE", "HA", "SA", "SU"]


def write_bmp(path, value):
    Image.fromarray(np.full((16, 16, 3), value, "uint8")).save(path)


def write_fake_bu3dfe(root, intensities=(1, 4)):
    """Five subjects, each: NE00 and the six expressions at `intensities` (13 textures), plus
    a mesh, a 3D texture and a landmark file; and a README beside the subject folders."""
    top = Path(root) / "BU_3DFE"
    for i, (subject, race) in enumerate(SUBJECTS.items()):
        folder = top / subject
        folder.mkdir(parents=True)
        write_bmp(folder / f"{subject}_NE00{race}_F2D.bmp", 40 * i)
        for j, code in enumerate(EXPRESSIONS):
            for level in intensities:
                write_bmp(
                    folder / f"{subject}_{code}0{level}{race}_F2D.bmp", 40 * i + 5 * j + level
                )
        for extra in ("_AN01{r}_F3D.wrl", "_AN01{r}_F3D.bmp", "_AN01{r}_RAW_84_LMS.txt"):
            (folder / (subject + extra.format(r=race))).write_bytes(b"\0")
    (top / "README.txt").write_text("BU-3DFE")
    return Path(root)


FAKE_DIR = write_fake_bu3dfe(tempfile.mkdtemp(prefix="keras_sgm_bu3dfe_"))
atexit.register(shutil.rmtree, FAKE_DIR, True)


class BU3DFEBuilderTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = BU3DFE
    BUILDER_CONFIG_NAMES_TO_TEST = ["48px"]
    EXAMPLE_DIR = str(FAKE_DIR)
    SPLITS = {"train": 52, "test": 13}  # 13 textures per subject, 1 subject of 5 in test


def generate(root, config, tmp_path):
    """Run the builder's split generators on `root` (no TFRecords): {split: [examples]}."""
    builder = BU3DFE(config=config, data_dir=tmp_path / "tfds")
    splits = builder._split_generators(types.SimpleNamespace(manual_dir=root))
    return {name: [example for _, example in examples] for name, examples in splits.items()}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("F0001_AN01WH_F2D.bmp", ("F0001", "anger", 1, "WH")),
        ("M0044_NE00AE_F2D.bmp", ("M0044", "neutral", 0, "AE")),
        ("F0023_SU04LA_F2D.BMP", ("F0023", "surprise", 4, "LA")),
        ("M0007_DI03ME_F2D.bmp", ("M0007", "disgust", 3, "ME")),
        ("F0001_AN01WH_F3D.bmp", None),
        ("F0001_AN01WH_F3D.wrl", None),
        ("F0001_AN01WH_RAW.wrl", None),
        ("README.txt", None),
    ],
)
def test_parse_bu3dfe_name(name, expected):
    parsed = parse_bu3dfe_name(name)
    fields = ("subject", "label", "intensity", "race")
    assert (parsed if parsed is None else tuple(parsed[k] for k in fields)) == expected


@pytest.mark.parametrize(
    "name, message",
    [
        ("F0001_XX01WH_F2D.bmp", "expression code 'XX'"),
        ("F0001_AN01ZZ_F2D.bmp", "race code 'ZZ'"),
        ("F0001_AN05WH_F2D.bmp", "intensity 05 for AN"),
        ("F0001_AN00WH_F2D.bmp", "intensity 00 for AN"),
        ("F0001_NE01WH_F2D.bmp", "intensity 01 for NE"),
        ("X0001_AN01WH_F2D.bmp", "should start with F or M"),
    ],
)
def test_bad_codes_are_named(tmp_path, name, message):
    write_fake_bu3dfe(tmp_path)
    write_bmp(tmp_path / "BU_3DFE" / "F0001" / name, 0)
    with pytest.raises(ValueError, match=f"{name}.*{message}"):
        list_bu3dfe(tmp_path)


def test_texture_in_another_subjects_folder_is_named(tmp_path):
    write_fake_bu3dfe(tmp_path)
    write_bmp(tmp_path / "BU_3DFE" / "F0001" / "F0002_HA02AE_F2D.bmp", 0)
    with pytest.raises(ValueError, match=r"F0002_HA02AE_F2D\.bmp is of subject F0002"):
        list_bu3dfe(tmp_path)


def test_min_intensity_keeps_strong_expressions_and_every_neutral(tmp_path):
    write_fake_bu3dfe(tmp_path, intensities=(1, 2, 3, 4))
    counts = {}
    for level in (1, 2, 3, 4):
        records = list_bu3dfe(tmp_path, min_intensity=level)
        assert {r["intensity"] for r in records} == {0, *range(level, 5)}
        assert sum(r["label"] == "neutral" for r in records) == 5
        counts[level] = len(records)
    assert counts == {1: 125, 2: 95, 3: 65, 4: 35}  # 5 subjects x (1 + 6 x kept levels)
    with pytest.raises(ValueError, match="min_intensity"):
        list_bu3dfe(tmp_path, min_intensity=5)


def test_intensity3_config_through_the_builder(tmp_path):
    splits = generate(FAKE_DIR, "48px_intensity3", tmp_path)
    examples = splits["train"] + splits["test"]
    assert len(examples) == 35 and {e["intensity"] for e in examples} == {0, 4}


def test_examples_have_ferplus_labels_race_and_gray_48px_images(tmp_path):
    splits = generate(FAKE_DIR, "48px", tmp_path)
    examples = splits["train"] + splits["test"]
    f2 = sorted((e["label"], e["intensity"]) for e in examples if e["subject"] == "F0002")
    # NE -> 0; SU HA SA AN DI FE -> 2 1 3 4 5 6 (FER+ order); contempt (7) absent.
    assert f2 == [(0, 0)] + [(label, level) for label in range(1, 7) for level in (1, 4)]
    assert {e["subject"]: e["race"] for e in examples} == SUBJECTS
    assert all(e["image"].shape == (48, 48, 1) and e["image"].dtype == np.uint8 for e in examples)
    neutral = [e for e in examples if e["subject"] == "F0002" and e["label"] == 0]
    assert int(np.median(neutral[0]["image"])) == 40


def test_files_that_are_not_textures_are_skipped_and_counted():
    skips = SkipCounter("bu3dfe", "fake")
    assert len(list_bu3dfe(FAKE_DIR, skips=skips)) == 65
    assert skips.counts == {"files that are not 2D textures (*_F2D.bmp)": 16}  # 5 x 3 + README


def test_splits_never_share_a_subject(tmp_path):
    config = BU3DFEConfig.make(test_fraction=0.4, val_fraction=0.2)
    splits = generate(FAKE_DIR, config, tmp_path)
    subjects = {name: {e["subject"] for e in examples} for name, examples in splits.items()}
    assert {name: len(s) for name, s in subjects.items()} == {
        "train": 2,
        "validation": 1,
        "test": 2,
    }
    assert len(set.union(*subjects.values())) == 5


def test_k_folds_put_every_subject_in_test_exactly_once():
    records = list_bu3dfe(FAKE_DIR)
    tested = []
    for fold in range(5):
        splits = split_by_subject(records, BU3DFEConfig.make(folds=5, fold=fold))
        test = {r["subject"] for r in splits["test"]}
        assert len(test) == 1 and not test & {r["subject"] for r in splits["train"]}
        tested += test
    assert sorted(tested) == sorted(SUBJECTS)


def test_registered_configs():
    names = [c.name for c in BU3DFE.BUILDER_CONFIGS]
    assert names[:4] == ["48px", "64px", "96px", "48px_intensity3"]
    assert names[4:] == [f"48px_fold{k}of10" for k in range(10)]
    assert BU3DFEConfig.make(min_intensity=3, folds=10, fold=2).name == "48px_fold2of10_intensity3"
    assert tfds.builder_cls("bu3dfe") is BU3DFE
