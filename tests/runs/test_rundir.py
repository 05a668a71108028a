"""`RunDir`: a run folder's files, its state, and the checks made before training."""

import ast
import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

import keras_sgm.runs
from keras_sgm.runs import DGMSConfig, RunDir, TrainConfig
from keras_sgm.runs.config import SETTINGS


def test_the_layout_is_named_once(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.config_path == tmp_path / "run" / "config.json"
    assert run.model_path.name == "model.keras" and run.classifier_path.name == "classifier.keras"
    assert run.checkpoint_path == tmp_path / "run" / "checkpoints" / "last.keras"
    assert run.worker("worker", 2).path == tmp_path / "run" / "workers" / "worker_2"
    assert not run.finished and run.finished_epochs() == 0 and run.dgms_level() == 0


def test_state_is_read_from_the_backup_and_the_dgms_state(tmp_path):
    run = RunDir(tmp_path)
    run.backup.mkdir()
    (run.backup / "training_metadata.json").write_text(json.dumps({"epoch": 3}))
    run.dgms_state_path.write_text(json.dumps({"level": 2}))
    assert run.finished_epochs() == 3 and run.dgms_level() == 2
    run.write_metrics({"nmi": 0.5})
    assert run.finished and run.read_metrics() == {"nmi": 0.5}
    assert not run.backup.exists()  # a finished run has nothing left to resume


# config.json files as keras_sgm wrote them at commit 7f95e8b (`RunDir.write_config` of
# `TrainConfig.from_dict(...).validated().resolved()`, as `train` does), kept verbatim.
DGMS_RUN_7F95E8B = """\
{
  "dataset": "digit_pairs",
  "data_dir": null,
  "tfds_dir": null,
  "dataset_config": null,
  "method": "sgm",
  "arch": "fmpnet",
  "epochs": 6,
  "embedding_dim": 64,
  "embedding_radius": 2.0,
  "dropout": 0.0,
  "sigma": 1.0,
  "leave_one_out": false,
  "margin": 0.2,
  "mining": "batch_hard",
  "samples_per_class": 8,
  "classes_per_batch": null,
  "image_size": 32,
  "channels": 1,
  "learning_rate": 0.0003,
  "augment": false,
  "max_train_samples": null,
  "skip_unreadable": false,
  "val_fraction": 0.0,
  "holdout_classes": null,
  "knn_k": 11,
  "dgms_levels": 2,
  "dgms_clusters": 3,
  "dgms_every": 2,
  "dgms_max_subclasses": 4,
  "dgms_representation": "embedding",
  "dgms_method": "em",
  "dgms_schedule": "recluster",
  "dgms_covariance": "full",
  "dgms_pca_dims": 0,
  "dgms_loss": "both",
  "strategy": "none",
  "replicas": null,
  "mixed_precision": null,
  "seed": 3,
  "output": "runs/dgms",
  "resume": false,
  "overwrite": false,
  "verbose": 0
}
"""

FOLDER_RUN_7F95E8B = """\
{
  "dataset": "image_folder",
  "data_dir": "/data/faces",
  "tfds_dir": null,
  "dataset_config": null,
  "method": "triplet",
  "arch": "resnet18",
  "epochs": 3,
  "embedding_dim": 32,
  "embedding_radius": 0.0,
  "dropout": 0.0,
  "sigma": 1.0,
  "leave_one_out": false,
  "margin": 0.3,
  "mining": "batch_hard",
  "samples_per_class": 4,
  "classes_per_batch": null,
  "image_size": 48,
  "channels": 1,
  "learning_rate": 0.0001,
  "augment": true,
  "max_train_samples": null,
  "skip_unreadable": false,
  "val_fraction": 0.2,
  "holdout_classes": "disc",
  "knn_k": 11,
  "dgms_levels": 0,
  "dgms_clusters": 2,
  "dgms_every": 1,
  "dgms_max_subclasses": null,
  "dgms_representation": "pixels",
  "dgms_method": "kmeans",
  "dgms_schedule": "split",
  "dgms_covariance": "spherical",
  "dgms_pca_dims": 64,
  "dgms_loss": "subclass",
  "strategy": "none",
  "replicas": null,
  "mixed_precision": null,
  "seed": 0,
  "output": "runs/folder",
  "resume": false,
  "overwrite": false,
  "verbose": 1
}
"""


def _saved_run(tmp_path, text, name="run"):
    run = RunDir(tmp_path / name)
    run.path.mkdir()
    run.config_path.write_text(text)
    return run


ADDED_SINCE_7F95E8B = {
    "weight_decay": 0.0,  # Adam, as every run trained before
    "lr_schedule": "constant",
    "warmup_epochs": 0,
    "train_per_class": None,  # every training image
    "label_noise": 0.0,
}
"""Settings added after 7f95e8b, at the values that reproduce how its runs trained."""


def test_a_dgms_run_saved_by_an_earlier_version_loads_and_resumes_as_it_ran(tmp_path):
    run = _saved_run(tmp_path, DGMS_RUN_7F95E8B)
    config = run.read_config()
    # What that version's RunDir.read_config + TrainConfig.from_dict gave, and its splitter got.
    assert config == TrainConfig(
        dataset="digit_pairs",
        image_size=32,
        epochs=6,
        learning_rate=3e-4,
        embedding_radius=2.0,
        dgms=DGMSConfig(
            levels=2,
            clusters=3,
            every=2,
            max_subclasses=4,
            representation="embedding",
            method="em",
            schedule="recluster",
            covariance_type="full",
            pca_dims=None,  # dgms_pca_dims 0: every column
        ),
        dgms_loss="both",
        seed=3,
        output="runs/dgms",
        verbose=0,
    )
    assert (config.trains_mixture, config.subclass_weight, config.trained_dgms_loss) == (
        True,
        1.0,
        "both",
    )
    resumed = run.resumed_config(epochs=8, verbose=1)
    assert resumed.resume and resumed.output == str(run.path) and resumed.epochs == 8
    assert run.changed_settings(resumed) == ""  # prepare() lets it resume
    assert run.changed_settings(dataclasses.replace(resumed, dgms_loss="mixture")) == (
        "dgms_loss: 'both' -> 'mixture'"
    )
    # Written again, the file keeps its keys and values (0 for every column is written null)
    # and gains the settings added since, at the values that train as that run trained.
    run.write_config(config)
    assert json.loads(run.config_path.read_text()) == {
        **json.loads(DGMS_RUN_7F95E8B),
        "dgms_pca_dims": None,
        **ADDED_SINCE_7F95E8B,
    }


def test_a_run_saved_by_an_earlier_version_is_written_back_unchanged(tmp_path):
    run = _saved_run(tmp_path, FOLDER_RUN_7F95E8B)
    config = run.read_config()
    assert (config.dataset, config.data_dir, config.method, config.arch) == (
        "image_folder",
        "/data/faces",
        "triplet",
        "resnet18",
    )
    assert (config.val_fraction, config.holdout_classes, config.augment) == (0.2, "disc", True)
    assert config.dgms == DGMSConfig() and not config.dgms.enabled
    run.write_config(config)
    written = json.loads(run.config_path.read_text())
    assert {key: written.pop(key) for key in ADDED_SINCE_7F95E8B} == ADDED_SINCE_7F95E8B
    # Less the settings added since, the same file, byte for byte (keys in their order).
    assert json.dumps(written, indent=2) + "\n" == FOLDER_RUN_7F95E8B


def test_a_config_written_before_a_setting_existed_reads_as_it_was_meant(tmp_path):
    saved = json.loads(DGMS_RUN_7F95E8B)
    for key in ("dgms_pca_dims", "augment", "dgms_schedule", "dgms_covariance"):
        del saved[key]
    for key in ("skip_unreadable", "dgms_loss", "val_fraction", "holdout_classes"):
        del saved[key]
    saved.update(embedding_radius=None, dgms_method="kmeans", dgms_max_subclasses=None)
    run = _saved_run(tmp_path, json.dumps(saved, indent=2))
    config = run.read_config()
    assert config.augment is False and config.dgms_loss == "subclass"
    assert config.val_fraction == 0.0 and config.holdout_classes is None
    assert config.radius == 0.0  # null meant unnormalised then
    assert (config.dgms.schedule, config.dgms.covariance_type) == ("split", "spherical")
    assert config.dgms.pca_dims is None  # every column, as splits were then
    assert run.changed_settings(config) == ""
    assert run.changed_settings(dataclasses.replace(config, epochs=9)) == ""  # resumable
    assert run.changed_settings(dataclasses.replace(config, sigma=2.0)) == "sigma: 1.0 -> 2.0"


def test_one_flat_dict_form_and_the_nested_one_read_alike():
    config = TrainConfig.from_dict(
        {"dataset": "digits", "dgms_levels": 1, "dgms_covariance": "full"}
    )
    flat = config.to_dict()
    assert "dgms" not in flat and (flat["dgms_levels"], flat["dgms_covariance"]) == (1, "full")
    assert list(flat) == list(SETTINGS)
    assert TrainConfig.from_dict(flat) == config
    nested = dataclasses.asdict(config)  # {"dgms": {"levels": 1, ...}, ...}
    assert TrainConfig.from_dict(nested) == config
    assert TrainConfig.from_dict({**nested, "dgms_levels": 2}).dgms.levels == 2  # flat on top
    with pytest.raises(ValueError, match=r"Unknown config keys \['dgms.level'\]"):
        TrainConfig.from_dict({"dgms": {"level": 1}})
    assert config.updated(dgms_clusters="3").dgms.clusters == 3


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path} is not a training run"):
        RunDir(tmp_path).train_config()


