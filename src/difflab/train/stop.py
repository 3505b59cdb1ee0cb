"""Stopping on request: Ctrl-C (SIGINT) or SIGTERM ends training after the current step, with a
checkpoint (the loop reads the request between steps)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any


class TrainInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped training after a checkpoint was saved."""

    def __init__(self, message: str, checkpoint: Path | None):
        super().__init__(message)
        self.checkpoint = checkpoint


class StopRequest:
    """SIGINT / SIGTERM set a flag that the loop reads between steps (main thread only);
    a second Ctrl-C raises KeyboardInterrupt at once. One that comes within `grace` seconds of
    the first counts as the same request: a launcher may pass on the Ctrl-C the worker already
    had from the terminal."""

    grace = 2.0

    def __init__(self):
        self.requested = False
        self._since = 0.0
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            if signum == signal.SIGINT and time.monotonic() - self._since > self.grace:
                raise KeyboardInterrupt
            return
        self.requested, self._since = True, time.monotonic()

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C and SIGTERM (which a scheduler sends to every process
    of a job) to the main process, which stops between steps; the loader ends them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


__all__ = ["TrainInterrupted", "StopRequest", "ignore_stop_signals"]
