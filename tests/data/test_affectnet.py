"""AffectNet builder: label mapping, skipped rows, face crops and bad-input messages.

Fake `training.csv`, `validation.csv` and tiny images (a dark picture with a
bright square exactly at the row's face box) are written at import time into
a temporary directory.
"""

import atexit
import logging
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
import tensorflow_datasets.testing as tfds_testing
from PIL import Image

from keras_sgm.data.affectnet import (
    AFFECTNET_EXPRESSIONS,
    EXPRESSION_TO_LABEL,
    AffectNet,
    affectnet_files,
    crop_face,
    read_affectnet,
)
from keras_sgm.data.expressions import FERPLUS_CLASSES, SkipCounter

HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
    "expression,valence,arousal"
)
DARK, BRIGHT = 20, 230
LANDMARKS = ";".join(["1.5"] * 136)

# (path, x, y, width, height, expression); rows whose image is None have no file on disk.
TRAIN_ROWS = [
    ("1/neutral.png", 5, 4, 16, 16, 0),
    ("1/happy.jpg", 2, 2, 24, 24, 1),
    ("2/sad.png", 10, 6, 12, 12, 2),
    ("2/surprise.png", 0, 0, 20, 14, 3),
    ("3/fear.png", 20, 10, 20, 20, 4),
    ("3/disgust.png", 1, 1, 8, 8, 5),
    ("4/anger.png", 12, 3, 18, 18, 6),
    ("4/contempt.png", 7, 7, 10, 10, 7),
    ("5/none.png", 0, 0, 10, 10, 8),  # skipped (image never read: absent)
    ("5/uncertain.png", 0, 0, 10, 10, 9),
    ("5/nonface.png", 0, 0, 10, 10, 10),
    ("5/zero_width.png", 0, 0, 0, 10, 1),
    ("5/negative_height.png", 0, 0, 10, -5, 2),
    ("6/outside.png", 100, 100, 10, 10, 1),  # box entirely outside a 40x30 image
]
TEST_ROWS = [
    ("7/clipped.png", -6, -4, 20, 20, 1),  # clipped to [0:16, 0:14]
    ("7/anger.png", 3, 3, 15, 15, 6),
    ("7/uncertain.png", 0, 0, 10, 10, 9),
]
TRAIN_SKIPS = {
    "expression 8 (None)": 1,
    "expression 9 (Uncertain)": 1,
    "expression 10 (Non-Face)": 1,
    "non-positive face box": 2,
    "face box outside the image": 1,
}


def write_image(path, x, y, width, height, mode="RGB"):
    """A dark 40x30 image whose face box (clipped) is bright."""
    pixels = np.full((30, 40, 3), DARK, np.uint8)
    pixels[max(0, y) : max(0, y + height), max(0, x) : max(0, x + width)] = BRIGHT
    image = Image.fromarray(pixels).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))


def write_csv(path, rows):
    lines = [HEADER]
    for number, (relative, x, y, width, height, expression) in enumerate(rows):
        valence, arousal = (-2, -2) if expression >= 8 else (number / 10, -number / 10)
        fields = [relative, x, y, width, height, LANDMARKS, expression, valence, arousal]
        lines.append(",".join(map(str, fields)))
    path.write_text("\n".join(lines) + "\n")


def write_affectnet(directory, train_rows=TRAIN_ROWS, test_rows=TEST_ROWS):
    directory = Path(directory)
    images = directory / "Manually_Annotated_Images"
    images.mkdir(parents=True, exist_ok=True)
    for relative, x, y, width, height, expression in [*train_rows, *test_rows]:
        if expression < 8 and width > 0 and height > 0:
            mode = "L" if relative == "2/sad.png" else "RGB"
            write_image(images / relative, x, y, width, height, mode)
    write_csv(directory / "training.csv", train_rows)
    write_csv(directory / "validation.csv", test_rows)
    return directory


FAKE_DIR = write_affectnet(Path(tempfile.mkdtemp(prefix="keras_sgm_affectnet_")) / "manual")
atexit.register(shutil.rmtree, FAKE_DIR.parent, ignore_errors=True)


