"""keras_sgm.dgms.album and scripts/summarize_album.py: photo-album summarization."""

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import keras_sgm
from keras_sgm.dgms.album import load_album, summarize_album, summarize_embeddings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "summarize_album.py"


def _blobs(sizes, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim)) * 10
    blob = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    return centres[blob] + 0.1 * rng.normal(size=(blob.size, dim)), blob


# ----------------------------------------------------------------- summarize_embeddings
@pytest.mark.parametrize("method", ["em", "kmeans"])
def test_one_item_per_blob_largest_blob_first(method):
    x, blob = _blobs([9, 14, 5, 11, 7])
    chosen = summarize_embeddings(x, 5, method=method)
    assert chosen.dtype == np.int64 and chosen.shape == (5,)
    assert blob[chosen].tolist() == [1, 3, 0, 4, 2]  # blobs by decreasing size
    for i in chosen:  # each is its blob's medoid: the member closest to the blob mean
        rows = np.flatnonzero(blob == blob[i])
        mean = x[rows].mean(axis=0)
        assert i == rows[np.argmin(np.linalg.norm(x[rows] - mean, axis=1))]


def test_duplicates_give_exactly_k_distinct_indices(caplog):
    x = np.repeat([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]], 4, axis=0)  # 3 points, 4 copies each
    with caplog.at_level(logging.INFO, logger="keras_sgm.dgms"):
        chosen = summarize_embeddings(x, 5)
    assert len(set(chosen.tolist())) == 5
    assert {tuple(x[i]) for i in chosen} == {(0.0, 0.0), (5.0, 0.0), (0.0, 5.0)}
    assert "2 item(s) added by farthest-point selection" in caplog.text
    assert sorted(summarize_embeddings(x, 12).tolist()) == list(range(12))


def test_fill_is_farthest_point_then_smallest_index():
    # Two distinct points: medoids 0 (group of 5) and 5 (group of 3), then a copy of 0 or 5
    # (both at distance 0 from the chosen): the smallest index, 1.
    x = np.array([[0.0]] * 5 + [[10.0]] * 3)
    assert summarize_embeddings(x, 3).tolist() == [0, 5, 1]
    # As many distinct points as k: one group each, no fill.
    y = np.array([[0.0], [0.0], [1.0], [9.0]])
    assert summarize_embeddings(y, 3).tolist() == [0, 2, 3]


def test_summarize_embeddings_checks():
    x, _ = _blobs([3, 3])
    with pytest.raises(ValueError, match="k=7 exceeds the number of items n=6"):
        summarize_embeddings(x, 7)
    with pytest.raises(ValueError, match="k must be a positive integer; received 0"):
        summarize_embeddings(x, 0)
    with pytest.raises(ValueError, match="method must be one of"):
        summarize_embeddings(x, 2, method="spectral")
    x[2, 0] = np.inf
    with pytest.raises(ValueError, match="embeddings row 2 contains NaN or inf"):
        summarize_embeddings(x, 2)


# ----------------------------------------------------------------- summarize_album
def test_summarize_album_embeds_with_the_model():
    rng = np.random.default_rng(0)
    levels = np.repeat([0.1, 0.5, 0.9], [3, 6, 4])[rng.permutation(13)]
    images = (levels[:, None, None, None] + 0.01 * rng.normal(size=(13, 4, 4, 1))).astype("f4")
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    chosen = summarize_album(model, images, 3, batch_size=4)
    assert np.round(levels[chosen], 1).tolist() == [0.5, 0.9, 0.1]
    identity = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Identity()])
    with pytest.raises(ValueError, match=r"embeddings \[13, dim\]; its output has shape"):
        summarize_album(identity, images, 3)
    with pytest.raises(ValueError, match="k=14 exceeds the number of images n=13"):
        summarize_album(model, images, 14)


# ----------------------------------------------------------------- load_album
def _save(path, array):
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return path


def test_load_album_reads_converts_and_sorts(tmp_path):
    _save(tmp_path / "c.PNG", np.full((10, 20, 3), (255, 0, 0)))  # red, not square
    _save(tmp_path / "a.jpeg", np.full((8, 8), 128))
    _save(tmp_path / "b.bmp", np.full((6, 6, 4), (0, 255, 0, 10)))  # alpha is dropped
    Image.fromarray(np.full((5, 5), 1000, np.uint16)).save(tmp_path / "d.png")  # 16-bit
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    _save(tmp_path / "sub" / "e.png", np.zeros((4, 4)))  # sub-folders are not read

    images, paths, skipped = load_album(tmp_path, image_size=4, channels=1)
    assert [p.name for p in paths] == ["a.jpeg", "b.bmp", "c.PNG", "d.png"] and skipped == []
    assert images.shape == (4, 4, 4, 1) and images.dtype == np.float32
    luma = np.array([128, round(0.587 * 255), round(0.299 * 255), 255]) / 255
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), luma, atol=2 / 255)

    album = load_album(str(tmp_path), image_size=3, channels=3)
    assert album.images.shape == (4, 3, 3, 3) and album.paths == paths
    np.testing.assert_allclose(album.images[2], np.broadcast_to([1, 0, 0], (3, 3, 3)), atol=1e-6)
    np.testing.assert_allclose(album.images[0], 128 / 255, atol=1e-6)  # gray as RGB


