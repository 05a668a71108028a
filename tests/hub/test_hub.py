"""keras_sgm.hub and scripts/push_to_hub.py, offline: local repos, and the Hub mocked at HfApi."""

import dataclasses
import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path

import h5py
import huggingface_hub
import keras
import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard, errors
from PIL import Image

import keras_sgm
from keras_sgm import hub
from keras_sgm.runs import TrainConfig
from tests import testing

CLASS_NAMES = ["neutral", "happiness", "surprise"]
TOKEN = "hf_SECRETtokenDoNotLeak1234567890"
LOCAL_PATH = "/home/alice/private_faces"
REPO_FILES = {
    "README.md",
    "config.json",
    "metadata.json",
    "model.weights.h5",
    "keras_sgm.json",
    "training_config.json",
    "metrics.json",
    "history.csv",
    "figures/tsne.png",
    "figures/retrieval.png",
}
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "push_to_hub.py"


def _metrics():
    """A metrics.json like keras_sgm.runs.train writes, plus a key the card does not know."""
    return {
        "nmi": 0.61,
        "cluster_f1": 0.52,
        "recall_at_k": {"1": 0.7, "2": 0.8, "4": 0.9, "8": 0.95, "16": 0.97, "32": 1.0},
        "acc_at_k": {"1": 0.7, "2": 0.65, "4": 0.6, "8": 0.55, "16": 0.5, "32": 0.45},
        "knn_accuracy": 0.8125,
        "knn_precision": 0.8,
        "knn_recall": 0.79,
        "knn_f1": 0.7912345678901234,
        "confusion_matrix": [[5, 1, 0], [0, 6, 0], [1, 0, 5]],
        "f1_vs_k": {str(k): 0.7 for k in range(1, 22)},
        "classes": [0, 1, 2],
        "bayes_accuracy": 0.75,
        "class_names": CLASS_NAMES,
        "train_seconds_per_epoch": 0.5,
        "epochs_run_in_this_session": 1,
        "method": "sgm",
        "arch": "fmpnet",
        "dataset": "synthetic_faces",
        "dgms_subclass_nmi": 0.33,
    }


def _toy():
    return testing.toy_data(n_per_class=16, classes=(0, 1, 2), dim=6, seed=1)