def test_prepare_refuses_to_replace_or_resume_what_is_not_there(tmp_path):
    run = RunDir(tmp_path / "run")
    config = TrainConfig(dataset="digits", output=str(run.path))
    with pytest.raises(ValueError, match="Nothing to resume.*no backup/"):
        run.prepare(dataclasses.replace(config, resume=True))
    assert run.prepare(config) == config
    assert run.figures.is_dir() and (run.path / "checkpoints").is_dir()
    run.model_path.write_text("a trained model")
    with pytest.raises(ValueError, match="already holds a trained model; pass --overwrite"):
        run.prepare(config)
    run.prepare(dataclasses.replace(config, overwrite=True))
    assert not run.model_path.exists()


def test_a_failure_removes_only_a_folder_the_block_made(tmp_path):
    made = RunDir(tmp_path / "new")
    with pytest.raises(RuntimeError), made.removed_on_failure():
        made.path.mkdir()
        raise RuntimeError("failed before training")
    assert not made.path.exists()
    kept = RunDir(tmp_path)
    with pytest.raises(RuntimeError), kept.removed_on_failure():
        raise RuntimeError("failed")
    assert tmp_path.is_dir()


def test_resuming_keeps_the_folder_and_resumes_whatever_the_changes_say(tmp_path):
    run = _saved_run(tmp_path, FOLDER_RUN_7F95E8B)
    config = run.resumed_config(resume=False, output="elsewhere", epochs=5)
    assert config.resume and config.output == str(run.path) and config.epochs == 5
    with pytest.raises(ValueError, match="Nothing to resume in .*no config.json"):
        RunDir(tmp_path / "empty").resumed_config()


