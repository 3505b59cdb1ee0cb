"""A real signal stops `difflab train` cleanly: a checkpoint of the last finished step is saved,
the command exits with one line and no traceback, and `--resume` carries on from there.

- One process gets SIGTERM (what a cluster scheduler sends), also on its whole process group
  with data-loading workers running, or two SIGINTs in quick succession (a launcher passing on
  a Ctrl-C the process already had): all save.
- A 2-process torchrun job gets SIGINT on torchrun's process group, as a terminal's Ctrl-C does;
  torchrun starts its workers in sessions of their own and passes the signal on to each.
- A second Ctrl-C, well after the first, stops at once without saving (`StopRequest`).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from difflab.train import list_checkpoints, load_run
from difflab.train.stop import StopRequest

SRC = Path(__file__).parents[2] / "src"
TRAIN = ["train", "moons", "--steps", "100000", "--log-every", "1", "--checkpoint-every", "0",
         "--sample-every", "0", "--no-progress"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            "2", "-m", "difflab.cli"]
INTERRUPTED = "difflab: interrupted (a checkpoint was saved if training)"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def _children(pid: int) -> list[int]:
    """Every descendant of pid (Linux /proc), so that a failed test leaves no worker behind."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


class _Job:
    """A `difflab` command in the background; on exit every process it started is gone."""

    def __init__(self, cmd: list[str], cwd: Path):
        self.err_path = cwd / "stderr.txt"
        self.err_file = open(self.err_path, "w")  # noqa: SIM115 (closed in __exit__)
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL,
                                     stderr=self.err_file, start_new_session=True)

    def __enter__(self):
        return self

    def wait_for_steps(self, metrics: Path, steps: int = 5) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"training exited early: {self.stderr()[-2000:]}")
            if metrics.is_file() and len(metrics.read_text().splitlines()) >= steps:
                return
            time.sleep(0.2)
        raise AssertionError("training did not start within 120 s")

    def finish(self, timeout: float) -> tuple[int, str]:
        rc = self.proc.wait(timeout=timeout)
        return rc, self.stderr()

    def stderr(self) -> str:
        self.err_file.flush()
        return self.err_path.read_text()

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            kids = _children(self.proc.pid)
            for pid in [self.proc.pid, *kids]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=30)
        self.err_file.close()
        return False


def _last_logged_step(metrics: Path) -> int:
    return json.loads(metrics.read_text().splitlines()[-1])["step"]


def _saved_step(run: Path) -> int:
    ckpts = list_checkpoints(run / "checkpoints")
    assert len(ckpts) == 1, ckpts
    load_run(run)  # complete and loadable
    leftovers = [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    assert not leftovers  # no half-written checkpoint
    return int(ckpts[0].name.split("-")[-1])


def _resume(cmd: list[str], run: Path, steps: int, cwd: Path) -> None:
    more = subprocess.run([*cmd, "train", "--config-file", str(run / "config.json"),
                           "--steps", str(steps), "--resume"],
                          cwd=cwd, env=_env(), capture_output=True, text=True, timeout=180)
    assert more.returncode == 0, more.stderr[-3000:]
    assert _last_logged_step(run / "metrics.jsonl") == steps


@pytest.mark.parametrize("signals,group,workers", [
    ([signal.SIGTERM], False, 0), ([signal.SIGINT, signal.SIGINT], False, 0),
    ([signal.SIGTERM], True, 2)], ids=["sigterm", "sigint-twice", "sigterm-group-workers"])
def test_a_signal_saves_a_checkpoint_and_resume_continues(tmp_path, signals, group, workers):
    """group: the signal goes to the whole process group, data-loading workers included, as
    a scheduler's SIGTERM does."""
    run = tmp_path / "r"
    one = [sys.executable, "-m", "difflab.cli"]
    cmd = [*one, *TRAIN, "--run-dir", str(run), "--num-workers", str(workers)]
    with _Job(cmd, tmp_path) as job:
        job.wait_for_steps(run / "metrics.jsonl")
        for sig in signals:
            if group:
                os.killpg(job.proc.pid, sig)
            else:
                job.proc.send_signal(sig)
            time.sleep(0.05)
        rc, err = job.finish(timeout=60)
    assert rc == 130, err[-2000:]
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("difflab")] == [INTERRUPTED]
    saved = _saved_step(run)
    assert saved == _last_logged_step(run / "metrics.jsonl") >= 5
    _resume(one, run, saved + 3, tmp_path)


def test_ctrl_c_on_a_torchrun_job_saves_once_and_resumes(tmp_path):
    run = tmp_path / "r"
    with _Job([*TORCHRUN, *TRAIN, "--run-dir", str(run)], tmp_path) as job:
        job.wait_for_steps(run / "metrics.jsonl")
        os.killpg(job.proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: torchrun's process group
        _, err = job.finish(timeout=120)
    assert err.count("difflab: interrupted") == 1, err[-3000:]  # rank 0 speaks, once
    saved = _saved_step(run)
    assert saved == _last_logged_step(run / "metrics.jsonl") >= 5
    _resume(TORCHRUN, run, saved + 3, tmp_path)


def test_a_second_ctrl_c_after_the_grace_period_stops_at_once(monkeypatch):
    monkeypatch.setattr(StopRequest, "grace", 0.0)
    with StopRequest() as stop:
        stop._handle(signal.SIGINT, None)
        assert stop.requested
        stop._handle(signal.SIGTERM, None)  # a SIGTERM on top changes nothing
        time.sleep(0.01)
        with pytest.raises(KeyboardInterrupt):
            stop._handle(signal.SIGINT, None)