class AffectNetTest(tfds_testing.DatasetBuilderTestCase):
    DATASET_CLASS = AffectNet
    BUILDER_CONFIG_NAMES_TO_TEST = ["48px", "64px"]
    SPLITS = {"train": 8, "test": 2}
    EXAMPLE_DIR = str(FAKE_DIR)
    SKIP_CHECKSUMS = True


def test_registered_name_and_configs():
    assert isinstance(tfds.builder("affectnet"), AffectNet)
    assert [config.name for config in AffectNet.BUILDER_CONFIGS] == ["48px", "64px", "96px"]
    assert tfds.builder("affectnet/96px").info.features["image"].shape == (96, 96, 1)
    assert "Manually_Annotated_Images" in AffectNet.MANUAL_DOWNLOAD_INSTRUCTIONS


def test_label_mapping_by_name():
    mapped = {
        AFFECTNET_EXPRESSIONS[code]: FERPLUS_CLASSES[label]
        for code, label in EXPRESSION_TO_LABEL.items()
    }
    assert mapped == {
        "Neutral": "neutral",
        "Happy": "happiness",
        "Sad": "sadness",
        "Surprise": "surprise",
        "Fear": "fear",
        "Disgust": "disgust",
        "Anger": "anger",
        "Contempt": "contempt",
    }
    assert sorted(EXPRESSION_TO_LABEL) == list(range(8))


def test_read_training_labels_skips_values_and_bright_crops():
    skips = SkipCounter("affectnet", "training.csv")
    rows = dict(
        read_affectnet(FAKE_DIR / "training.csv", FAKE_DIR / "Manually_Annotated_Images", 48, skips)
    )
    assert skips.counts == TRAIN_SKIPS
    assert sorted(rows) == list(range(8))
    for number, example in rows.items():
        expected = Path(example["path"]).stem
        assert FERPLUS_CLASSES[example["label"]] == {"happy": "happiness", "sad": "sadness"}.get(
            expected, expected
        )
        assert example["image"].shape == (48, 48, 1) and example["image"].dtype == np.uint8
        lowest = 200 if example["path"].endswith(".jpg") else BRIGHT - 1
        assert example["image"].min() >= lowest, example["path"]  # the crop is the bright box
        np.testing.assert_allclose(
            (example["valence"], example["arousal"]), (number / 10, -number / 10), rtol=1e-6
        )
        assert example["valence"].dtype == np.float32


def test_crop_face_clips_to_the_image():
    image = np.arange(30 * 40).reshape(30, 40)
    np.testing.assert_array_equal(crop_face(image, 5, 4, 16, 10), image[4:14, 5:21])
    np.testing.assert_array_equal(crop_face(image, -6, -4, 20, 20), image[0:16, 0:14])
    np.testing.assert_array_equal(crop_face(image, 30, 25, 20, 20), image[25:30, 30:40])
    assert crop_face(image, 100, 100, 10, 10) is None
    assert crop_face(image, -20, 0, 20, 10) is None  # ends where the image starts
    assert crop_face(np.zeros((30, 40, 3)), 0, 0, 5, 6).shape == (6, 5, 3)


def test_crop_excludes_the_dark_background(tmp_path):
    write_image(tmp_path / "images" / "a.png", 9, 5, 12, 12)
    write_csv(tmp_path / "training.csv", [("a.png", 9, 5, 12, 12, 1)])
    [(_, example)] = read_affectnet(tmp_path / "training.csv", tmp_path / "images", 48)
    assert example["image"].min() == BRIGHT
    shifted_csv = tmp_path / "shifted.csv"
    write_csv(shifted_csv, [("a.png", 3, 5, 12, 12, 1)])  # half the box off the bright square
    [(_, shifted)] = read_affectnet(shifted_csv, tmp_path / "images", 48)
    assert shifted["image"][:, :10].max() <= DARK + 5 and shifted["image"][:, -10:].min() >= 225


def test_built_dataset_and_logged_skips(tmp_path, caplog):
    builder = tfds.builder("affectnet", data_dir=str(tmp_path / "data"))
    with caplog.at_level(logging.WARNING, logger="keras_sgm.data"):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(FAKE_DIR))
        )
    assert "affectnet: skipped 6 rows of training.csv (train) by rule" in caplog.text
    assert "2 non-positive face box" in caplog.text
    assert builder.info.metadata["skipped"] == {
        "train": TRAIN_SKIPS,
        "test": {"expression 9 (Uncertain)": 1},
    }
    test = {ex["path"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split="test"))}
    assert sorted(test) == ["7/anger.png", "7/clipped.png"]
    assert FERPLUS_CLASSES[test["7/clipped.png"]["label"]] == "happiness"
    assert test["7/clipped.png"]["image"].min() >= BRIGHT - 1


