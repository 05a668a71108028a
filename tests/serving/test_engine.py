"""keras_sgm.serving.engine: the app's engine on a small model trained on the synthetic faces."""

import dataclasses

import keras
import numpy as np
import pytest
from PIL import Image

import keras_sgm
from keras_sgm import hub, serving
from keras_sgm.data import synthetic_faces
from keras_sgm.serving import faces
from tests import testing


@pytest.fixture(scope="module")
def engine(app_repo):
    return serving.ExpressionEngine.from_pretrained(app_repo[0])


@pytest.fixture(scope="module")
def test_faces():
    data = synthetic_faces.generate(8, size=48, seed=5)
    return data["image"], data["label"]


def _crop(image, name="face.png"):
    return faces.read_photo(image[..., 0], name=name)


def test_loads_a_repo_with_its_gallery(engine, app_repo):
    _, images, labels = app_repo
    assert (engine.size, engine.channels) == (48, 1)
    assert engine.class_names[:2] == ["neutral", "happiness"] and len(engine.class_names) == 8
    assert len(engine.index) == len(labels) and engine.has_thumbnails
    assert not engine.has_subclasses and engine.title == "repo"
    np.testing.assert_array_equal(engine.gallery.labels, labels)


def test_classify_by_bayes_and_knn_beats_chance(engine, test_faces):
    images, labels = test_faces
    results = [engine.classify(_crop(im), whole=True)[0] for im in images]
    names = np.array(engine.class_names)
    bayes = np.mean([r.label == names[y] for r, y in zip(results, labels)])
    knn = np.mean([r.knn_label == names[y] for r, y in zip(results, labels)])
    assert bayes > 0.5 and knn > 0.5  # chance is 0.125; this small model reaches about 0.8


def test_posterior_and_votes_are_consistent(engine, test_faces):
    image = test_faces[0][3]
    (result,) = engine.classify(_crop(image), whole=True)
    probs = list(result.posterior.values())
    assert sorted(result.posterior) == sorted(engine.class_names)
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1.0) < 1e-5
    x = image[None].astype("float32") / 255.0
    expected = engine.model.predict_proba(x)[0]
    for c, p in zip(engine.model.classes_, expected):
        assert abs(result.posterior[engine.class_names[c]] - p) < 1e-5
    assert sum(result.knn_votes.values()) == engine.knn_k == 11
    assert result.knn_label in result.knn_votes
    assert max(result.knn_votes.values()) == result.knn_votes[result.knn_label]


def test_group_photo_gives_three_faces_left_to_right(engine, app_examples):
    results = engine.classify(faces.read_photo(app_examples["group"]))
    assert len(results) == 3
    xs = [r.face.box[0] for r in results]
    assert xs == sorted(xs)
    assert engine.classify(faces.read_photo(np.full((200, 300), 128, np.uint8))) == []


def test_retrieve_returns_the_nearest_gallery_faces(engine, app_repo):
    _, images, labels = app_repo
    embedding = engine.embed(images[17:18])[0]
    matches = engine.retrieve(embedding, k=5)
    assert [m.index for m in matches][0] == 17 and matches[0].distance < 1e-3
    distances = [m.distance for m in matches]
    assert distances == sorted(distances) and len(matches) == 5
    assert matches[0].label == engine.class_names[labels[17]]
    assert matches[0].thumbnail.shape == (48, 48, 1)
    np.testing.assert_array_equal(
        matches[0].thumbnail[..., 0], np.round(images[17, ..., 0] * 255).astype(np.uint8)
    )
    gallery_emb = engine.gallery.embeddings
    exact = np.argsort(np.sum((gallery_emb - embedding) ** 2, axis=1), kind="stable")[:5]
    assert sorted(m.index for m in matches) == sorted(exact.tolist())
    assert len(engine.retrieve(embedding, k=10**6)) == len(labels)  # k is capped


def test_em_groups_partition_a_class(engine):
    groups, kind = engine.class_groups("happiness", n_groups=3)
    assert kind == "EM groups" and len(groups) == 3
    rows = np.flatnonzero(engine.gallery.labels == 1)
    members = np.concatenate([g.members for g in groups])
    assert sorted(members.tolist()) == rows.tolist()
    for g in groups:
        assert g.medoid == g.members[0] == g.top_k[0] and len(g.top_k) == min(16, g.size)
    with pytest.raises(ValueError, match="Unknown class 'joy'"):
        engine.class_groups("joy")


