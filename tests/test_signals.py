"""A real signal stops `difflab train` cleanly: a checkpoint of the last finished step is saved,
the command exits with one line and no traceback, and `--resume` carries on from there. One
process gets SIGTERM (what a cluster scheduler sends); a 2-process torchrun job gets SIGINT on
its whole process group (what Ctrl-C in a terminal does)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from difflab.train import list_checkpoints, load_run

SRC = Path(__file__).parent.parent / "src"
TRAIN = ["train", "moons", "--steps", "100000", "--log-every", "1", "--checkpoint-every", "0",
         "--sample-every", "0", "--no-progress"]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def _start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_steps(proc: subprocess.Popen, metrics: Path, steps: int = 5) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()[1][-2000:]}")
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= steps:
            return
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("training did not start within 120 s")


def _last_logged_step(metrics: Path) -> int:
    return json.loads(metrics.read_text().splitlines()[-1])["step"]


def _saved_step(run: Path) -> int:
    ckpts = list_checkpoints(run / "checkpoints")
    assert len(ckpts) == 1, ckpts
    load_run(run)  # complete and loadable
    return int(ckpts[0].name.split("-")[-1])


def test_sigterm_saves_a_checkpoint_and_resume_continues(tmp_path):
    run = tmp_path / "r"
    proc = _start([sys.executable, "-m", "difflab.cli", *TRAIN, "--run-dir", str(run)], tmp_path)
    _wait_for_steps(proc, run / "metrics.jsonl")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines() == [
        "difflab: interrupted (a checkpoint was saved if training)"]
    saved = _saved_step(run)
    assert saved == _last_logged_step(run / "metrics.jsonl") >= 5

    more = subprocess.run([sys.executable, "-m", "difflab.cli", "train", "--config-file",
                           str(run / "config.json"), "--steps", str(saved + 3), "--resume"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert more.returncode == 0, more.stderr[-2000:]
    assert _last_logged_step(run / "metrics.jsonl") == saved + 3


def test_ctrl_c_on_a_torchrun_job_saves_once_and_resumes(tmp_path):
    run = tmp_path / "r"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", "-m", "difflab.cli"]
    proc = _start([*torchrun, *TRAIN, "--run-dir", str(run)], tmp_path)
    _wait_for_steps(proc, run / "metrics.jsonl")
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: every process of the job
    _, err = proc.communicate(timeout=120)
    assert err.count("difflab: interrupted") == 1, err[-3000:]  # rank 0 speaks, once
    saved = _saved_step(run)
    assert saved == _last_logged_step(run / "metrics.jsonl") >= 5
    leftovers = [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    assert not leftovers  # no half-written checkpoint

    more = subprocess.run([*torchrun, "train", "--config-file", str(run / "config.json"),
                           "--steps", str(saved + 3), "--resume"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)
    assert more.returncode == 0, more.stderr[-3000:]
    assert _last_logged_step(run / "metrics.jsonl") == saved + 3
