"""CK+ builder: the last-3 / first-frame rule, FER+ labels, subject splits, named errors.

The fake CK+ tree (16x16 PNG frames, `_emotion.txt` files in CK+'s format)
is written into a temporary folder when this module is imported.
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

from keras_sgm.data._builder import read_image
from keras_sgm.data._subject_builder import SubjectSplitConfig, split_by_subject
from keras_sgm.data.ckplus import CKPlus, list_ckplus, parse_emotion
from keras_sgm.data.expressions import FERPLUS_CLASSES, SkipCounter


def write_sequence(root, subject, sequence, n_frames, code=None, emotion_text=None):
    """One CK+ sequence: frames `<S>_<q>_0000000k.png` (pixel value k) and its emotion file."""
    frames = Path(root) / "cohn-kanade-images" / subject / sequence
    frames.mkdir(parents=True, exist_ok=True)
    for k in range(1, n_frames + 1):
        pixels = np.full((16, 16), 10 * k, "uint8")
        pixels[0, : len(subject)] = [ord(c) for c in subject]  # no two subjects' frames alike
        Image.fromarray(pixels).save(frames / f"{subject}_{sequence}_{k:08d}.png")
    labels = Path(root) / "Emotion" / subject / sequence
    labels.mkdir(parents=True, exist_ok=True)  # CK+ has empty folders for unlabelled sequences
    if code is not None or emotion_text is not None:
        text = emotion_text if emotion_text is not None else f"   {code:.7e}\n"
        (labels / f"{subject}_{sequence}_{n_frames:08d}_emotion.txt").write_text(text)
    return frames


def write_fake_ckplus(root):
    """Five subjects, each: a labelled 5-frame sequence (4 examples), a labelled 3-frame
    sequence (3 examples, too short for a neutral), an unlabelled one, a `.DS_Store`."""
    for i, subject in enumerate(["S010", "S011", "S012", "S013", "S014"]):
        write_sequence(root, subject, "001", 5, code=1 + i)
        write_sequence(root, subject, "002", 3, code=7 - i)
        write_sequence(root, subject, "003", 4)
        (Path(root) / "cohn-kanade-images" / subject / "001" / ".DS_Store").write_bytes(b"\0")
    return Path(root)


FAKE_DIR = write_fake_ckplus(tempfile.mkdtemp(prefix="keras_sgm_ckplus_"))
atexit.register(shutil.rmtree, FAKE_DIR, True)


class CKPlusBuilderTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = CKPlus
    BUILDER_CONFIG_NAMES_TO_TEST = ["48px"]
    EXAMPLE_DIR = str(FAKE_DIR)
    SPLITS = {"train": 28, "test": 7}  # 7 examples per subject, 1 subject of 5 in test


def generate(root, config, tmp_path):
    """Run the builder's split generators on `root` (no TFRecords): {split: [examples]}."""
    builder = CKPlus(config=config, data_dir=tmp_path / "tfds")
    splits = builder._split_generators(types.SimpleNamespace(manual_dir=root))
    return {name: [example for _, example in examples] for name, examples in splits.items()}


def test_last_three_frames_take_the_label_first_frame_is_neutral(tmp_path):
    write_sequence(tmp_path, "S005", "001", 6, code=2)  # contempt
    write_sequence(tmp_path, "S005", "002", 2, code=7)  # surprise, too short for a neutral
    write_sequence(tmp_path, "S006", "001", 4, code=5)  # happy
    skips = SkipCounter("ckplus", str(tmp_path))
    records = list_ckplus(tmp_path, skips)
    assert [(r["path"].name, r["label"], r["sequence"]) for r in records] == [
        ("S005_001_00000001.png", "neutral", "S005_001"),
        ("S005_001_00000004.png", "contempt", "S005_001"),
        ("S005_001_00000005.png", "contempt", "S005_001"),
        ("S005_001_00000006.png", "contempt", "S005_001"),
        ("S005_002_00000001.png", "surprise", "S005_002"),
        ("S005_002_00000002.png", "surprise", "S005_002"),
        ("S006_001_00000001.png", "neutral", "S006_001"),
        ("S006_001_00000002.png", "happiness", "S006_001"),
        ("S006_001_00000003.png", "happiness", "S006_001"),
        ("S006_001_00000004.png", "happiness", "S006_001"),
    ]
    assert skips.counts == {"sequences too short for a neutral first frame": 1}


def test_every_ckplus_code_maps_to_its_ferplus_index():
    codes = [f"   {code:.7e}" for code in range(8)]
    indices = [FERPLUS_CLASSES.index(parse_emotion(text)) for text in codes]
    # neutral anger contempt disgust fear happy sadness surprise, in FER+ order
    assert indices == [0, 4, 7, 5, 6, 1, 3, 2]