def test_dgms_subclasses_are_the_models_own(app_repo):
    repo, images, labels = app_repo
    model = hub.from_pretrained(repo)
    emb = model.predict(images, verbose=0)
    # Two sub-class Gaussians for class 1: the means of its two halves by the first coordinate.
    mine = np.flatnonzero(labels == 1)
    low = emb[mine, 0] < np.median(emb[mine, 0])
    means, ids, classes = [], [], []
    for c in range(8):
        if c == 1:
            means += [emb[mine[low]].mean(0), emb[mine[~low]].mean(0)]
            ids += [100, 101]
            classes += [1, 1]
        else:
            means.append(emb[labels == c].mean(0))
            ids.append(c)
            classes.append(c)
    model.set_gaussians(np.stack(means), ids, classes)
    engine = serving.ExpressionEngine(model, hub.load_pretrained(repo).gallery, detector=False)
    assert engine.has_subclasses
    groups, kind = engine.class_groups("happiness", n_groups=7)  # n_groups is unused
    assert kind == "DGMS sub-classes" and len(groups) == 2
    sub = np.argmin(
        np.stack([np.sum((emb[mine] - m) ** 2, axis=1) for m in means[1:3]], axis=1), axis=1
    )
    expected = sorted([sorted(mine[sub == 0].tolist()), sorted(mine[sub == 1].tolist())])
    assert sorted(sorted(g.members.tolist()) for g in groups) == expected
    groups, kind = engine.class_groups("neutral")
    assert kind == "EM groups"


def test_figures_are_written(engine):
    path, kind, groups = engine.group_figure("sadness", n_groups=2)
    with Image.open(path) as image:
        assert image.size == (70 * 16 + 30, 100 * len(groups) + 20)
    first = engine.embedding_map()
    assert first.is_file() and engine.embedding_map() == first  # cached


def test_summarize_an_album_with_bad_files(engine, app_examples, tmp_path):
    (tmp_path / "notes.jpg").write_text("not a photo")
    blank = tmp_path / "wall.png"
    Image.new("L", (200, 200), 128).save(blank)
    album = [*app_examples["album"][:12], tmp_path / "notes.jpg", blank, app_examples["group"]]
    summary = engine.summarize(album, k=5)
    # detection on: the 48-px-like crops upscaled to 192 px are found in some cases only
    assert len(summary.faces) == 5 and len(summary.sources) == 5
    assert "Skipped: notes.jpg is not an image" in " ".join(summary.messages)
    assert "Skipped: no face found in wall.png." in summary.messages
    whole = engine.summarize(app_examples["album"], k=6, whole=True)
    assert whole.total_faces == 24 and len(whole.faces) == 6
    assert len(set(whole.sources)) == 6
    few = engine.summarize(app_examples["album"][:3], k=8, whole=True)
    assert len(few.faces) == 3
    assert "Only 3 face(s) found: showing all of them, not 8." in few.messages


def test_summarize_refuses_what_it_cannot_use(engine, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="Upload some photos first"):
        engine.summarize([], 3)
    with pytest.raises(ValueError, match="No face found in the album. Skipped: empty.jpg is empty"):
        engine.summarize([tmp_path / "empty.jpg"], 3)
    with pytest.raises(ValueError, match="201 photos uploaded; an album takes at most 200"):
        engine.summarize([tmp_path / "empty.jpg"] * 201, 3)
    with pytest.raises(ValueError, match="k must be at least 1"):
        engine.summarize([tmp_path / "empty.jpg"], 0)


def test_refuses_models_it_cannot_serve():
    encoder = testing.encoder()
    model = keras_sgm.SGMModel(encoder)
    with pytest.raises(ValueError, match="no Gaussians"):
        serving.ExpressionEngine(model, detector=False)
    x, y = testing.toy_data(classes=(0, 1))
    model.fit_gaussians(x, y)
    with pytest.raises(ValueError, match=r"square gray or RGB image models; this one takes"):
        serving.ExpressionEngine(model, detector=False)
    with pytest.raises(ValueError, match="must be a keras_sgm.SGMModel"):
        serving.ExpressionEngine(keras.Sequential([keras.Input((2,))]), detector=False)