def _trained_model():
    """An SGMModel fitted one epoch, with two sub-class Gaussians per class (a DGMS-like map)."""
    x, y = _toy()
    model = keras_sgm.SGMModel(testing.encoder(6, 4), sigma=0.5, class_names=CLASS_NAMES)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, y, batch_size=24, epochs=1, verbose=0)
    sub = y * 10 + np.arange(len(y)) % 2
    return model.fit_gaussians(x, sub, class_map={int(s): int(s) // 10 for s in np.unique(sub)})


def _write_run(run, model, dataset="synthetic_faces"):
    """A run directory as keras_sgm.runs.train leaves it."""
    (run / "figures").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "logs").mkdir()
    model.save(run / "model.keras")
    shutil.copyfile(run / "model.keras", run / "checkpoints" / "last.keras")
    (run / "logs" / "events.out").write_text("tensorboard")
    config = TrainConfig(
        dataset=dataset, data_dir=LOCAL_PATH, epochs=1, embedding_dim=4, output=str(run)
    )
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    (run / "metrics.json").write_text(json.dumps(_metrics(), indent=2))
    (run / "history.csv").write_text("epoch,loss\n0,0.5\n")
    for name in ("tsne", "retrieval"):
        Image.fromarray(np.zeros((4, 4), "uint8")).save(run / "figures" / f"{name}.png")
    return run


@pytest.fixture(scope="module")
def trained():
    return _trained_model()


@pytest.fixture(scope="module")
def run_dir(trained, tmp_path_factory):
    return _write_run(tmp_path_factory.mktemp("run"), trained)


@pytest.fixture(scope="module")
def repo(run_dir, tmp_path_factory):
    return hub.save_pretrained(run_dir, tmp_path_factory.mktemp("out") / "repo", repo_id="org/fer")


def _copy(repo, tmp_path):
    return Path(shutil.copytree(repo, tmp_path / "copy"))


def _files(directory):
    return {p.relative_to(directory).as_posix() for p in Path(directory).rglob("*") if p.is_file()}


def _assert_same_model(a, b):
    x, _ = _toy()
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(a.predict_proba(x), b.predict_proba(x), atol=1e-6)
    np.testing.assert_array_equal(a.gaussian_ids, b.gaussian_ids)
    np.testing.assert_array_equal(a.gaussian_classes, b.gaussian_classes)
    np.testing.assert_allclose(a.gaussian_means, b.gaussian_means)
    assert a.class_names == b.class_names and a.sigma == b.sigma


def _fake_hub(monkeypatch, fail_with=None):
    """Replace HfApi's network methods; record what would be sent (and the folder's files)."""
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", self.token, {"repo_id": repo_id, **kwargs}))
        if fail_with is not None:
            raise fail_with
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        contents = {name: (folder / name).read_bytes() for name in _files(folder)}
        calls.append(("upload_folder", self.token, {**kwargs, "contents": contents}))

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return calls


def _script():
    spec = importlib.util.spec_from_file_location("push_to_hub_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ round trip
def test_save_pretrained_writes_the_hub_layout_and_loads_back_identically(trained, repo, run_dir):
    assert _files(repo) == REPO_FILES  # logs/ and checkpoints/ stay behind
    loaded = hub.load_pretrained(repo)
    _assert_same_model(trained, loaded.model)
    assert isinstance(loaded.model, keras_sgm.SGMModel)
    with h5py.File(repo / "model.weights.h5") as weights:  # published without optimizer state
        assert sorted(weights) == ["encoder", "head", "vars"] and len(weights["vars"]) == 0
        gaussians = ["gaussian_classes", "gaussian_ids", "gaussian_means"]
        assert sorted(weights["head"]["vars"]) == gaussians  # the head's own state
    assert loaded.model.gaussian_ids.tolist() == [0, 1, 10, 11, 20, 21]
    assert loaded.model.gaussian_classes.tolist() == [0, 0, 1, 1, 2, 2]
    assert loaded.class_names == CLASS_NAMES
    assert loaded.metrics == _metrics()
    run_config = json.loads((run_dir / "config.json").read_text())
    assert loaded.config == {
        k: v for k, v in run_config.items() if k not in ("data_dir", "tfds_dir", "output")
    }
    TrainConfig.from_dict(loaded.config)  # still a valid training config
    assert loaded.gallery is None
    assert [p.name for p in loaded.figures] == ["retrieval.png", "tsne.png"]
    info = loaded.info
    assert info["library"] == "keras_sgm" and info["format_version"] == hub.FORMAT_VERSION
    assert info["class_names"] == CLASS_NAMES and info["num_gaussians"] == 6
    assert info["embedding_dim"] == 4 and set(info["files"]) == REPO_FILES - {"keras_sgm.json"}
    assert keras_sgm.hub.from_pretrained(str(repo)).class_names == CLASS_NAMES


def test_the_hub_path_downloads_a_snapshot_and_keras_hf_loading_reads_it(
    trained, repo, monkeypatch
):
    requested = []

    def snapshot_download(repo_id, **kwargs):
        requested.append((repo_id, kwargs.get("revision")))
        return str(repo)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    _assert_same_model(trained, hub.from_pretrained("org/fer", revision="v1"))
    _assert_same_model(trained, hub.from_pretrained("hf://org/fer"))
    # Keras' own hf:// loading reads the same layout (its README is replaced by our card).
    _assert_same_model(trained, keras.saving.load_model("hf://org/fer"))
    assert requested == [("org/fer", "v1"), ("org/fer", None), ("org/fer", None)]


def test_a_local_directory_loads_without_huggingface_hub(trained, repo, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    _assert_same_model(trained, hub.from_pretrained(repo))
    with pytest.raises(ImportError, match=r"pip install 'keras-sgm\[hub\]'"):
        hub.from_pretrained("org/not-here")


# ------------------------------------------------------------------ model card
def _front_matter(text):
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_the_card_has_the_front_matter_sections_and_the_runs_numbers(repo):
    text = (repo / "README.md").read_text()
    meta = _front_matter(text)
    assert meta["library_name"] == "keras"
    assert meta["pipeline_tag"] == "image-feature-extraction"
    assert {"keras_sgm", "metric-learning", "facial-expression-recognition"} <= set(meta["tags"])
    assert meta["datasets"] == ["synthetic_faces"]
    card = ModelCard.load(repo / "README.md")
    assert card.data.library_name == "keras" and card.data.model_name == "fer"
    reported = {
        (r.task_type, r.metric_type, r.metric_name): r.metric_value for r in card.data.eval_results
    }
    metrics = _metrics()
    classify, embed, knn = "image-classification", "image-feature-extraction", "kNN, K=11"
    expected = {
        (classify, "accuracy", f"{knn}: accuracy"): metrics["knn_accuracy"],
        (classify, "precision", f"{knn}: precision (macro)"): metrics["knn_precision"],
        (classify, "recall", f"{knn}: recall (macro)"): metrics["knn_recall"],
        (classify, "f1", f"{knn}: F1 (2PR/(P+R) of macro P, R)"): metrics["knn_f1"],
        (classify, "accuracy", "Bayes, the model's Gaussians: accuracy"): metrics["bayes_accuracy"],
        (embed, "nmi", "k-means clustering: NMI"): metrics["nmi"],
        (embed, "f1", "k-means clustering: F1 (pairwise)"): metrics["cluster_f1"],
    }
    for key, name in (("recall_at_k", "Recall"), ("acc_at_k", "Acc")):
        for k, value in metrics[key].items():
            metric = f"{key.removesuffix('_k')}_{k}"
            expected[(embed, metric, f"retrieval in the test split: {name}@{k}")] = value
    assert reported == expected  # the numbers of metrics.json, exactly
    assert all(r.dataset_split == "test" for r in card.data.eval_results)
    for section in (
        "## Intended use",
        "## Training data",
        "## Evaluation",
        "## Limitations and bias",
        "## How to load",
    ):
        assert section in text
    assert "subjective" in text and "skewed" in text
    assert 'keras_sgm.from_pretrained("org/fer")' in text
    assert "say nothing about recognising real" in text  # the synthetic-data warning
    assert "dgms_subclass_nmi" in text  # a key the model-index does not know is still shown
    assert "![t-SNE of the test embeddings](figures/tsne.png)" in text
    assert "generated automatically" not in text  # not Keras' generic hf:// card
    assert "{{" not in text and "{%" not in text
    for name in _files(repo):
        if name.endswith((".md", ".json", ".csv")):
            assert LOCAL_PATH not in (repo / name).read_text(), name


def test_the_card_keeps_only_the_metrics_present(trained):
    text = hub.render_model_card(
        trained,
        metrics={"nmi": 0.5, "recall_at_k": {"2": 0.9, "1": 0.8}, "knn_f1": float("nan")},
    )
    card = ModelCard(text)
    assert [(r.metric_type, r.metric_value) for r in card.data.eval_results] == [
        ("nmi", 0.5),
        ("recall_at_1", 0.8),
        ("recall_at_2", 0.9),
    ]
    bare = hub.render_model_card(trained)
    meta = _front_matter(bare)
    assert "model-index" not in meta and meta["library_name"] == "keras"
    assert "No evaluation was published" in bare and "No training configuration" in bare
    rows = hub.evaluation_results({"knn_accuracy": 0.9, "acc_at_k": {"4": 0.5}}, knn_k=7)
    assert [(r["source"], r["task"], r["value"]) for r in rows] == [
        ("knn_accuracy", "kNN, K=7", 0.9),
        ("acc_at_k/4", "retrieval in the test split", 0.5),
    ]


# ------------------------------------------------------------------ bad repos
def test_a_directory_that_is_not_a_keras_sgm_repo_is_named(repo, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"not a keras_sgm model repo: it has no keras_sgm\.json"):
        hub.from_pretrained(tmp_path / "empty")
    with pytest.raises(ValueError, match="is a file"):
        hub.from_pretrained(repo / "README.md")

    copy = _copy(repo, tmp_path)
    (copy / "model.weights.h5").unlink()
    (copy / "figures" / "tsne.png").unlink()
    with pytest.raises(ValueError, match=r"missing model\.weights\.h5, figures/tsne\.png"):
        hub.from_pretrained(copy)

    info = json.loads((repo / "keras_sgm.json").read_text())
    shutil.copyfile(repo / "model.weights.h5", copy / "model.weights.h5")
    (copy / "keras_sgm.json").write_text(json.dumps({**info, "files": ["../../etc/passwd"]}))
    with pytest.raises(ValueError, match=r"missing \.\./\.\./etc/passwd"):
        hub.from_pretrained(copy)
    (copy / "keras_sgm.json").write_text(json.dumps({**info, "format_version": 99, "files": []}))
    with pytest.raises(ValueError, match="format 99.*upgrade keras_sgm"):
        hub.from_pretrained(copy)


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_a_damaged_weights_file_is_named(repo, tmp_path, damage):
    copy = _copy(repo, tmp_path)
    weights = copy / "model.weights.h5"
    data = weights.read_bytes()
    rng = np.random.default_rng(0)
    garbage = data[: len(data) // 2] if damage == "truncated" else rng.bytes(len(data))
    weights.write_bytes(garbage)
    with pytest.raises(ValueError, match=r"model\.weights\.h5 is not a readable HDF5 weights file"):
        hub.from_pretrained(copy)


def test_a_truncated_gallery_is_named(repo, tmp_path):
    copy = _copy(repo, tmp_path)
    gallery = copy / "gallery.npz"
    hub.Gallery(np.ones((6, 8), "float32"), np.arange(6) % 2).save(gallery)
    gallery.write_bytes(gallery.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"Cannot read the gallery .*gallery\.npz: it is damaged"):
        hub.load_pretrained(copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": "config.json"}, "'files' must be a list of file names; received 'config.json'"),
        ({"files": [1, 2]}, r"'files' must be a list of file names; received \[1, 2\]"),
        ({"format_version": True}, "format_version must be a whole number >= 1; received True"),
        ({"format_version": -1}, "format_version must be a whole number >= 1; received -1"),
        ({"class_names": "anger"}, "'class_names' must be a list of strings"),
        ({"class_names": ["a", "b"]}, r"lists class_names \['a', 'b'\] but the model's are"),
    ],
)
def test_a_malformed_marker_is_refused_by_name(repo, tmp_path, change, message):
    copy = _copy(repo, tmp_path)
    info = json.loads((repo / "keras_sgm.json").read_text())
    (copy / "keras_sgm.json").write_text(json.dumps({**info, **change}))
    with pytest.raises(ValueError, match=message) as caught:
        hub.from_pretrained(copy)
    assert "keras_sgm.json" in str(caught.value)


def test_class_names_shorter_than_the_gaussians_are_refused(repo, tmp_path):
    copy = _copy(repo, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["config"]["class_names"] = config["config"]["class_names"][:1]
    (copy / "config.json").write_text(json.dumps(config))
    info = json.loads((copy / "keras_sgm.json").read_text())
    (copy / "keras_sgm.json").write_text(json.dumps({**info, "class_names": None}))
    with pytest.raises(ValueError, match="names 1 classes .* class ids up to"):
        hub.from_pretrained(copy)


def test_a_repo_holding_another_keras_model_is_refused(repo, tmp_path):
    copy = _copy(repo, tmp_path)
    other = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    other.save(copy, zipped=False)  # Keras' own hf:// layout, not an SGMModel
    with pytest.raises(ValueError, match="holds a Keras 'Sequential', not a keras_sgm SGMModel"):
        hub.from_pretrained(copy)


def _lambda_model():
    encoder = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4), keras.layers.Lambda(lambda t: 2.0 * t)]
    )
    return keras_sgm.SGMModel(encoder, class_names=CLASS_NAMES)


def test_a_lambda_layer_is_refused_under_safe_mode(repo, tmp_path):
    copy = _copy(repo, tmp_path)
    _lambda_model().save(copy, zipped=False)  # a forged repo: marker and files all present
    with pytest.raises(ValueError, match="Refused to load .*Lambda.*safe_mode"):
        hub.from_pretrained(copy)
    with pytest.raises(ValueError, match="Refused to publish .*Lambda"):
        hub.save_pretrained(_lambda_model(), tmp_path / "published")
    assert not (tmp_path / "published").exists()


def test_a_pickled_gallery_is_refused(repo, tmp_path):
    copy = _copy(repo, tmp_path)
    np.savez(copy / "gallery.npz", embeddings=np.array([{"code": 1}], dtype=object), labels=[0])
    with pytest.raises(ValueError, match="Cannot read the gallery .*allow_pickle=False"):
        hub.load_pretrained(copy)


# ------------------------------------------------------------------ galleries
def test_a_gallery_round_trips_and_thumbnails_follow_the_data_licence(trained, run_dir, tmp_path):
    x, y = _toy()
    images = np.random.default_rng(0).random((len(y), 8, 8, 1)).astype("float32")
    gallery = hub.Gallery(trained.predict(x, verbose=0), y, np.uint8(images * 255))
    out = hub.save_pretrained(run_dir, tmp_path / "with_gallery", gallery=gallery)
    loaded = hub.load_pretrained(out).gallery
    np.testing.assert_array_equal(loaded.embeddings, gallery.embeddings)
    np.testing.assert_array_equal(loaded.labels, y)
    np.testing.assert_array_equal(loaded.thumbnails, gallery.thumbnails)
    assert (
        "retrieval gallery of 48 embeddings with labels and thumbnails"
        in (out / "README.md").read_text()
    )

    licensed = _write_run(tmp_path / "affectnet_run", trained, dataset="affectnet")
    with pytest.raises(ValueError, match="'affectnet' dataset, whose licence"):
        hub.save_pretrained(licensed, tmp_path / "refused", gallery=gallery)
    kept = hub.save_pretrained(
        licensed, tmp_path / "asserted", gallery=gallery, allow_thumbnails=True
    )
    assert hub.load_pretrained(kept).gallery.thumbnails is not None
    card = (kept / "README.md").read_text()
    assert "**AffectNet**" in card and "non-commercial research only" in card
    assert "synthetic" not in card.lower()
    dropped = hub.save_pretrained(
        licensed, tmp_path / "dropped", gallery=gallery, allow_thumbnails=False
    )
    assert hub.load_pretrained(dropped).gallery.thumbnails is None

    with pytest.raises(ValueError, match="3-d embeddings but the model embeds in 4"):
        hub.save_pretrained(run_dir, tmp_path / "bad", gallery=hub.Gallery(x[:, :3], y))
    with pytest.raises(ValueError, match="Gallery labels must be whole class ids; row 0"):
        hub.Gallery(x[:, :4], y + 0.5)
    with pytest.raises(ValueError, match="thumbnails need images"):
        hub.Gallery.from_images(trained, x, y, thumbnails=True)


def test_gallery_from_images_embeds_and_keeps_uint8_thumbnails():
    encoder = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    model = keras_sgm.SGMModel(encoder)
    images = np.linspace(0.0, 1.0, 5 * 64, dtype="float32").reshape(5, 8, 8, 1)
    gallery = hub.Gallery.from_images(model, images, np.arange(5), thumbnails=True)
    np.testing.assert_allclose(gallery.embeddings, model.predict(images, verbose=0), atol=1e-6)
    assert gallery.thumbnails.dtype == np.uint8
    assert gallery.thumbnails.min() == 0 and gallery.thumbnails.max() == 255
    assert hub.Gallery.from_images(model, images, np.arange(5)).thumbnails is None


# ------------------------------------------------------------------ bad input
def test_malformed_repo_ids_are_refused(trained, tmp_path):
    with pytest.raises(ValueError, match="neither an existing directory nor a valid Hub repo id"):
        hub.from_pretrained("not a repo!!")
    with pytest.raises(ValueError, match="valid Hub repo id"):
        hub.push_to_hub(trained, "org/name/extra", token=TOKEN)
    with pytest.raises(ValueError, match="lacks its 'ORG/' part"):
        hub.push_to_hub(trained, "just-a-name", token=TOKEN)
    with pytest.raises(ValueError, match="valid Hub repo id"):
        hub.save_pretrained(trained, tmp_path / "x", repo_id="-bad-/name")


def test_no_token_fails_before_any_network_call(run_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    calls = _fake_hub(monkeypatch)
    with pytest.raises(ValueError, match="No Hugging Face token: log in with `hf auth login`"):
        hub.push_to_hub(run_dir, "org/fer")
    assert calls == []


def test_push_to_hub_uploads_the_layout_and_never_writes_the_token(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # huggingface_hub's stored-login lookup finds it
    calls = _fake_hub(monkeypatch)
    url = hub.push_to_hub(run_dir, "org/fer", private=True, license="apache-2.0")
    assert url == "https://huggingface.co/org/fer"
    (create, token_a, created), (upload, token_b, uploaded) = calls
    assert (create, upload) == ("create_repo", "upload_folder")
    assert token_a == token_b == TOKEN  # sent to the API client, and nowhere else
    assert created == {
        "repo_id": "org/fer",
        "private": True,
        "exist_ok": True,
        "repo_type": "model",
    }
    assert uploaded["repo_id"] == "org/fer" and uploaded["repo_type"] == "model"
    contents = uploaded["contents"]
    assert set(contents) == REPO_FILES
    assert not any(TOKEN.encode() in data for data in contents.values())
    assert not Path(uploaded["folder_path"]).exists()  # the temporary directory is gone
    meta = _front_matter(contents["README.md"].decode())
    assert meta["license"] == "apache-2.0" and meta["model-index"][0]["name"] == "fer"
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err

    hub.push_to_hub(run_dir, "org/fer", token="hf_other")  # public: the Hub's default
    assert calls[2][2]["private"] is None and calls[2][1] == "hf_other"


def test_hub_failures_give_clear_messages_without_the_token(run_dir, repo, monkeypatch):
    response = types.SimpleNamespace(status_code=401, headers={}, request=None)
    refused = errors.HfHubHTTPError(f"401 Unauthorized (token {TOKEN})", response=response)
    _fake_hub(monkeypatch, fail_with=refused)
    with pytest.raises(
        PermissionError, match="refused pushing to 'org/fer' \\(HTTP 401\\)"
    ) as caught:
        hub.push_to_hub(run_dir, "org/fer", token=TOKEN)
    assert TOKEN not in str(caught.value)

    _fake_hub(monkeypatch, fail_with=ConnectionError("[Errno -2] Name or service not known"))
    with pytest.raises(ConnectionError, match="Hugging Face Hub was unreachable"):
        hub.push_to_hub(run_dir, "org/fer", token=TOKEN)

    def offline(repo_id, **kwargs):
        raise errors.LocalEntryNotFoundError("Got: ConnectError: Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(
        ConnectionError,
        match="Could not download 'org/fer': the Hugging Face Hub was unreachable.*local directory",
    ):
        hub.from_pretrained("org/fer")

    def missing(repo_id, **kwargs):
        raise errors.RepositoryNotFoundError(
            "404", response=types.SimpleNamespace(status_code=404, headers={}, request=None)
        )

    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    with pytest.raises(ValueError, match="No model repo 'org/fer' on the Hugging Face Hub"):
        hub.from_pretrained("org/fer")


def test_unfinished_runs_and_occupied_directories_are_refused(run_dir, repo, tmp_path):
    unfinished = Path(shutil.copytree(run_dir, tmp_path / "unfinished"))
    (unfinished / "metrics.json").unlink()
    with pytest.raises(ValueError, match="did not finish"):
        hub.save_pretrained(unfinished, tmp_path / "a")
    with pytest.raises(ValueError, match="not a training run: it has no model.keras"):
        hub.save_pretrained(tmp_path, tmp_path / "b")
    with pytest.raises(ValueError, match="Only keras_sgm SGMModels"):
        hub.save_pretrained(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), tmp_path)

    with pytest.raises(ValueError, match="is not empty"):
        hub.save_pretrained(run_dir, run_dir)  # never writes into (or deletes) a run
    with pytest.raises(ValueError, match="No model card template"):
        hub.save_pretrained(run_dir, tmp_path / "c", template=tmp_path / "missing.md")
    assert not (tmp_path / "c").exists()  # nothing half-written is left behind
    copy = _copy(repo, tmp_path)
    (copy / "stale.txt").write_text("from an earlier save")
    hub.save_pretrained(run_dir, copy, overwrite=True)  # replaces an earlier keras_sgm repo
    assert _files(copy) == REPO_FILES


# ------------------------------------------------------------------ the script
def test_script_dry_run_writes_a_loadable_repo(trained, run_dir, tmp_path, monkeypatch, capsys):
    x, y = _toy()
    monkeypatch.setattr(
        "keras_sgm.hub.gallery.load_splits",
        lambda config: ((x, y), None, (x[:9], y[:9]), CLASS_NAMES),
    )
    script = _script()
    out = tmp_path / "dry"
    assert script.main([str(run_dir), "--dry-run", str(out), "--gallery", "test"]) == 0
    assert "nothing was sent" in capsys.readouterr().out
    loaded = hub.load_pretrained(out)
    _assert_same_model(trained, loaded.model)
    np.testing.assert_allclose(
        loaded.gallery.embeddings, trained.predict(x[:9], verbose=0), atol=1e-6
    )
    assert _files(out) == REPO_FILES | {"gallery.npz"}


def test_script_pushes_with_a_token_from_the_environment(run_dir, monkeypatch, capsys):
    script = _script()
    calls = _fake_hub(monkeypatch)
    monkeypatch.setenv("MY_WRITE_TOKEN", TOKEN)
    argv = [str(run_dir), "--repo-id", "org/fer", "--private", "--token-env", "MY_WRITE_TOKEN"]
    assert script.main(argv) == 0
    out = capsys.readouterr()
    assert "Pushed to https://huggingface.co/org/fer" in out.out
    assert TOKEN not in out.out + out.err
    assert calls[0][1] == TOKEN and calls[0][2]["private"] is True


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--repo-id", "org/fer"], "No Hugging Face token"),
        (["--repo-id", "org/a/b"], "valid Hub repo id"),
        ([], "--repo-id ORG/NAME is required"),
        (["--repo-id", "org/fer", "--token-env", "UNSET_VAR_X"], "UNSET_VAR_X is unset or empty"),
    ],
)
def test_script_user_errors_are_one_line(run_dir, monkeypatch, capsys, argv, message):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("UNSET_VAR_X", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    calls = _fake_hub(monkeypatch)
    assert _script().main([str(run_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1
    assert calls == []


# ------------------------------------------------------------ exports (issue 20)
def test_script_exports_onnx_and_litert_into_the_repo_and_the_card(
    trained, run_dir, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ai_edge_litert")
    from keras_sgm import deploy

    calls = _fake_hub(monkeypatch)
    monkeypatch.setenv("MY_WRITE_TOKEN", TOKEN)
    argv = [str(run_dir), "--repo-id", "org/fer", "--token-env", "MY_WRITE_TOKEN"]
    assert _script().main([*argv, "--export", "onnx", "litert"]) == 0
    assert "exports/model.onnx, exports/model.tflite" in capsys.readouterr().out
    sent = calls[-1][2]["contents"]
    assert set(sent) == REPO_FILES | {"exports/model.onnx", "exports/model.tflite"}
    card = sent["README.md"].decode()
    assert "## Exported for serving" in card and "onnxruntime.InferenceSession" in card
    assert "| `exports/model.tflite` | LiteRT (TensorFlow Lite) |" in card
    marker = json.loads(sent["keras_sgm.json"])
    assert "exports/model.onnx" in json.dumps(marker)
    # what was sent runs: the repo written the same way loads, and its ONNX file matches
    out = tmp_path / "dry"
    assert _script().main([str(run_dir), "--dry-run", str(out), "--export", "onnx"]) == 0
    x, _ = _toy()
    report = deploy.compare(hub.load_pretrained(out).model, out / "exports" / "model.onnx", x[:5])
    assert report["posteriors"] <= 1e-5 and report["class_index_agreement"] == 1.0
    assert deploy.read_metadata(out / "exports" / "model.onnx")["class_names"] == CLASS_NAMES


def test_a_card_without_exports_has_no_export_section(repo):
    assert "Exported for serving" not in (repo / "README.md").read_text()


def test_an_unknown_export_format_or_a_missing_converter_writes_nothing(
    run_dir, tmp_path, monkeypatch
):
    import sys

    with pytest.raises(ValueError, match="Unknown export format 'tfjs'"):
        hub.save_pretrained(run_dir, tmp_path / "a", exports=["tfjs"])
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ImportError, match=r"pip install keras-sgm\[export\]"):
        hub.save_pretrained(run_dir, tmp_path / "b", exports=["onnx"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
