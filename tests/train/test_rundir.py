"""The run directory (difflab.train.rundir): its layout, the start and resume checks, the
metrics file."""

import json

import pytest

from difflab.train import RunDir, TrainConfig, read_hook_metrics, read_metrics
from difflab.train import rundir as R


def test_layout():
    run = RunDir("runs/x")
    assert run.config_file.as_posix() == "runs/x/config.json"
    assert run.metrics_file.as_posix() == "runs/x/metrics.jsonl"
    assert run.checkpoints.as_posix() == "runs/x/checkpoints"
    assert run.training_picture(120).as_posix() == "runs/x/samples/step-00000120.png"
    assert run.sample_picture(3).as_posix() == "runs/x/samples/sample-3.png"
    assert run.latest_checkpoint() is None and run.list_checkpoints() == []


def test_check_start(tmp_path):
    cfg = TrainConfig(run_dir=str(tmp_path / "run"))
    assert R.check_start(cfg, resume=False, force=False) is None  # a new folder
    assert "nothing to resume" in R.check_start(cfg, resume=True, force=False)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert "already exists" in R.check_start(cfg, resume=False, force=False)
    assert R.check_start(cfg, resume=False, force=True) is None
    R.write_config(tmp_path / "run", cfg, {"data_shape": [2]})
    assert "holds no checkpoint" in R.check_start(cfg, resume=True, force=False)
    (tmp_path / "file").write_text("")
    assert "is a file" in R.check_start(cfg.replace(run_dir=str(tmp_path / "file")), False, False)
    assert R.read_resolved(tmp_path / "run") == {"data_shape": [2]}
    assert R.load_config(tmp_path / "run") == cfg


def test_resume_may_change_only_resumable_fields(tmp_path, toys):
    from difflab.train import train

    run = tmp_path / "run"
    cfg = toys.toy_config(run, steps=2)
    train(cfg, net=toys.make_net(), dataset=toys.ToyPoints())
    assert R.check_start(cfg.replace(steps=5, sample_every=7, hooks={"ema_loss": 3}), True,
                         False) is None
    why = R.check_start(cfg.replace(lr=0.5, seed=3), True, False)
    assert "cannot resume" in why and "lr 0.003 -> 0.5" in why and "seed 0 -> 3" in why


def test_clear_removes_only_what_difflab_wrote(tmp_path):
    run = tmp_path / "run"
    for name in ("checkpoints/step-00000001", "samples"):
        (run / name).mkdir(parents=True)
    for name in ("config.json", "metrics.jsonl", "notes.txt"):
        (run / name).write_text("x")
    R.clear(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_metrics_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = R.MetricsLog(path)
    for rec in ({"step": 5, "loss": 1.0}, {"step": 5, "hook": "ema_loss", "ema_loss": 0.9},
                {"step": 10, "loss": 0.5}, {"step": 10, "hook": "ema_loss", "ema_loss": 0.4}):
        log.write(rec)
    log.close()
    with open(path, "a") as f:
        f.write('{"step": 15, "lo')  # a crash in the middle of a line
    assert [r["step"] for r in read_metrics(path)] == [5, 10]
    assert [r["ema_loss"] for r in read_hook_metrics(path)] == [0.9, 0.4]
    R.truncate_metrics(path, 5)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [5, 5]
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_load_config_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ValueError, match="is not a run directory: it has no config.json"):
        R.load_config(tmp_path)