def test_load_album_names_the_unreadable_file(tmp_path):
    _save(tmp_path / "a.png", np.zeros((4, 4)))
    (tmp_path / "x.jpg").write_text("this is not a JPEG")
    with pytest.raises(ValueError, match=r"Cannot read image .*x\.jpg"):
        load_album(tmp_path, 4, 1)
    images, paths, skipped = load_album(tmp_path, 4, 1, skip_unreadable=True)
    assert images.shape == (1, 4, 4, 1) and paths == [tmp_path / "a.png"]
    assert skipped == [tmp_path / "x.jpg"]
    (tmp_path / "a.png").unlink()
    with pytest.raises(ValueError, match="holds no readable images: all 1 image file"):
        load_album(tmp_path, 4, 1, skip_unreadable=True)


def test_load_album_folder_and_argument_checks(tmp_path):
    (tmp_path / "readme.md").write_text("no images here")
    with pytest.raises(ValueError, match=f"Album folder {tmp_path} holds no images"):
        load_album(tmp_path, 8, 1)
    with pytest.raises(ValueError, match="does not exist or is not a folder"):
        load_album(tmp_path / "missing", 8, 1)
    _save(tmp_path / "a.png", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="channels must be 1 .gray. or 3 .RGB.; received 2"):
        load_album(tmp_path, 8, 2)
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        load_album(tmp_path, 0, 1)


def test_load_album_transform_hook(tmp_path):
    left_dark = np.concatenate([np.zeros((8, 4)), np.full((8, 4), 200)], axis=1)
    _save(tmp_path / "a.png", left_dark)
    _save(tmp_path / "b.png", np.zeros((2, 2)))

    def right_half(image):
        if image.shape[1] < 4:
            raise ValueError("no face found")
        return image[:, image.shape[1] // 2 :]

    images, paths, skipped = load_album(tmp_path, 2, 1, transform=right_half, skip_unreadable=True)
    np.testing.assert_allclose(images[0], 200 / 255, atol=1e-6)
    assert [p.name for p in paths] == ["a.png"] and [p.name for p in skipped] == ["b.png"]
    with pytest.raises(ValueError, match=r"transform failed on image .*b\.png: no face found"):
        load_album(tmp_path, 2, 1, transform=right_half)
    with pytest.raises(ValueError, match=r"transform must return a non-empty \[h, w, 1\] image"):
        load_album(tmp_path, 2, 1, transform=lambda image: image[:0])


# ----------------------------------------------------------------- scripts/summarize_album.py
def _tiny_model(path):
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
        ]
    )
    keras_sgm.SGMModel(encoder).save(path)
    return path


def _album(folder, n=8):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        image = rng.uniform(0, 40, size=(20, 20))
        image[:: 2 + i % 3] += 200
        _save(folder / f"photo_{i}.png", np.clip(image, 0, 255))
    return folder


def _script():
    spec = importlib.util.spec_from_file_location("summarize_album", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_end_to_end(tmp_path):
    model = _tiny_model(tmp_path / "tiny.keras")
    folder = _album(tmp_path / "album")
    (folder / "broken.jpg").write_text("not a JPEG")
    sheet = tmp_path / "out" / "sheet.png"
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="-1")
    command = [sys.executable, str(SCRIPT), str(folder), "--k", "3", "--model", str(model)]
    result = subprocess.run(
        command + ["--output", str(sheet), "--skip-unreadable", "--seed", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert len(names) == 3 == len(set(names))
    assert set(names) <= {f"photo_{i}.png" for i in range(8)}
    assert "skipped" in result.stderr and "broken.jpg" in result.stderr
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and sheet.stat().st_size > 1000


def test_script_user_errors_are_one_line(tmp_path, capsys):
    script = _script()
    model = _tiny_model(tmp_path / "tiny.keras")
    folder = _album(tmp_path / "album", n=4)
    cases = [
        (["--k", "5", "--model", str(model)], "k=5 exceeds the number of images n=4"),
        (["--k", "2", "--model", str(tmp_path / "none.keras")], "No model file at"),
    ]
    for flags, message in cases:
        assert script.main([str(folder), *flags, "--output", str(tmp_path / "s.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err
    (folder / "x.jpg").write_text("not a JPEG")
    assert script.main([str(folder), "--k", "2", "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Cannot read image") and "x.jpg" in err and "\n" not in err
    assert not (tmp_path / "s.png").exists()
