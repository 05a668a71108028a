import json
import struct

import numpy as np
import pytest

from keras_sgm import viz


def _png_size(path):
    """(width, height) from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _blobs(n_per_class, classes, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    return rng.normal(size=(classes, dim))[y] * 6 + rng.normal(size=(y.size, dim)), y


def test_plot_tsne_writes_a_png_and_subsamples(tmp_path):
    x, y = _blobs(40, 3)
    path = viz.plot_tsne(
        x, y, tmp_path / "sub" / "tsne.png", class_names={0: "a", 1: "b"}, max_points=60
    )  # 120 points: a subsample of 60 is mapped
    assert path == tmp_path / "sub" / "tsne.png" and path.stat().st_size > 5000
    assert _png_size(path) == (700, 600)
    names = ["neutral", "happiness", "surprise"]
    path = viz.plot_tsne(x[:30], y[:30], str(tmp_path / "small.png"), class_names=names)
    assert _png_size(path) == (700, 600)


def test_plot_tsne_input_checks(tmp_path):
    x, y = _blobs(5, 2)
    with pytest.raises(ValueError, match=r"labels must have shape \[10\]"):
        viz.plot_tsne(x, y[:9], tmp_path / "t.png")
    x[4, 1] = np.inf
    with pytest.raises(ValueError, match="embeddings row 4 contains NaN or inf"):
        viz.plot_tsne(x, y, tmp_path / "t.png")
    with pytest.raises(ValueError, match="at least 4 points"):
        viz.plot_tsne(x[:3], y[:3], tmp_path / "t.png")


def test_plot_retrieval_curves_accepts_json_round_tripped_dicts(tmp_path):
    recall = {1: 0.81, 2: 0.88, 4: 0.92, 8: 0.95, 16: 0.97, 32: 0.98}
    accuracy = {k: 0.8 - 0.01 * i for i, k in enumerate(recall)}
    path = viz.plot_retrieval_curves(
        json.loads(json.dumps(recall)), accuracy, tmp_path / "retrieval.png"
    )
    assert path.stat().st_size > 5000
    assert _png_size(path) == (600, 450)
    with pytest.raises(ValueError, match="Recall@K is empty"):
        viz.plot_retrieval_curves({}, accuracy, tmp_path / "r.png")


def test_plot_f1_vs_k(tmp_path):
    curve = {k: 0.7 + 0.01 * k - 0.0005 * k**2 for k in range(1, 22)}  # best at K = 10
    path = viz.plot_f1_vs_k(json.loads(json.dumps(curve)), tmp_path / "f1.png")
    assert path.stat().st_size > 5000
    assert _png_size(path) == (600, 450)


@pytest.mark.parametrize("classes", [2, 8, 20])
def test_plot_confusion_matrix_size_grows_with_classes(tmp_path, classes):
    matrix = np.random.default_rng(0).integers(0, 50, size=(classes, classes))
    matrix[0] = 0  # a class with no test samples must not divide by zero
    names = [f"class {i}" for i in range(classes)]
    path = viz.plot_confusion_matrix(matrix.tolist(), names, tmp_path / "cm.png")
    width, height = _png_size(path)
    expected = max(450, round(100 * (0.6 * classes + 2.0)))
    assert abs(width - expected) <= 1 and abs(height - expected) <= 1
    assert 450 <= width <= 1400 and path.stat().st_size > 5000


def test_plot_confusion_matrix_checks(tmp_path):
    with pytest.raises(ValueError, match=r"square \[c, c\]"):
        viz.plot_confusion_matrix(np.ones((2, 3)), None, tmp_path / "cm.png")
    with pytest.raises(ValueError, match="class_names has 3 names for a 2 x 2 matrix"):
        viz.plot_confusion_matrix(np.ones((2, 2)), ["a", "b", "c"], tmp_path / "cm.png")
    path = viz.plot_confusion_matrix(np.eye(3, dtype=int), None, tmp_path / "cm.png")
    assert _png_size(path) == (450, 450)


def test_missing_matplotlib_says_what_to_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        viz.plot_f1_vs_k({1: 0.5}, tmp_path / "f1.png")
