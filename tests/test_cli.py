"""The `difflab` command: user mistakes are one line on stderr and exit 2, nothing is lost."""

import json

import pytest
import torch

import difflab.sampling
from difflab.cli import main


def _err(capsys) -> str:
    return capsys.readouterr().err.strip()


def test_train_info_sample_and_mistakes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "m"
    common = ["--steps", "20", "--sample-every", "0", "--checkpoint-every", "10",
              "--run-dir", str(run), "--no-progress"]
    assert main(["train", "moons", *common]) == 0
    config = (run / "config.json").read_bytes()
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    assert "mlp-2d" in out and "20 of 20 steps" in out and "step-00000020" in out
    assert main(["sample", str(run), "--num", "500", "--steps", "5"]) == 0
    assert (run / "samples" / "sample-0.png").stat().st_size > 1000
    assert main(["sample", str(run), "--num", "50", "--steps", "3", "--bf16",
                 "--out", str(tmp_path / "bf16.png")]) == 0
    assert (tmp_path / "bf16.png").stat().st_size > 1000

    capsys.readouterr()
    assert main(["train", "moons", *common]) == 2  # the run exists: refused, untouched
    err = _err(capsys)
    assert "already exists" in err and len(err.splitlines()) == 1
    assert (run / "config.json").read_bytes() == config

    assert main(["train", "moonz"]) == 2
    assert "unknown training preset 'moonz'; choose one of digits" in _err(capsys)
    assert main(["train", "moons", "--net", "unet-nope", "--run-dir", "x"]) == 2
    assert "unet-nope" in _err(capsys) and not (tmp_path / "x").exists()
    assert main(["info", str(tmp_path / "nowhere")]) == 2
    assert "not a run directory" in _err(capsys)
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in _err(capsys)

    for bad, says in ((["--num", "0"], "--num must be a positive"),
                      (["--gif", str(tmp_path / "g.gif")], "--gif needs an image run"),
                      (["--out", str(tmp_path)], "give a file name ending in .png"),
                      (["--gif", str(tmp_path / "g.png")], "ending in .gif")):
        assert main(["sample", str(run), *bad]) == 2
        err = _err(capsys)
        assert says in err and len(err.splitlines()) == 1, err

    def diverge(*args, **kwargs):
        raise difflab.sampling.SamplingError("sampling produced NaN or inf at step 3")

    monkeypatch.setattr("difflab.commands.sample", diverge)
    assert main(["sample", str(run)]) == 2
    err = _err(capsys)
    assert "NaN or inf at step 3" in err and len(err.splitlines()) == 1
    monkeypatch.undo()

    with open(run / "metrics.jsonl", "a") as f:  # a crash in the middle of a line
        f.write('{"step": 30, "lo')
    assert main(["info", str(run)]) == 0
    assert "last loss" in capsys.readouterr().out

    (run / "checkpoints" / "step-00000020" / "model.safetensors").write_bytes(b"truncated")
    assert main(["sample", str(run)]) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1 and "model.safetensors" in err


def test_train_from_a_config_file(tmp_path, capsys):
    from difflab.train.presets import TRAIN_PRESETS

    cfg = TRAIN_PRESETS["moons"].to_dict()
    cfg.update(steps=5, sample_every=0, checkpoint_every=0, progress=False,
               run_dir=str(tmp_path / "c"))
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    assert main(["train", "--config-file", str(path), "--lr", "0.002"]) == 0
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert json.dumps(saved).count("0.002") >= 1
    with pytest.raises(SystemExit):
        main(["train", "moons", "--no-such-field", "1"])


def test_resume_from_a_preset_uses_the_runs_own_config(tmp_path, capsys):
    run = tmp_path / "d"
    common = ["--sample-every", "0", "--no-progress", "--run-dir", str(run)]
    assert main(["train", "moons", "--steps", "3", "--lr", "0.0005", *common]) == 0
    assert main(["train", "moons", "--steps", "5", "--resume", *common]) == 0  # lr as stored
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["lr"] == 0.0005 and saved["steps"] == 5
    assert main(["train", "moons", "--steps", "6", "--lr", "0.1", "--resume", *common]) == 2
    assert "cannot resume" in _err(capsys)
    assert main(["train", "moons", "--steps", "6", "--resume", "--force", *common]) == 2
    assert "exclude each other" in _err(capsys)
    assert main(["train", "moons", "--dataset-kwargs", '{"nope": 1}', "--run-dir",
                 str(tmp_path / "x")]) == 2
    err = _err(capsys)
    assert "dataset 'moons' has no option 'nope'; its options:" in err and "_" not in err[:8]


