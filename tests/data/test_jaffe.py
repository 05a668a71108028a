"""JAFFE builder: name parsing, FER+ labels, skipped files, subject splits, named errors.

The fake JAFFE folder (16x16 TIFFs named like `KA.AN1.39.tiff`, a README, a
`.DS_Store`) is written into a temporary folder when this module is imported.
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

from keras_sgm.data._subject_builder import SubjectSplitConfig, split_by_subject
from keras_sgm.data.expressions import SkipCounter
from keras_sgm.data.jaffe import Jaffe, list_jaffe, parse_jaffe_name

SUBJECTS = ["KA", "KL", "KM", "KR", "MK"]
CODES = ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]


def write_tiff(path, value, rgb=False):
    pixels = np.full((16, 16), value, "uint8")
    Image.fromarray(np.stack([pixels] * 3, -1) if rgb else pixels).save(path)


def write_fake_jaffe(root, folder="jaffe"):
    """Five subjects x seven expressions, one TIFF each (subject MK in RGB), plus three
    entries to skip: a README, a `.DS_Store` and a sub-folder."""
    images = Path(root) / folder
    images.mkdir(parents=True)
    for i, subject in enumerate(SUBJECTS):
        for j, code in enumerate(CODES):
            write_tiff(images / f"{subject}.{code}1.{10 * i + j}.tiff", 30 * i + j, subject == "MK")
    (images / "README").write_text("The JAFFE images.")
    (images / ".DS_Store").write_bytes(b"\0")
    (images / "thumbnails").mkdir()
    return Path(root)


FAKE_DIR = write_fake_jaffe(tempfile.mkdtemp(prefix="keras_sgm_jaffe_"))
atexit.register(shutil.rmtree, FAKE_DIR, True)


class JaffeBuilderTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = Jaffe
    BUILDER_CONFIG_NAMES_TO_TEST = ["48px"]
    EXAMPLE_DIR = str(FAKE_DIR)
    SPLITS = {"train": 28, "test": 7}  # 7 images per subject, 1 subject of 5 in test


def generate(root, config, tmp_path):
    """Run the builder's split generators on `root` (no TFRecords): {split: [examples]}."""
    builder = Jaffe(config=config, data_dir=tmp_path / "tfds")
    splits = builder._split_generators(types.SimpleNamespace(manual_dir=root))
    return {name: [example for _, example in examples] for name, examples in splits.items()}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("KA.AN1.39.tiff", {"subject": "KA", "label": "anger"}),
        ("KL.DI3.166.tiff", {"subject": "KL", "label": "disgust"}),
        ("NM.NE2.93.tiff", {"subject": "NM", "label": "neutral"}),
        ("ym.su1.58.TIF", {"subject": "YM", "label": "surprise"}),
        ("README", None),
        (".DS_Store", None),
        ("KA.AN1.39.png", None),
        ("KA.AN.39.tiff", None),
    ],
)
def test_parse_jaffe_name(name, expected):
    assert parse_jaffe_name(name) == expected


def test_examples_have_ferplus_labels_and_no_contempt(tmp_path):
    splits = generate(FAKE_DIR, "48px", tmp_path)
    examples = splits["train"] + splits["test"]
    ka = {e["label"] for e in examples if e["subject"] == "KA"}
    # AN DI FE HA NE SA SU -> anger 4, disgust 5, fear 6, happiness 1, neutral 0, sadness 3,
    # surprise 2: every FER+ class but contempt (7).
    assert ka == {0, 1, 2, 3, 4, 5, 6}
    assert 7 not in {e["label"] for e in examples}
    assert all(e["image"].shape == (48, 48, 1) and e["image"].dtype == np.uint8 for e in examples)
    mk_rgb = [e for e in examples if e["subject"] == "MK" and e["label"] == 4]  # MK.AN1: value 120
    assert int(np.median(mk_rgb[0]["image"])) == 120


def test_files_not_in_the_pattern_are_skipped_and_counted():
    skips = SkipCounter("jaffe", "fake")
    records = list_jaffe(FAKE_DIR / "jaffe", skips)
    assert len(records) == 35
    assert skips.counts == {"entries not named like KA.AN1.39.tiff": 3}
    assert skips.report() == {"entries not named like KA.AN1.39.tiff": 3}


def test_jaffedbase_folder_is_accepted(tmp_path):
    write_fake_jaffe(tmp_path, folder="jaffedbase")
    splits = generate(tmp_path, "48px", tmp_path)
    assert sum(len(examples) for examples in splits.values()) == 35


def test_splits_never_share_a_subject(tmp_path):
    splits = generate(FAKE_DIR, SubjectSplitConfig.make(test_fraction=0.4), tmp_path)
    train = {e["subject"] for e in splits["train"]}
    test = {e["subject"] for e in splits["test"]}
    assert len(train) == 3 and len(test) == 2 and not train & test


def test_k_folds_put_every_subject_in_test_exactly_once():
    records = list_jaffe(FAKE_DIR / "jaffe")
    tested = []
    for fold in range(5):
        splits = split_by_subject(records, SubjectSplitConfig.make(folds=5, fold=fold))
        test = {r["subject"] for r in splits["test"]}
        assert len(test) == 1 and not test & {r["subject"] for r in splits["train"]}
        tested += test
    assert sorted(tested) == SUBJECTS


def test_registered_configs():
    names = [c.name for c in Jaffe.BUILDER_CONFIGS]
    assert names[:3] == ["48px", "64px", "96px"]
    assert names[3:] == [f"48px_fold{k}of10" for k in range(10)]
    assert tfds.builder_cls("jaffe") is Jaffe


def test_unknown_expression_code_is_named(tmp_path):
    write_fake_jaffe(tmp_path)
    write_tiff(tmp_path / "jaffe" / "KA.XX1.99.tiff", 0)
    with pytest.raises(ValueError, match=r"KA\.XX1\.99\.tiff has expression code 'XX'"):
        list_jaffe(tmp_path / "jaffe")


def test_unreadable_image_is_named(tmp_path):
    write_fake_jaffe(tmp_path)
    (tmp_path / "jaffe" / "KA.HA1.7.tiff").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"Cannot read image .*KA\.HA1\.7\.tiff"):
        generate(tmp_path, "48px", tmp_path)


def test_missing_folder_says_what_to_put_where(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(FileNotFoundError, match="jaffe or jaffedbase"):
        generate(tmp_path, "48px", tmp_path)
