"""Checkpoints (difflab.train.checkpoint, named and kept by difflab.train.rundir): round trip,
keep-last-K, atomic writes under a crash or a kill, and refusal (one line, nothing executed) of
damaged, mismatched or malicious files."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from difflab.train import CheckpointError, load_run, train
from difflab.train import checkpoint as ck
from difflab.train import rundir as rd

HERE = Path(__file__).parent


def _state(step: int) -> dict:
    opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters())
    return {"step": step, "data_position": 16 * step, "optimizer": opt.state_dict(),
            "lr_schedule": {"last_epoch": step}, "ema_updates": step,
            "rng": [{"torch": torch.get_rng_state(), "python": (3, (1, 2, 3), None)}]}


def _save(root: Path, step: int, keep: int = 0, value: float | None = None) -> Path:
    w = {"a.weight": torch.full((3, 2), float(step if value is None else value)),
         "a.bias": torch.arange(3.0)}
    return rd.save_checkpoint(root, step, model=w, ema={k: -v for k, v in w.items()},
                              state=_state(step), keep=keep)


def test_round_trip_keep_and_latest(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30, 40):
        _save(root, step, keep=2)
    assert [p.name for p in rd.list_checkpoints(root)] == ["step-00000030", "step-00000040"]
    assert (root / "latest").read_text().strip() == "step-00000040"
    model, ema, state = ck.load_checkpoint(rd.latest_checkpoint(root))
    assert torch.equal(model["a.weight"], torch.full((3, 2), 40.0))
    assert torch.equal(ema["a.bias"], -torch.arange(3.0))
    assert state["step"] == 40 and state["rng"][0]["python"] == (3, (1, 2, 3), None)
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp")]
    # tied weights (shared storage) are saved too
    net = torch.nn.Linear(2, 2)
    tied = {"w": net.weight, "w2": net.weight}
    rd.save_checkpoint(root, 50, model=tied, ema=tied, state=_state(50))
    assert torch.equal(ck.load_checkpoint(root / "step-00000050")[0]["w2"], net.weight)


def test_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    _save(root, 10)
    real = ck._write_file
    calls = []

    def crash_halfway(path, data):  # the second file is cut short, then the process "dies"
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(data[: len(data) // 2])
            raise OSError("simulated crash")
        real(path, data)

    monkeypatch.setattr(ck, "_write_file", crash_halfway)
    with pytest.raises(OSError, match="simulated crash"):
        _save(root, 20)
    monkeypatch.setattr(ck, "_write_file", real)
    assert [p.name for p in rd.list_checkpoints(root)] == ["step-00000010"]
    model, _, state = ck.load_checkpoint(rd.latest_checkpoint(root))
    assert state["step"] == 10 and torch.equal(model["a.weight"], torch.full((3, 2), 10.0))
    assert any(p.name.startswith(".tmp-") for p in root.iterdir())  # the debris ...
    _save(root, 20)
    assert not any(p.name.startswith(".tmp-") for p in root.iterdir())  # ... is cleaned up
    assert rd.latest_checkpoint(root).name == "step-00000020"


KILLER = """
import os, sys, torch
from difflab.train import checkpoint as ck
from difflab.train import rundir as rd
root = sys.argv[1]
w = {"w": torch.ones(64, 64)}
state = {"step": 1, "data_position": 0, "optimizer": {}, "lr_schedule": {}, "ema_updates": 0,
         "rng": []}
rd.save_checkpoint(root, 1, model=w, ema=w, state=state)
real = ck._write_file
def die_halfway(path, data):  # kill -9 in the middle of a file
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
    os._exit(9)
