"""A reader for the replay format of Diffusion Policy's low-dimensional demonstrations.

A replay store (Chi et al. 2023) is a zarr v2 group holding every frame of every episode one after
another under `data/` and the exclusive end index of each episode in `meta/episode_ends`. The
Push-T store has `data/state` (N, 5), `data/action` (N, 2), `data/keypoint` (N, 9, 2) and
`data/n_contacts` (N, 1). zarr is optional (`pip install 'difflab[pusht]'`) and imported here
only when a store is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difflab.data.trajectories import check_episode_ends
from difflab.errors import UserError

__all__ = ["MissingDependencyError", "REPLAY_ARRAYS", "read_replay"]

# name in the returned dict -> (path in the store, number of axes, required)
REPLAY_ARRAYS = {
    "state": ("data/state", 2, True),
    "action": ("data/action", 2, True),
    "keypoint": ("data/keypoint", 3, True),
    "n_contacts": ("data/n_contacts", None, False),  # (N,) or (N, 1)
    "episode_ends": ("meta/episode_ends", 1, True),
}


class MissingDependencyError(UserError, ImportError):
    """An optional package is not installed; the message names the pip extra to install."""


def _zarr():
    """The zarr module, or a one-line error naming the extra that installs it."""
    try:
        import zarr
    except ImportError:
        raise MissingDependencyError("reading a replay store needs zarr: pip install "
                                     "'difflab[pusht]'") from None
    return zarr


def _open_group(path: Path):
    """The store's root group; one-line errors for a missing path or a non-store."""
    if not path.exists():
        raise FileNotFoundError(2, f"no replay store at {path}", str(path))
    zarr = _zarr()
    try:
        return zarr.open_group(str(path), mode="r")
    except (ValueError, KeyError, OSError):  # zarr's "nothing found" / "not a group" errors
        raise ValueError(f"{path} is not a zarr v2 replay store (a folder with .zgroup, data/ "
                         f"and meta/episode_ends)") from None


def _read_array(group, path: Path, key: str, ndim: int | None) -> np.ndarray:
    """group[key] read into memory, checked to be an array with ndim axes."""
    node = group[key]
    if not hasattr(node, "shape") or not hasattr(node, "dtype") or hasattr(node, "group_keys"):
        raise ValueError(f"{path}: {key} is a group, expected an array")
    a = np.asarray(node[...])
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{path}: {key} has shape {a.shape}, expected {ndim} axes")
    return a


def _check_frames(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Every data array has N frames, n_contacts is (N,) or (N, 1), and the ends end at N."""
    n = arrays["state"].shape[0]
    for name, a in arrays.items():
        if name != "episode_ends" and a.shape[0] != n:
            raise ValueError(f"{path}: data/{name} has {a.shape[0]} frames but data/state has "
                             f"{n}")
    if "n_contacts" in arrays and arrays["n_contacts"].shape not in ((n,), (n, 1)):
        raise ValueError(f"{path}: data/n_contacts has shape {arrays['n_contacts'].shape}, "
                         f"expected ({n},) or ({n}, 1)")
    if arrays["keypoint"].shape[-1] != 2:
        raise ValueError(f"{path}: data/keypoint has shape {arrays['keypoint'].shape}, expected "
                         f"(N, K, 2)")
    try:
        arrays["episode_ends"] = check_episode_ends(arrays["episode_ends"], n)
    except ValueError as e:
        raise ValueError(f"{path}: meta/episode_ends: {e}") from None


def read_replay(path) -> dict[str, np.ndarray]:
    """Read a replay store (Chi et al. 2023) into memory: a dict of numpy arrays `state` (N, S),
    `action` (N, A), `keypoint` (N, K, 2), `n_contacts` (N,) or (N, 1) if the store has it, and
    `episode_ends` (E,) int64 (exclusive, ascending, last == N). Arrays keep their stored dtype."""
    path = Path(path).expanduser()
    group = _open_group(path)
    missing = [key for key, _, required in REPLAY_ARRAYS.values()
               if required and key not in group]
    if missing:
        raise ValueError(f"{path}: the replay store has no {', '.join(missing)}; a Diffusion "
                         f"Policy replay store has data/state, data/action, data/keypoint and "
                         f"meta/episode_ends")
    arrays = {name: _read_array(group, path, key, ndim)
              for name, (key, ndim, _) in REPLAY_ARRAYS.items() if key in group}
    _check_frames(arrays, path)
    return arrays