RUNS = Path(keras_sgm.runs.__file__).parent
CONVENTIONAL = {"numpy": "np", "tensorflow": "tf"}


def _imports(path):
    """`(module, name, asname, in_function)` of every import in a source file (name None
    for `import module`)."""
    tree = ast.parse(path.read_text())
    local = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, alias.asname, id(node) in local
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                yield node.module, alias.name, alias.asname, id(node) in local


def _is_module(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize(
    "path",
    [*sorted(RUNS.glob("*.py")), RUNS.parent / "evaluation" / "report.py"],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_modules_are_imported_by_their_own_names_never_through_the_package_root(path):
    for module, name, asname, in_function in _imports(path):
        full = module if name is None else f"{module}.{name}"
        where = f"{path.name}: {full}"
        if path.parent == RUNS:
            assert module != "keras_sgm", f"{where}: import the real module, not the package root"
            # runs/ modules import one another at the top: no cycle to dodge
            assert not (in_function and full.startswith("keras_sgm.runs")), where
        if asname and _is_module(full):
            assert CONVENTIONAL.get(full) == asname, f"{where} imported as {asname}"


def test_the_config_imports_nothing_of_the_rest_of_runs():
    modules = {module for module, *_ in _imports(RUNS / "config.py")}
    assert not {m for m in modules if m and m.startswith("keras_sgm.runs")}