ck._write_file = die_halfway
state["step"] = 2
rd.save_checkpoint(root, 2, model={"w": torch.zeros(64, 64)}, ema=w, state=state)
"""


def test_killed_process_leaves_the_previous_checkpoint_loadable(tmp_path):
    root = tmp_path / "checkpoints"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(root)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert rd.latest_checkpoint(root).name == "step-00000001"
    model, _, state = ck.load_checkpoint(rd.latest_checkpoint(root))
    assert state["step"] == 1 and torch.equal(model["w"], torch.ones(64, 64))
    debris = [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    assert debris and any(f.stat().st_size > 0 for p in debris for f in p.iterdir())


def test_truncated_files_are_refused_in_one_line(tmp_path):
    root = tmp_path / "checkpoints"
    path = _save(root, 10)
    for name in ("model.safetensors", "state.pt"):
        f = path / name
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 3])
        with pytest.raises(CheckpointError, match=name) as e:
            ck.load_checkpoint(path)
        assert "\n" not in str(e.value)
        f.write_bytes(data)
    ck.load_checkpoint(path)  # intact again


def test_wrong_shape_and_wrong_names_are_refused(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    good = {k: v.clone() for k, v in net.state_dict().items()}
    wrong = {**good, "0.weight": torch.zeros(5, 3)}
    with pytest.raises(CheckpointError, match=r"0.weight: checkpoint \(5, 3\) vs model \(4, 3\)"):
        ck.fit_weights(net, wrong, "x.safetensors")
    extra = {**good, "2.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="unexpected tensor.*2.weight"):
        ck.fit_weights(net, extra, "x.safetensors")
    with pytest.raises(CheckpointError, match="missing tensor.*1.bias"):
        ck.fit_weights(net, {k: v for k, v in good.items() if k != "1.bias"}, "x")
    ck.fit_weights(net, good, "x")


class Evil:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("fmt", ["torch.save", "raw pickle", "pickle protocol 0"])
def test_malicious_state_file_executes_nothing(tmp_path, fmt):
    marker = tmp_path / "marker"
    path = _save(tmp_path / "checkpoints", 10)
    payload = {**_state(10), "evil": Evil(marker)}
    if fmt == "torch.save":
        torch.save(payload, path / "state.pt")
    else:
        protocol = 0 if "0" in fmt else 2
        (path / "state.pt").write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(CheckpointError, match="refused by torch.load") as e:
        ck.load_state(path / "state.pt")
    assert "\n" not in str(e.value) and "nothing was executed" in str(e.value)
    assert "weights_only=False" not in str(e.value) and "set to `False`" not in str(e.value)
    assert not marker.exists()
    # control: the payload is live; a plain unpickler runs it
    if fmt == "torch.save":
        torch.load(path / "state.pt", weights_only=False)
    else:
        pickle.loads((path / "state.pt").read_bytes())
    assert marker.read_text() == "pwned"


def test_malicious_checkpoint_in_a_run_is_refused_on_resume(toys, tmp_path):
    run, marker = tmp_path / "run", tmp_path / "marker"
    data = toys.ToyPoints()
    train(toys.toy_config(run, steps=2), net=toys.make_net(), dataset=data)
    torch.save({"step": 2, "evil": Evil(marker)}, run / "checkpoints" / "step-00000002" /
               "state.pt")
    with pytest.raises(CheckpointError, match="state.pt was refused") as e:
        train(toys.toy_config(run, steps=4), resume=True, net=toys.make_net(), dataset=data)
    assert "\n" not in str(e.value) and not marker.exists()


def test_bad_latest_pointer_and_missing_run(tmp_path):
    root = tmp_path / "checkpoints"
    _save(root, 10)
    (root / "latest").write_text("../../../etc\n")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        rd.latest_checkpoint(root)
    (root / "latest").write_text("step-00000099\n")
    with pytest.raises(CheckpointError, match="does not exist"):
        rd.latest_checkpoint(root)
    os.remove(root / "latest")  # no pointer yet: the newest complete folder
    assert rd.latest_checkpoint(root).name == "step-00000010"
    with pytest.raises(CheckpointError, match="is missing"):
        ck.load_state(tmp_path / "nope.pt")
    torch.save({"step": 1}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="not a difflab state file"):
        ck.load_state(tmp_path / "partial.pt")


def test_load_run_refuses_a_truncated_weights_file(toys, tmp_path):
    run = tmp_path / "run"
    train(toys.toy_config(run, steps=2), net=toys.make_net(), dataset=toys.ToyPoints())
    f = rd.latest_checkpoint(run / "checkpoints") / "ema.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="ema.safetensors is not a valid safetensors") as e:
        load_run(run, net=toys.make_net())
    assert "\n" not in str(e.value)