def test_gallery_must_match_the_embedding(app_repo):
    model = hub.from_pretrained(app_repo[0])
    gallery = hub.Gallery(np.zeros((3, 5), "float32"), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="5-d embeddings; the model embeds in 16"):
        serving.ExpressionEngine(model, gallery, detector=False)
    bare = serving.ExpressionEngine(model, detector=False)
    with pytest.raises(ValueError, match="no gallery"):
        bare.retrieve(np.zeros(16), 3)
    (result,) = bare.classify(faces.read_photo(np.zeros((48, 48), np.uint8)), whole=True)
    assert result.knn_votes == {} and result.knn_label is None
    # A gallery class the model has no Gaussian for is still named, not an IndexError.
    extra = hub.Gallery(np.zeros((2, 16), "float32"), np.array([0, 9]))
    engine = serving.ExpressionEngine(model, extra, detector=False)
    assert engine.class_names[8:] == ["class 8", "class 9"]
    assert [m.label for m in engine.retrieve(np.zeros(16), 2)] == ["neutral", "class 9"]


def test_the_default_model_is_trained_once_and_cached(tmp_path, monkeypatch):
    from keras_sgm import runs

    messages = []
    config = dataclasses.replace(
        runs.TrainConfig(), epochs=1, max_train_samples=64, samples_per_class=4
    )
    directory = serving.ensure_default_model(
        tmp_path / "default", config=config, progress=messages.append
    )
    assert (directory / hub.MARKER).is_file()
    assert messages[0].startswith(
        "Training the default model (fmpnet, 1 epochs on synthetic_faces)"
    )
    repo = hub.load_pretrained(directory)
    assert repo.gallery.thumbnails is not None and len(repo.gallery.labels) == 64
    assert repo.config["epochs"] == 1 and "output" not in repo.config
    assert list(tmp_path.iterdir()) == [directory]  # the staging directory is gone

    def fail(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(runs, "train", fail)
    assert serving.ensure_default_model(directory) == directory
    monkeypatch.setenv(serving.DEFAULT_MODEL_ENV, str(directory))
    assert serving.default_model_dir() == directory


def test_the_uncertainty_level_is_chosen_on_the_gallery(engine, app_repo):
    _, images, labels = app_repo
    posterior = engine.model.head.posterior(engine.gallery.embeddings)
    answers = engine.model.classes_[np.argmax(posterior, axis=1)]
    right = posterior.max(axis=1)[answers == engine.gallery.labels]
    # 95% of the gallery's right answers reach the level, 5% do not
    assert np.mean(right >= engine.uncertain_below) == pytest.approx(0.95, abs=0.02)
    assert engine.synthetic and engine.trained_on == "synthetic_faces"
    crop = (images[0, ..., 0] * 255).astype("uint8")
    results = engine.classify(faces.read_photo(crop, name="crop.png"), whole=True)
    assert results[0].uncertain == (max(results[0].posterior.values()) < engine.uncertain_below)
    # a level given by hand is used as is, and checked
    strict = serving.ExpressionEngine(
        engine.model, engine.gallery, detector=False, uncertain_below=0.99
    )
    assert strict.uncertain_below == 0.99 and not strict.synthetic
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="uncertain_below must be in"):
            serving.ExpressionEngine(engine.model, detector=False, uncertain_below=bad)
    assert serving.ExpressionEngine(engine.model, detector=False).uncertain_below == 0.5


def test_a_blank_a_tiny_or_a_noise_crop_is_no_clear_expression(engine, test_faces):
    assert engine.reject_below is not None  # chosen on the gallery: the model has no threshold
    rng = np.random.default_rng(0)
    for pixels in (
        np.full((1, 1), 255, "uint8"),
        np.zeros((48, 48), "uint8"),
        rng.integers(0, 256, (48, 48)).astype("uint8"),
    ):
        (result,) = engine.classify(faces.read_photo(pixels, name="odd.png"), whole=True)
        assert result.rejected and result.answer == "no clear expression"
        assert result.known_score < engine.reject_below
    images, _ = test_faces
    kept = [not engine.classify(_crop(im), whole=True)[0].rejected for im in images]
    assert np.mean(kept) >= 0.75  # faces like the gallery's are answered
    lenient = serving.ExpressionEngine(
        engine.model, engine.gallery, detector=False, reject_below=-1e9
    )
    (result,) = lenient.classify(faces.read_photo(np.zeros((48, 48), "uint8")), whole=True)
    assert not result.rejected and result.answer == result.label


def test_the_app_says_no_clear_expression(engine):
    from keras_sgm.serving.handlers import WHOLE, Handlers

    dot = np.full((1, 1), 255, "uint8")
    _, _, rows, status = Handlers(engine).classify(dot, None, WHOLE)
    assert rows[0][1] == "no clear expression" and rows[0][3] == "rejected"
    assert "**no clear expression**" in status and "none of the expressions" in status
