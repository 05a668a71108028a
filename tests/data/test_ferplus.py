"""FER+ builder: majority / probability rules, splits, skip counts and bad-input messages.

The fake `fer2013.csv` / `fer2013new.csv` are written at import time into a
temporary directory: 16 rows covering every rule (see `ROWS`).
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

from keras_sgm.data.expressions import FERPLUS_CLASSES
from keras_sgm.data.ferplus import (
    VOTE_COLUMNS,
    FerPlus,
    clean_votes,
    read_ferplus,
    vote_distribution,
    vote_label,
)

FER_HEADER = "emotion,pixels,Usage"
NEW_HEADER = "Usage,Image name," + ",".join(VOTE_COLUMNS)


def votes(**counts):
    """Ten vote counts in `VOTE_COLUMNS` order, zero unless named."""
    return [counts.get(name, 0) for name in VOTE_COLUMNS]


# (Usage, Image name, votes); the comment gives the row's fate in majority / probability mode.
ROWS = [
    ("Training", "fer0000000.png", votes(happiness=8, neutral=2)),  # happiness
    ("Training", "fer0000001.png", votes(neutral=6, surprise=1, sadness=3)),  # neutral (6 of 9)
    ("Training", "fer0000002.png", votes(happiness=5, neutral=5)),  # tie: dropped / neutral
    ("Training", "fer0000003.png", votes(unknown=6, happiness=4)),  # winner unknown
    ("Training", "fer0000004.png", votes(NF=10)),  # winner NF
    ("Training", "", votes(happiness=10)),  # empty Image name
    ("Training", "fer0000006.png", [1] * 10),  # all counts <= 1
    ("Training", "fer0000007.png", votes(anger=4, disgust=3, fear=3)),  # dropped / anger
    ("Training", "fer0000008.png", votes(contempt=7, anger=3)),  # contempt
    ("PublicTest", "fer0000009.png", votes(surprise=10)),  # surprise
    ("PublicTest", "fer0000010.png", votes(sadness=5, fear=5)),  # no majority in both modes
    ("PublicTest", "fer0000011.png", votes(fear=6, unknown=4)),  # fear
    ("PrivateTest", "fer0000012.png", votes(disgust=9, contempt=1)),  # disgust
    ("PrivateTest", "fer0000013.png", votes(neutral=3, happiness=3, surprise=2, sadness=2)),
    ("PrivateTest", "fer0000014.png", votes(anger=10)),  # anger
    ("PrivateTest", "", votes(anger=10)),  # empty Image name
]
MAJORITY_KEPT = {"train": [0, 1, 8], "validation": [9, 11], "test": [12, 14]}
PROBABILITY_KEPT = {**MAJORITY_KEPT, "train": [0, 1, 2, 7, 8]}
MAJORITY_SKIPS = {
    "train": {
        "no majority": 2,
        "winner is unknown": 1,
        "winner is NF": 1,
        "empty Image name": 1,
        "all counts <= 1": 1,
    },
    "validation": {"no majority": 1},
    "test": {"no majority": 1, "empty Image name": 1},
}


def pixel_values(index):
    """48x48 pixels, all 10 * index + 5 but pixel (0, 1) = 0 (to check the row-major order)."""
    values = np.full(48 * 48, 10 * index + 5)
    values[1] = 0
    return values


def _line(header, fields):
    return ",".join(fields[name.strip()] for name in header.split(","))


def write_ferplus(directory, rows=ROWS, fer_header=FER_HEADER, new_header=NEW_HEADER):
    """Write fake `fer2013.csv` and `fer2013new.csv` (columns in the headers' order)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fer_lines, new_lines = [fer_header], [new_header]
    for index, (usage, name, counts) in enumerate(rows):
        pixels = " ".join(map(str, pixel_values(index)))
        fer_lines.append(
            _line(fer_header, {"emotion": str(index % 7), "pixels": pixels, "Usage": usage})
        )
        new_fields = {
            "Usage": usage,
            "Image name": name,
            **dict(zip(VOTE_COLUMNS, map(str, counts))),
        }
        new_lines.append(_line(new_header, new_fields))
    (directory / "fer2013.csv").write_text("\n".join(fer_lines) + "\n")
    (directory / "fer2013new.csv").write_text("\n".join(new_lines) + "\n")
    return directory


FAKE_DIR = write_ferplus(Path(tempfile.mkdtemp(prefix="keras_sgm_ferplus_")) / "manual")
atexit.register(shutil.rmtree, FAKE_DIR.parent, ignore_errors=True)


class FerPlusMajorityTest(tfds_testing.DatasetBuilderTestCase):
    DATASET_CLASS = FerPlus
    BUILDER_CONFIG_NAMES_TO_TEST = ["48px", "96px"]
    SPLITS = {split: len(kept) for split, kept in MAJORITY_KEPT.items()}
    EXAMPLE_DIR = str(FAKE_DIR)
    SKIP_CHECKSUMS = True


class FerPlusProbabilityTest(tfds_testing.DatasetBuilderTestCase):
    DATASET_CLASS = FerPlus
    BUILDER_CONFIG_NAMES_TO_TEST = ["48px_probability"]
    SPLITS = {split: len(kept) for split, kept in PROBABILITY_KEPT.items()}
    EXAMPLE_DIR = str(FAKE_DIR)
    SKIP_CHECKSUMS = True


def test_registered_name_and_configs():
    assert isinstance(tfds.builder("ferplus"), FerPlus)
    assert tfds.builder("ferplus").builder_config.name == "48px"
    names = [config.name for config in FerPlus.BUILDER_CONFIGS]
    assert names == [
        "48px",
        "64px",
        "96px",
        "48px_probability",
        "64px_probability",
        "96px_probability",
    ]
    config = tfds.builder("ferplus/96px_probability").builder_config
    assert (config.image_size, config.label_mode) == (96, "probability")
    assert FerPlus.MANUAL_DOWNLOAD_INSTRUCTIONS and "fer2013new.csv" in (
        FerPlus.MANUAL_DOWNLOAD_INSTRUCTIONS
    )


@pytest.mark.parametrize(
    "counts, mode, expected",
    [
        (votes(happiness=8, neutral=2), "majority", (1, None)),
        (votes(happiness=5, neutral=5), "majority", (None, "no majority")),  # tie
        (votes(happiness=5, neutral=3, surprise=2), "majority", (None, "no majority")),  # half
        (votes(happiness=5, neutral=2, NF=3), "majority", (None, "no majority")),  # NF counts
        (votes(happiness=4, unknown=4, neutral=2), "majority", (None, "no majority")),
        (votes(happiness=5, unknown=4, neutral=1), "majority", (1, None)),  # 5 of 9 after rule
        (votes(neutral=1, happiness=5, surprise=1, sadness=3), "majority", (1, None)),
        (votes(unknown=6, happiness=4), "majority", (None, "winner is unknown")),
        (votes(NF=10), "majority", (None, "winner is NF")),
        ([1] * 10, "majority", (None, "all counts <= 1")),
        ([0] * 10, "majority", (None, "all counts <= 1")),
        (votes(happiness=5, neutral=5), "probability", (0, None)),  # tie: earlier class
        (votes(anger=4, disgust=3, fear=3), "probability", (4, None)),
        (votes(happiness=4, unknown=4, neutral=2), "probability", (None, "winner is unknown")),
        (votes(happiness=3, NF=7), "probability", (None, "winner is NF")),
        (votes(unknown=3, NF=3), "probability", (None, "winner is unknown")),
        ([1] * 10, "probability", (None, "all counts <= 1")),
    ],
)
def test_vote_label_rules(counts, mode, expected):
    assert vote_label(counts, mode) == expected


def test_vote_distribution_drops_single_votes_and_unknown_nf():
    distribution = vote_distribution(votes(neutral=6, surprise=1, sadness=3, unknown=4, NF=2))
    assert distribution.dtype == np.float32 and distribution.shape == (8,)
    np.testing.assert_allclose(distribution, [6 / 9, 0, 0, 3 / 9, 0, 0, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(vote_distribution(votes(unknown=10)), np.zeros(8))
    np.testing.assert_array_equal(clean_votes([1, 2] * 5), [0, 2] * 5)
    with pytest.raises(ValueError, match="10 vote counts"):
        vote_label([3, 3])
    with pytest.raises(ValueError, match="label_mode"):
        vote_label(votes(anger=10), "soft")


def _indices(examples):
    return {split: [row["index"] for row in rows] for split, rows in examples.items()}


def test_majority_kept_rows_labels_votes_and_skip_counts():
    examples, skips = read_ferplus(FAKE_DIR)
    assert _indices(examples) == MAJORITY_KEPT
    assert {split: counter.counts for split, counter in skips.items()} == MAJORITY_SKIPS
    labels = {
        row["index"]: FERPLUS_CLASSES[row["label"]] for rows in examples.values() for row in rows
    }
    assert labels == {
        0: "happiness",
        1: "neutral",
        8: "contempt",
        9: "surprise",
        11: "fear",
        12: "disgust",
        14: "anger",
    }
    first = examples["train"][0]
    assert first["pixels"].shape == (48, 48) and first["pixels"].dtype == np.uint8
    assert (first["pixels"][0, 1], first["pixels"][1, 0]) == (0, 5)
    np.testing.assert_allclose(
        examples["train"][1]["votes"], [6 / 9, 0, 0, 3 / 9, 0, 0, 0, 0], rtol=1e-6
    )
    np.testing.assert_array_equal(examples["test"][0]["votes"], np.eye(8)[5])  # contempt=1 zeroed


def test_probability_mode_keeps_distributions_and_evaluates_by_majority():
    examples, skips = read_ferplus(FAKE_DIR, "probability")
    assert _indices(examples) == PROBABILITY_KEPT
    assert skips["train"].counts == {
        "winner is unknown": 1,
        "winner is NF": 1,
        "empty Image name": 1,
        "all counts <= 1": 1,
    }
    assert skips["validation"].counts == MAJORITY_SKIPS["validation"]  # row 10 is still dropped
    assert skips["test"].counts == MAJORITY_SKIPS["test"]
    train = {row["index"]: row for row in examples["train"]}
    np.testing.assert_allclose(train[2]["votes"], [0.5, 0.5, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(train[7]["votes"], [0, 0, 0, 0, 0.4, 0.3, 0.3, 0], rtol=1e-6)
    assert (train[2]["label"], train[7]["label"]) == (0, 4)
    for split in ("validation", "test"):
        majority, _ = read_ferplus(FAKE_DIR)
        assert [row["label"] for row in examples[split]] == [
            row["label"] for row in majority[split]
        ]


def test_space_padded_and_reordered_headers(tmp_path):
    directory = write_ferplus(
        tmp_path,
        fer_header="emotion, Usage, pixels",
        new_header=" " + NEW_HEADER.replace(",", " , ") + " ",
    )
    examples, skips = read_ferplus(directory)
    assert _indices(examples) == MAJORITY_KEPT
    assert skips["train"].counts == MAJORITY_SKIPS["train"]


def test_built_dataset_values_and_logged_skips(tmp_path, caplog):
    builder = tfds.builder("ferplus/48px_probability", data_dir=str(tmp_path / "data"))
    config = tfds.download.DownloadConfig(manual_dir=str(FAKE_DIR))
    with caplog.at_level(logging.WARNING, logger="keras_sgm.data"):
        builder.download_and_prepare(download_config=config)
    assert "ferplus: skipped 4 rows of fer2013new.csv (train) by rule" in caplog.text
    assert "1 winner is NF" in caplog.text and "1 all counts <= 1" in caplog.text
    assert builder.info.metadata["skipped"]["train"] == {
        "winner is unknown": 1,
        "winner is NF": 1,
        "empty Image name": 1,
        "all counts <= 1": 1,
    }
    reloaded = tfds.builder("ferplus/48px_probability", data_dir=str(tmp_path / "data"))
    assert reloaded.info.metadata["skipped"]["test"] == MAJORITY_SKIPS["test"]
    train = {int(ex["index"]): ex for ex in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert sorted(train) == PROBABILITY_KEPT["train"]
    for index, example in train.items():
        assert example["image"].shape == (48, 48, 1)
        assert example["image"][5, 5, 0] == 10 * index + 5 and example["image"][0, 1, 0] == 0
        assert example["votes"].dtype == np.float32
        np.testing.assert_allclose(example["votes"].sum(), 1.0, rtol=1e-6)
    assert train[7]["label"] == FERPLUS_CLASSES.index("anger")


def _edit(path, line, old, new):
    """Replace the first `old` in line `line` (1-based) of a text file."""
    lines = path.read_text().split("\n")
    assert old in lines[line - 1], (old, lines[line - 1][:80])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines))


def _pixels_of_row_3():
    return " ".join(map(str, pixel_values(3)))


ROW_3 = r"row 3 \(line 5\)"


@pytest.mark.parametrize(
    "file, old, new, message",
    [
        (
            "fer2013.csv",
            "35 35",
            "35",
            rf"fer2013\.csv, {ROW_3}: expected 2304 pixels .*found 2303",
        ),
        ("fer2013.csv", "35 35 35", "35 3.5 35", rf"fer2013\.csv, {ROW_3}: pixel \d+ is '3\.5'"),
        ("fer2013.csv", "35 35", "35 abc", rf"fer2013\.csv, {ROW_3}: pixel \d+ is 'abc'"),
        ("fer2013.csv", "35 35", "35 256", rf"fer2013\.csv, {ROW_3}: pixel \d+ is 256, outside"),
        ("fer2013.csv", "3,", "7,", rf"fer2013\.csv, {ROW_3}: emotion 7 is outside 0\.\.6"),
        ("fer2013.csv", "Training", "Train", rf"fer2013\.csv, {ROW_3}: Usage 'Train' is not"),
        ("fer2013new.csv", ",6,", ",11,", rf"fer2013new\.csv, {ROW_3}: vote count 'unknown' 11"),
        ("fer2013new.csv", ",6,", ",-1,", rf"fer2013new\.csv, {ROW_3}: vote count 'unknown' -1"),
        ("fer2013new.csv", ",6,", ",six,", rf"fer2013new\.csv, {ROW_3}: .*'six' is not an int"),
        (
            "fer2013new.csv",
            "Training",
            "PublicTest",
            rf"fer2013new\.csv, {ROW_3}: Usage 'PublicTest' does not match 'Training'",
        ),
        ("fer2013new.csv", ",6,", ",6,0,", rf"fer2013new\.csv, {ROW_3}: expected 12 fields"),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path, file, old, new, message):
    directory = write_ferplus(tmp_path)
    _edit(directory / file, 5, old, new)
    with pytest.raises(ValueError, match=message):
        read_ferplus(directory)


@pytest.mark.parametrize("shorter", ["fer2013.csv", "fer2013new.csv"])
def test_row_count_mismatch_names_both_files(tmp_path, shorter):
    directory = write_ferplus(tmp_path)
    path = directory / shorter
    path.write_text("\n".join(path.read_text().split("\n")[:-2]) + "\n")  # drop the last row
    counts = (15, 16) if shorter == "fer2013.csv" else (16, 15)
    pattern = (
        rf"fer2013\.csv has {counts[0]} rows but .*fer2013new\.csv has {counts[1]}"
        r".*row 15 has no partner"
    )
    with pytest.raises(ValueError, match=pattern):
        read_ferplus(directory)


@pytest.mark.parametrize("missing", ["fer2013.csv", "fer2013new.csv"])
def test_missing_file_names_file_and_manual_dir(tmp_path, missing):
    directory = write_ferplus(tmp_path / "manual")
    (directory / missing).unlink()
    pattern = (
        rf"needs {re.escape(missing)} in the manual download directory {re.escape(str(directory))}"
    )
    with pytest.raises(ValueError, match=pattern):
        read_ferplus(directory)
    builder = tfds.builder("ferplus", data_dir=str(tmp_path / "data"))
    with pytest.raises(ValueError, match=pattern):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(directory))
        )


def test_missing_header_column_is_named(tmp_path):
    directory = write_ferplus(tmp_path)
    _edit(directory / "fer2013new.csv", 1, ",NF", ",nf")
    with pytest.raises(ValueError, match=r"fer2013new\.csv: the header lacks columns \['NF'\]"):
        read_ferplus(directory)
