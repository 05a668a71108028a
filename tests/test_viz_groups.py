"""keras_sgm.viz.plot_group_grid (the paper's Figure 8) and plot_contact_sheet."""

import numpy as np
import pytest
from PIL import Image

from keras_sgm import viz
from keras_sgm.dgms.groups import Group, find_groups

BLUE, GREEN, MAGENTA = (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 1.0)


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _near(pixels, colour, tolerance=40):
    return np.all(np.abs(pixels - np.asarray(colour)) <= tolerance, axis=-1)


def _coloured(colours, size=8):
    return np.asarray(colours, np.float32)[:, None, None, :] * np.ones((size, size, 3), "f4")


def _group(members, medoid, label=None):
    members = np.asarray(members)
    return Group(members, medoid, members[:16], np.zeros(2, "f4"), label)


def test_group_grid_size_and_groups_from_find_groups(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(30, 6, 6))  # [n, h, w]: gray without a channel axis
    groups = find_groups(images.reshape(30, -1), n_groups=2, labels=np.arange(30) % 3)
    path = viz.plot_group_grid(
        images, groups, tmp_path / "sub" / "g.png", top_k=4, class_names={0: "neutral"}
    )
    assert path == tmp_path / "sub" / "g.png" and path.stat().st_size > 2000
    assert Image.open(path).size == (70 * 4 + 30, 100 * 6 + 20)  # 6 groups, 4 per row
    path = viz.plot_group_grid(images, groups, tmp_path / "two.png", max_groups=2)
    assert Image.open(path).size == (70 * 16 + 30, 100 * 2 + 20)


def test_group_grid_shows_medoid_first_outlined_and_only_top_k(tmp_path):
    # members in order: medoid (blue), two green, then two magenta beyond top_k = 3
    images = _coloured([GREEN, MAGENTA, BLUE, GREEN, MAGENTA])
    group = _group([2, 0, 3, 1, 4], medoid=2)
    pixels = _pixels(viz.plot_group_grid(images, [group], tmp_path / "g.png", top_k=3))
    blue, green = _near(pixels, (0, 0, 255)), _near(pixels, (0, 255, 0))
    assert blue.sum() > 100 and green.sum() > 200
    assert not _near(pixels, (255, 0, 255)).any()  # members beyond the Top-3 are not drawn
    assert np.flatnonzero(blue.any(axis=0)).max() < np.flatnonzero(green.any(axis=0)).min()
    red = _near(pixels, (214, 39, 40))  # tab:red outline around the medoid only
    columns = np.flatnonzero(red.any(axis=0))
    assert red.sum() > 50 and columns.max() < np.flatnonzero(green.any(axis=0)).min()
    assert columns.min() <= np.flatnonzero(blue.any(axis=0)).min()


def test_group_grid_medoid_first_even_when_members_say_otherwise(tmp_path):
    images = _coloured([GREEN, BLUE, GREEN])
    pixels = _pixels(viz.plot_group_grid(images, [_group([0, 1, 2], 1)], tmp_path / "g.png"))
    blue, green = _near(pixels, (0, 0, 255)), _near(pixels, (0, 255, 0))
    assert np.flatnonzero(blue.any(axis=0)).max() < np.flatnonzero(green.any(axis=0)).min()


def test_group_grid_checks(tmp_path):
    images = np.zeros((4, 5, 5, 1))
    good = [_group([0, 1], 0)]
    with pytest.raises(ValueError, match=r"names image 7, outside \[0, 4\)"):
        viz.plot_group_grid(images, [_group([0, 7], 0)], tmp_path / "g.png")
    with pytest.raises(ValueError, match="groups is empty"):
        viz.plot_group_grid(images, [], tmp_path / "g.png")
    with pytest.raises(ValueError, match="max_groups must be a positive integer; received 0"):
        viz.plot_group_grid(images, good, tmp_path / "g.png", max_groups=0)
    with pytest.raises(ValueError, match="top_k must be a positive integer; received 0"):
        viz.plot_group_grid(images, good, tmp_path / "g.png", top_k=0)
    with pytest.raises(ValueError, match=r"received shape \(4, 5, 5, 2\)"):
        viz.plot_group_grid(np.zeros((4, 5, 5, 2)), good, tmp_path / "g.png")
    images[3, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="image 3 contains NaN or inf"):
        viz.plot_group_grid(images, good, tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize(
    ("n", "columns", "titles", "size"),
    [
        (5, None, True, (150 * 3 + 20, 180 * 2 + 20)),  # ceil(sqrt(5)) = 3 columns
        (5, 5, False, (150 * 5 + 20, 150 + 20)),
        (2, 10, False, (150 * 2 + 20, 150 + 20)),  # no more columns than images
        (1, None, True, (150 + 20, 180 + 20)),
    ],
)
def test_contact_sheet_size(tmp_path, n, columns, titles, size):
    images = np.random.default_rng(0).uniform(size=(n, 12, 12, 1))
    names = [f"IMG_20240101_{i:04d}_a_long_name.jpg" for i in range(n)] if titles else None
    path = viz.plot_contact_sheet(images, str(tmp_path / "sheet.png"), names, columns)
    assert path == tmp_path / "sheet.png" and path.stat().st_size > 1000
    width, height = Image.open(path).size
    assert abs(width - size[0]) <= 1 and abs(height - size[1]) <= 1


def test_contact_sheet_keeps_the_order(tmp_path):
    images = _coloured([BLUE, GREEN, GREEN, MAGENTA])  # 2 x 2: blue top left, magenta bottom right
    pixels = _pixels(viz.plot_contact_sheet(images, tmp_path / "s.png"))
    h, w = pixels.shape[:2]
    blue, magenta = _near(pixels, (0, 0, 255)), _near(pixels, (255, 0, 255))
    ys, xs = np.nonzero(blue)
    assert ys.max() < h / 2 and xs.max() < w / 2
    ys, xs = np.nonzero(magenta)
    assert ys.min() > h / 2 and xs.min() > w / 2


def test_contact_sheet_checks(tmp_path):
    images = np.zeros((3, 4, 4, 3))
    with pytest.raises(ValueError, match="titles has 2 entries for 3 images"):
        viz.plot_contact_sheet(images, tmp_path / "s.png", titles=["a", "b"])
    with pytest.raises(ValueError, match="columns must be a positive integer; received 0"):
        viz.plot_contact_sheet(images, tmp_path / "s.png", columns=0)
    with pytest.raises(ValueError, match="with n > 0"):
        viz.plot_contact_sheet(np.zeros((0, 4, 4, 3)), tmp_path / "s.png")


def test_short_titles():
    assert viz._short("photo.jpg") == "photo.jpg"
    short = viz._short("IMG_20240101_123456_portrait.jpeg")
    assert len(short) == 20 and short.startswith("IMG_2024") and short.endswith("ait.jpeg")