def test_builder_examples_have_ferplus_labels_and_gray_48px_images(tmp_path):
    write_sequence(tmp_path, "S005", "001", 4, code=2)
    write_sequence(tmp_path, "S006", "001", 4, code=7)
    splits = generate(tmp_path, "48px", tmp_path)
    examples = splits["train"] + splits["test"]
    by_subject = {
        s: sorted(e["label"] for e in examples if e["subject"] == s) for s in ("S005", "S006")
    }
    assert by_subject == {"S005": [0, 7, 7, 7], "S006": [0, 2, 2, 2]}
    assert all(e["image"].shape == (48, 48, 1) and e["image"].dtype == np.uint8 for e in examples)
    # The neutral (first) frame is flat at 10 but for its top row; resizing keeps that.
    neutral = [e for e in examples if e["subject"] == "S006" and e["label"] == 0]
    assert int(np.median(neutral[0]["image"])) == 10


def test_unlabelled_sequences_are_skipped_and_counted():
    skips = SkipCounter("ckplus", str(FAKE_DIR))
    records = list_ckplus(FAKE_DIR, skips)
    assert len(records) == 35
    assert {r["sequence"][-3:] for r in records} == {"001", "002"}
    assert skips.counts == {
        "sequences without an emotion file": 5,
        "sequences too short for a neutral first frame": 5,
    }


def test_splits_never_share_a_subject(tmp_path):
    splits = generate(FAKE_DIR, SubjectSplitConfig.make(val_fraction=0.2), tmp_path)
    subjects = {name: {e["subject"] for e in examples} for name, examples in splits.items()}
    assert sorted(subjects) == ["test", "train", "validation"]
    assert [len(subjects[n]) for n in ("train", "validation", "test")] == [3, 1, 1]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["train"] & subjects["validation"]
    assert not subjects["validation"] & subjects["test"]
    assert sum(len(e) for e in splits.values()) == 35


def test_k_folds_put_every_subject_in_test_exactly_once():
    records = list_ckplus(FAKE_DIR)
    tested = []
    for fold in range(5):
        splits = split_by_subject(records, SubjectSplitConfig.make(folds=5, fold=fold))
        test = {r["subject"] for r in splits["test"]}
        assert not test & {r["subject"] for r in splits["train"]}
        assert len(splits["train"]) + len(splits["test"]) == len(records)
        tested += sorted(test)
    assert sorted(tested) == ["S010", "S011", "S012", "S013", "S014"]


def test_registered_configs():
    assert [c.name for c in CKPlus.BUILDER_CONFIGS[:4]] == [
        "48px",
        "64px",
        "96px",
        "48px_fold0of10",
    ]
    assert CKPlus.BUILDER_CONFIGS[-1].name == "48px_fold9of10"
    assert tfds.builder_cls("ckplus") is CKPlus


@pytest.mark.parametrize(
    "text", ["", "3 4", "happy", "   9.0000000e+00", "  -1.0000000e+00", "2.5"]
)
def test_bad_emotion_file_is_named(tmp_path, text):
    write_sequence(tmp_path, "S005", "001", 4, emotion_text=text)
    with pytest.raises(ValueError, match="S005_001_00000004_emotion.txt"):
        list_ckplus(tmp_path)


def test_labelled_sequence_without_frames_is_named(tmp_path):
    frames = write_sequence(tmp_path, "S005", "001", 4, code=3)
    for frame in frames.iterdir():
        frame.unlink()
    (frames / "notes.txt").write_text("no frames here")
    with pytest.raises(ValueError, match=r"S005[/\\]001 has no frames"):
        list_ckplus(tmp_path)


def test_labelled_sequences_without_image_folder_are_named(tmp_path):
    write_sequence(tmp_path, "S005", "001", 4, code=3)
    write_sequence(tmp_path, "S006", "002", 4, code=3)
    shutil.rmtree(tmp_path / "cohn-kanade-images" / "S006")
    with pytest.raises(ValueError, match=r"1 labelled CK\+ sequences .*S006[/\\]002"):
        list_ckplus(tmp_path)


def test_missing_top_folder_says_what_to_put_where(tmp_path):
    (tmp_path / "Emotion").mkdir()
    with pytest.raises(FileNotFoundError, match="cohn-kanade-images"):
        list_ckplus(tmp_path)


def test_read_image_scales_16_bit_frames_to_8_bit(tmp_path):
    Image.fromarray(np.array([[0, 1000], [2000, 4000]], "uint16")).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image.dtype == np.uint8 and image.tolist() == [[0, 63], [127, 255]]