def test_files_may_lie_in_the_file_lists_folder(tmp_path):
    directory = write_affectnet(tmp_path, TRAIN_ROWS[:1], TEST_ROWS[:1])
    lists = directory / "Manually_Annotated_file_lists"
    lists.mkdir()
    for name in ("training.csv", "validation.csv"):
        (directory / name).rename(lists / name)
    train, test, images = affectnet_files(directory)
    assert (train.name, test.name, images.name) == (
        "training.csv",
        "validation.csv",
        "Manually_Annotated_Images",
    )
    assert str(train.parent) == str(lists)


@pytest.mark.parametrize("missing", ["training.csv", "validation.csv", "Manually_Annotated_Images"])
def test_missing_file_or_folder_is_named(tmp_path, missing):
    directory = write_affectnet(tmp_path / "manual", TRAIN_ROWS[:1], TEST_ROWS[:1])
    if missing.endswith("Images"):
        shutil.rmtree(directory / missing)
    else:
        (directory / missing).unlink()
    pattern = rf"needs (the image folder )?{missing}.* directory {re.escape(str(directory))}"
    with pytest.raises(ValueError, match=pattern):
        affectnet_files(directory)
    builder = tfds.builder("affectnet", data_dir=str(tmp_path / "data"))
    with pytest.raises(ValueError, match=pattern):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(directory))
        )


def test_missing_image_names_file_and_row(tmp_path):
    directory = write_affectnet(tmp_path, TRAIN_ROWS[:3], TEST_ROWS[:1])
    (directory / "Manually_Annotated_Images" / "2" / "sad.png").unlink()
    pattern = r"training\.csv, row 2 \(line 4\): image .*2/sad\.png not found"
    with pytest.raises(ValueError, match=pattern):
        list(read_affectnet(directory / "training.csv", directory / "Manually_Annotated_Images"))


def test_unreadable_image_names_file_and_row(tmp_path):
    directory = write_affectnet(tmp_path, TRAIN_ROWS[:2], TEST_ROWS[:1])
    (directory / "Manually_Annotated_Images" / "1" / "happy.jpg").write_bytes(b"not a jpeg")
    pattern = r"training\.csv, row 1 \(line 3\): cannot read image .*1/happy\.jpg"
    with pytest.raises(ValueError, match=pattern):
        list(read_affectnet(directory / "training.csv", directory / "Manually_Annotated_Images"))


@pytest.mark.parametrize(
    "old, new, message",
    [
        (",5,4,", ",five,4,", r"face_x 'five' is not a number"),
        (",5,4,16,", ",5,4,16.5,", r"face_width '16\.5' is not an integer"),
        (",0,0.0,", ",happy,0.0,", r"expression 'happy' is not a number"),
        (",0,0.0,", ",11,0.0,", r"expression 11 is outside 0\.\.10"),
        (",0,0.0,", ",-1,0.0,", r"expression -1 is outside 0\.\.10"),
        (",0,0.0,0.0", ",0,nan,0.0", r"valence 'nan' is not a finite number"),
        (",0,0.0,0.0", ",0,0.0,", r"arousal '' is not a number"),
        (",0,0.0,0.0", ",0,0.0", r"expected 9 fields, found 8"),
    ],
)
def test_bad_fields_name_file_and_row(tmp_path, old, new, message):
    directory = write_affectnet(tmp_path, TRAIN_ROWS[:1], TEST_ROWS[:1])
    path = directory / "training.csv"
    lines = path.read_text().split("\n")
    assert old in lines[1], lines[1]
    lines[1] = lines[1].replace(old, new, 1)
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=rf"training\.csv, row 0 \(line 2\): {message}"):
        list(read_affectnet(path, directory / "Manually_Annotated_Images"))


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "training.csv"
    path.write_text(HEADER.replace("arousal", "arousel") + "\n")
    with pytest.raises(ValueError, match=r"training\.csv: the header lacks columns \['arousal'\]"):
        list(read_affectnet(path, tmp_path))
