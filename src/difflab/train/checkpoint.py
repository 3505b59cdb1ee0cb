"""Checkpoints that cannot be half-written and cannot execute code (DESIGN.md section 4).

One checkpoint is a folder (rundir.py names them and keeps the `latest` pointer) holding
  model.safetensors   the trained weights
  ema.safetensors     the EMA weights (used for sampling)
  state.pt            optimizer, LR schedule, RNG states, data position, step: plain tensors and
                      python values, saved with torch.save, read with torch.load(weights_only=True)
It is written under a temporary name beside its final one, each file fsync'ed, then renamed in
one os.replace, so a crash at any moment leaves no half-written checkpoint under a real name.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from .._version import __version__
from ..errors import one_line
from .config import TrainError

MODEL_FILE, EMA_FILE, STATE_FILE = "model.safetensors", "ema.safetensors", "state.pt"
TMP_PREFIX = ".tmp-"  # what is being written carries this prefix until it is complete
STATE_KEYS = ("step", "data_position", "optimizer", "lr_schedule", "ema_updates", "rng")


class CheckpointError(TrainError):
    """A checkpoint is missing, damaged, unsafe or does not fit the model (one-line message)."""


# ----------------------------------------------------------------------------------------------
# Writing


def _write_file(path: Path, data: bytes) -> None:
    """Write bytes and force them to disk."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Replace the file `path` by `data` in one step: written under a temporary name in the
    same folder, forced to disk, then renamed; a crash leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    _write_file(tmp, data)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _weights_bytes(tensors: dict[str, Tensor], step: int) -> bytes:
    # safetensors refuses shared storage and needs contiguous CPU tensors: copy each one.
    plain = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    return st_save(plain, metadata={"step": str(step), "difflab_version": __version__})


def _state_bytes(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def remove_stale(root: str | Path) -> None:
    """Delete what an interrupted save left behind (temporary folders and pointer files)."""
    root = Path(root)
    if not root.is_dir():
        return
    for p in root.iterdir():
        if p.name.startswith(TMP_PREFIX):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def write_checkpoint(final: str | Path, step: int, *, model: dict[str, Tensor],
                     ema: dict[str, Tensor], state: dict[str, Any]) -> Path:
    """Write the checkpoint folder `final` atomically (a temporary folder beside it, renamed).
    An existing folder is kept as it is (a run's state at a step is fixed)."""
    final = Path(final)
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"the state to save lacks {', '.join(missing)}")
    if not final.is_dir():
        tmp = final.with_name(f"{TMP_PREFIX}{final.name}-{os.getpid()}")
        tmp.mkdir()
        _write_file(tmp / MODEL_FILE, _weights_bytes(model, step))
        _write_file(tmp / EMA_FILE, _weights_bytes(ema, step))
        _write_file(tmp / STATE_FILE, _state_bytes(state))
        _fsync_dir(tmp)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    return final


# ----------------------------------------------------------------------------------------------
# Reading


def load_weights(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file (no code runs: safetensors holds only tensors)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {one_line(e)}") from None
    try:
        return st_load(data)
    except Exception as e:  # SafetensorError on truncation or a bad header
        raise CheckpointError(f"{path} is not a valid safetensors file (truncated or damaged): "
                              f"{one_line(e)}") from None


def fit_weights(module: nn.Module, tensors: dict[str, Tensor], source: str | Path) -> None:
    """Load `tensors` into `module` if every name and shape matches, else CheckpointError."""
    own = module.state_dict()
    missing = [k for k in own if k not in tensors]
    extra = [k for k in tensors if k not in own]
    wrong = [k for k in own if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)]
    if missing or extra or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatch(es), e.g. {k}: checkpoint "
                         f"{tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}")
        if missing:
            parts.append(f"{len(missing)} missing tensor(s), e.g. {missing[0]}")
        if extra:
            parts.append(f"{len(extra)} unexpected tensor(s), e.g. {extra[0]}")
        raise CheckpointError(f"{source} does not fit the network ({type(module).__name__}): "
                              f"{'; '.join(parts)}")
    module.load_state_dict(tensors, strict=True)


def load_state(path: str | Path) -> dict[str, Any]:
    """The state file, read with torch.load(weights_only=True): anything but plain tensors and
    python values (a pickle that would run code) is refused, and nothing executes."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError (refused globals), RuntimeError (bad zip), EOFError
        raise CheckpointError(f"{path} was refused by torch.load(weights_only=True): "
                              f"{_load_reason(e)}") from None
    if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
        raise CheckpointError(f"{path} is not a difflab state file (needs the keys "
                              f"{', '.join(STATE_KEYS)})")
    return state


def _load_reason(e: BaseException) -> str:
    """The useful line of torch.load's error, without its advice to load the file unsafely."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    m = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if m:
        return (f"it holds the python object {m.group(1)}, not only tensors and plain values "
                f"(a pickle that could run code); nothing was executed")
    if "central directory" in text or "zip archive" in text or isinstance(e, EOFError):
        return "the file is truncated or damaged"
    m = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    if m or "weights_only" in text:  # never pass on torch's advice to load it unsafely
        why = m.group(1).strip() if m else "not only tensors and plain values"
        return (f"{why} (a pickle that could run code; nothing was executed)")
    return one_line(Exception(text))


def load_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Tensor],
                                                 dict[str, Any]]:
    """(model weights, EMA weights, state) of one checkpoint folder."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint folder at {path}")
    state = load_state(path / STATE_FILE)
    return load_weights(path / MODEL_FILE), load_weights(path / EMA_FILE), state


__all__ = ["CheckpointError", "write_checkpoint", "load_checkpoint", "load_weights", "load_state",
           "fit_weights", "remove_stale", "write_atomic", "MODEL_FILE", "EMA_FILE", "STATE_FILE"]
