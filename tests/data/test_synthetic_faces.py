"""Tests of the synthetic faces: determinism, balance, learnable classes, hidden sub-groups."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from keras_sgm.data.expressions import FERPLUS_CLASSES
from keras_sgm.data.synthetic_faces import (
    SPLIT_SEEDS,
    SUBGROUPS,
    SyntheticFaces,
    generate,
    iterate,
    render_face,
)

FACTORS = ("glasses", "beard", "face_shape", "skin", "subgroup")

GOLDEN_SHA256 = "cb3c9824a6a88e547542b0a467b66cf38879bb937112195ab1f374134b4101b0"
"""sha256 of `generate(2, seed=0)["image"]`: changing the drawing changes the dataset, so
bump `SyntheticFaces.VERSION` and update this value together."""


class SyntheticFacesBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """TFDS' own checks (registration, info, prepare, reload, disjoint splits), tiny config."""

    DATASET_CLASS = SyntheticFaces
    BUILDER_CONFIG_NAMES_TO_TEST = ["48px_tiny"]
    SPLITS = {"train": 8 * 10, "validation": 8 * 3, "test": 8 * 5}
    # Nothing is downloaded, but the test case wants an existing dummy-data folder.
    EXAMPLE_DIR = str(Path(__file__).parent)
    SKIP_CHECKSUMS = True


def _pixels(images):
    return images.reshape(len(images), -1).astype("float64") / 255.0


def test_generate_is_deterministic_and_seeded():
    first, again, other = generate(3, seed=5), generate(3, seed=5), generate(3, seed=6)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["image"], other["image"])
    digest = hashlib.sha256(generate(2, seed=0)["image"].tobytes()).hexdigest()
    assert digest == GOLDEN_SHA256


def test_larger_generate_extends_smaller():
    small, large = generate(2, seed=3), generate(5, seed=3)
    for key in small:
        np.testing.assert_array_equal(large[key][: len(small[key])], small[key])
    assert next(iterate(5, seed=3))["image"].tobytes() == large["image"][0].tobytes()


@pytest.mark.parametrize("size", [48, 64])
def test_generate_shapes_and_dtypes(size):
    data = generate(2, size=size)
    assert data["image"].shape == (16, size, size, 1)
    assert data["image"].dtype == np.uint8
    for key in ("label", *FACTORS):
        assert data[key].shape == (16,) and data[key].dtype == np.int64


def test_classes_and_factors_are_balanced():
    data = generate(12, seed=2)
    np.testing.assert_array_equal(np.bincount(data["label"]), [12] * len(FERPLUS_CLASSES))
    np.testing.assert_array_equal(data["subgroup"], 2 * data["glasses"] + data["beard"])
    for label in range(len(FERPLUS_CLASSES)):
        in_class = data["label"] == label
        np.testing.assert_array_equal(np.bincount(data["subgroup"][in_class]), [3, 3, 3, 3])
        np.testing.assert_array_equal(np.bincount(data["face_shape"][in_class]), [4, 4, 4])
        np.testing.assert_array_equal(np.bincount(data["skin"][in_class]), [4, 4, 4])
    # The smallest generate already has every class with every sub-group.
    tiny = generate(4, seed=9)
    pairs = set(zip(tiny["label"].tolist(), tiny["subgroup"].tolist()))
    assert len(pairs) == len(FERPLUS_CLASSES) * len(SUBGROUPS)


def test_images_vary_and_are_not_constant():
    images = generate(4, seed=1)["image"]
    assert images.reshape(len(images), -1).std(axis=1).min() > 20.0
    assert len({image.tobytes() for image in images}) == len(images)


def test_render_face_canonical_and_factors():
    canonical = render_face("happiness", {"skin": 1})
    np.testing.assert_array_equal(canonical, render_face(1, {"skin": 1}, size=48, rng=None))
    assert canonical.shape == (48, 48, 1) and canonical.dtype == np.uint8
    noisy = render_face(1, {"skin": 1}, rng=np.random.default_rng(0))
    assert not np.array_equal(canonical, noisy)
    # Glasses and beard change many pixels by a lot: the sub-groups are visually strong.
    for factor in ("glasses", "beard"):
        changed = np.abs(render_face(0, {factor: True}).astype(int) - render_face(0).astype(int))
        assert (changed > 40).mean() > 0.05, factor
    # Expressions differ from one another even without nuisance variation.
    faces = [render_face(label).astype(int) for label in range(len(FERPLUS_CLASSES))]
    for i in range(len(faces)):
        for j in range(i):
            assert (np.abs(faces[i] - faces[j]) > 40).sum() >= 15, (i, j)
    with pytest.raises(ValueError, match="Unknown expression"):
        render_face("boredom")
    with pytest.raises(ValueError, match="expression must be"):
        render_face(8)
    for factors in ({"skin": 3}, {"face_shape": -1}, {"glases": True}):
        with pytest.raises(ValueError, match="factors must"):
            render_face(0, factors)


def test_classes_are_learnable_from_raw_pixels():
    train, test = generate(150, seed=SPLIT_SEEDS["train"]), generate(40, seed=SPLIT_SEEDS["test"])
    model = make_pipeline(
        PCA(128, random_state=0), StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)
    )
    model.fit(_pixels(train["image"]), train["label"])
    accuracy = model.score(_pixels(test["image"]), test["label"])
    assert accuracy > 0.7, accuracy  # chance is 1/8; measured 0.85


def test_subgroups_are_clusters_of_raw_pixels():
    data = generate(48, seed=4)
    scores = {factor: [] for factor in ("subgroup", "skin", "face_shape")}
    for label in range(len(FERPLUS_CLASSES)):
        in_class = data["label"] == label
        clusters = KMeans(4, n_init=10, random_state=0).fit_predict(
            _pixels(data["image"][in_class])
        )
        for factor, values in scores.items():
            values.append(normalized_mutual_info_score(data[factor][in_class], clusters))
    subgroup = np.asarray(scores["subgroup"])
    assert subgroup.min() > 0.3 and subgroup.mean() > 0.45, subgroup
    # Glasses and beard, not skin tone or face shape, are what k-means finds first.
    assert subgroup.mean() > max(np.mean(scores["skin"]), np.mean(scores["face_shape"]))


def test_builder_says_it_is_a_stand_in():
    assert "stand-in" in SyntheticFaces.__doc__.lower()
    assert "say nothing" in SyntheticFaces.__doc__
    names = [config.name for config in SyntheticFaces.BUILDER_CONFIGS]
    assert names[:3] == ["48px", "64px", "96px"] and "48px_tiny" in names
    default = SyntheticFaces.BUILDER_CONFIGS[0]
    assert (default.train_per_class, default.validation_per_class, default.test_per_class) == (
        300,
        50,
        100,
    )
