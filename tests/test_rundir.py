"""`RunDir`: a run folder's files, its state, and the checks made before training."""

import dataclasses
import json

import pytest

from keras_sgm.runs import RunDir, TrainConfig


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


def test_a_config_written_before_a_setting_existed_reads_as_it_was_meant(tmp_path):
    run = RunDir(tmp_path)
    saved = dataclasses.asdict(TrainConfig(dataset="digits"))
    del saved["augment"], saved["dgms_loss"], saved["val_fraction"], saved["holdout_classes"]
    run.config_path.write_text(json.dumps({**saved, "embedding_radius": None}))
    values = run.read_config()
    assert values["augment"] is False and values["dgms_loss"] == "subclass"
    assert values["val_fraction"] == 0.0 and values["holdout_classes"] is None
    assert values["embedding_radius"] == 0.0  # null meant unnormalised then
    config = TrainConfig.from_dict({**values, "output": str(tmp_path)})
    assert run.changed_settings(config) == ""
    assert run.changed_settings(dataclasses.replace(config, epochs=9)) == ""  # resumable
    assert run.changed_settings(dataclasses.replace(config, sigma=2.0)) == "sigma: 1.0 -> 2.0"


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
