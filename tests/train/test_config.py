"""The training config (difflab.train.config): checks declared with each field, and runs written
by difflab 0.1 (tests/train/data/run-0.1, made by that version: config.json, one checkpoint at
step 4, metrics) still load, train and resume."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

import difflab
from difflab.train import RESUMABLE_FIELDS, TrainConfig, TrainError, load_run, train

RUN_01 = Path(__file__).parent / "data" / "run-0.1"


def test_every_field_has_its_check_where_it_is_declared():
    fields = dataclasses.fields(TrainConfig)
    assert all(f.metadata.get("check") is not None for f in fields)
    assert RESUMABLE_FIELDS == {f.name for f in fields if f.metadata["resumable"]}
    assert {"steps", "sample_every", "hooks", "run_dir"} <= RESUMABLE_FIELDS
    assert not {"lr", "seed", "net", "task"} & RESUMABLE_FIELDS
    for name, bad in (("task", ""), ("task_kwargs", []), ("sampler", "nope"), ("log_every", 0),
                      ("hooks", {"ema_loss": "often"}), ("cond_drop", 1.0)):
        with pytest.raises(TrainError, match=f"config field {name} = ") as e:
            TrainConfig(**{name: bad}).validate()
        assert "\n" not in str(e.value)


def test_a_0_1_config_loads_with_the_defaults_of_new_fields():
    doc = json.loads((RUN_01 / "config.json").read_text())
    assert doc["difflab_version"] == "0.1.0" and "task" not in doc["config"]
    cfg = TrainConfig.from_json(RUN_01 / "config.json")
    assert cfg.task == "generate" and cfg.hooks == {} and cfg.task_kwargs == {}
    assert cfg.prediction == "v" and cfg.class_cond  # the stored values, not the defaults


def test_a_0_1_run_samples_and_resumes_exactly(tmp_path):
    """Resume the 0.1 run from its step-4 checkpoint to step 8; train the same config straight
    to 8 with this version: the weights are identical, so this version also trains steps 1-4
    exactly as 0.1 did, and reads 0.1's optimizer, EMA and RNG states."""
    old = tmp_path / "old"
    shutil.copytree(RUN_01, old)
    _, _, ema = load_run(old)
    x = difflab.sample(ema, "linear", shape=(8, 2), steps=4, seed=0, cond=torch.zeros(8).long())
    assert torch.isfinite(x).all()

    cfg = TrainConfig.from_json(old / "config.json")
    train(cfg.replace(run_dir=str(old), steps=8), resume=True)
    train(cfg.replace(run_dir=str(tmp_path / "new"), steps=8))
    (_, m_old, e_old), (_, m_new, e_new) = load_run(old), load_run(tmp_path / "new")
    for a, b in ((m_old, m_new), (e_old, e_new)):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                     b.state_dict().values(), strict=True))
    doc = json.loads((old / "config.json").read_text())
    assert doc["difflab_version"] == difflab.__version__ and doc["config"]["task"] == "generate"