def test_dict_fields_take_json(tmp_path, capsys):
    run = tmp_path / "k"
    common = ["--steps", "2", "--sample-every", "0", "--no-progress", "--run-dir", str(run)]
    assert main(["train", "moons", "--net-kwargs", '{"hidden": 48}', *common]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["net_kwargs"]["hidden"] == 48
    assert saved["resolved"]["net_kwargs"]["hidden"] == 48
    for bad, says in ((["--net-kwargs", "{hidden: 48}"], "is not JSON"),
                      (["--dataset-kwargs=[1, 2]"], "needs a JSON object"),
                      (["--schedule-kwargs"], "needs a JSON object")):
        capsys.readouterr()
        assert main(["train", "moons", *common, "--force", *bad]) == 2
        err = _err(capsys)
        assert says in err and len(err.splitlines()) == 1, err


def test_sample_uses_the_trained_data_shape(tmp_path, capsys):
    """A net trained on images of another size than its config's samples at the trained size;
    class-conditional grids have one row per class, or are square for a single --label."""
    import numpy as np
    from PIL import Image

    for i in range(4):
        (tmp_path / "data" / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((12, 12), 60 * i, np.uint8)).save(
            tmp_path / "data" / "ab"[i % 2] / f"{i}.png")
    run = tmp_path / "r"
    assert main(["train", "--config-file", str(_folder_config(tmp_path, run))]) == 0
    for extra, columns, rows in (([], 4, 2), (["--label", "1"], 3, 3)):
        assert main(["sample", str(run), "--num", "8", "--steps", "2", "--out",
                     str(tmp_path / "s.png"), *extra]) == 0
        w, h = Image.open(tmp_path / "s.png").size  # 12x12 images shown 3x, 2-pixel borders
        assert (w, h) == (2 + columns * 38, 2 + rows * 38), extra


def _folder_config(tmp_path, run):
    from difflab.train.presets import TRAIN_PRESETS

    cfg = TRAIN_PRESETS["digits"].to_dict()
    cfg.update(dataset="folder", dataset_kwargs={"root": str(tmp_path / "data"),
                                                 "image_size": 12, "channels": 1},
               net_kwargs={"num_classes": 2}, steps=2, batch_size=4, sample_every=0,
               checkpoint_every=0, progress=False, run_dir=str(run))
    path = tmp_path / "folder.json"
    path.write_text(json.dumps(cfg))
    return path


def test_an_unexpected_error_is_not_a_one_liner(tmp_path, capsys, monkeypatch):
    """A bug (an exception difflab did not raise on purpose, here from inside a network or a
    library) says it is unexpected, exits 1 and shows its traceback on request; a mistake
    difflab reports itself stays one line, exit 2, also with --traceback (then with the
    traceback above it)."""

    def bug(*args, **kwargs):  # as if torch or a user's network failed
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 2x8)")

    def foreign_value_error(*args, **kwargs):  # a ValueError, but not raised by difflab
        raise ValueError("math domain error")

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIFFLAB_TRACEBACK", raising=False)
    monkeypatch.setattr("difflab.commands.run_info", bug)
    assert main(["info", "somewhere"]) == 1
    err = _err(capsys)
    assert err.startswith("difflab: unexpected error: RuntimeError: mat1 and mat2")
    assert "--traceback" in err and "DIFFLAB_TRACEBACK=1" in err and "Traceback" not in err

    assert main(["info", "somewhere", "--traceback"]) == 1
    err = _err(capsys)
    assert "Traceback (most recent call last)" in err and "in bug" in err

    monkeypatch.setenv("DIFFLAB_TRACEBACK", "1")
    monkeypatch.setattr("difflab.commands.run_info", foreign_value_error)
    assert main(["info", "somewhere"]) == 1
    err = _err(capsys)
    assert "in foreign_value_error" in err and "unexpected error: ValueError" in err

    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert main(["info", str(tmp_path / "nowhere"), "--traceback"]) == 2
    err = _err(capsys)
    assert err.splitlines()[-1].startswith("difflab: error: ") and "Traceback" in err
    assert main(["info", str(tmp_path / "nowhere")]) == 2
    assert len(_err(capsys).splitlines()) == 1


def test_which_errors_are_the_users(tmp_path):
    """A file-system error about a path is the user's (one line); a ValueError is the user's
    only when a difflab `raise` statement raised it, not when a difflab expression failed."""
    from difflab.cli import is_user_error
    from difflab.train.rundir import load_config

    def caught(fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            return e
        raise AssertionError("no exception")

    assert is_user_error(caught(lambda: open(tmp_path / "missing.txt")))
    assert is_user_error(caught(lambda: load_config(tmp_path)))  # raise TrainError
    assert is_user_error(caught(lambda: difflab.sampling.sample(lambda x, t: x, "linear",
                                                                shape=(2, 2), steps=0)))
    assert not is_user_error(caught(lambda: int("x")))  # not difflab's
    assert not is_user_error(caught(lambda: 1 / 0))
    # a ValueError from a failing expression inside difflab (an unpacking), not a raise
    from difflab.train.rng import set_rng_state

    state = {"torch": torch.get_rng_state(), "cuda": [], "numpy": [1, 2]}
    err = caught(lambda: set_rng_state(state, torch.device("cpu")))
    assert isinstance(err, ValueError) and not is_user_error(err)


def test_demo_writes_its_pictures(tmp_path, monkeypatch, capsys):
    """`difflab demo` end to end, with the digits preset cut to a few steps."""
    import dataclasses

    from difflab.train.presets import TRAIN_PRESETS

    short = dataclasses.replace(TRAIN_PRESETS["digits"], steps=6, sample_every=0,
                                checkpoint_every=0, progress=False, device="cpu")
    monkeypatch.setitem(TRAIN_PRESETS, "digits", short)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    for name in ("samples.png", "denoising.gif", "loss.png", "config.json"):
        assert (out / name).stat().st_size > 100, name
    assert "trained in" in capsys.readouterr().out


def test_demo_policy_draws_both_policies(tmp_path, monkeypatch, capsys):
    """`difflab demo policy` end to end, cut to a few steps (its outcome is tested in
    tests/train/test_policy.py)."""
    monkeypatch.setitem(__import__("difflab.commands").commands.POLICY_DEMO, "steps", 3)
    out = tmp_path / "demo"
    assert main(["demo", "policy", "--out", str(out)]) == 0
    assert (out / "bimodal.png").stat().st_size > 1000
    text = capsys.readouterr().out
    assert "diffusion policy (DDPM-100): collisions" in text and "MSE: collisions" in text
