"""Trajectories: episodes of (observation, action) frames -> diffusion-policy training items.

Diffusion Policy (Chi et al. 2023) trains on windows of `horizon` (Tp) consecutive frames of one
episode. An item is the window's first `n_obs_steps` (To) observations, the condition, and its
whole action sequence, the sample x0 (Tp, action_dim); at run time the policy executes the
`n_action_steps` (Ta) actions [To - 1, To - 1 + Ta) of a predicted chunk. Windows may start up to
To - 1 frames before an episode and end up to Ta - 1 frames after it, the missing frames being
copies of the episode's first / last frame, so every frame is the current step of some window.

Both observations and actions are scaled per dimension to [-1, 1] by the data's minimum and
maximum (the paper's "limits" normaliser), saved as plain JSON with the run so that a policy can
normalise its inputs and map sampled actions back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from difflab.data.base import _check_index

__all__ = ["RANGE_EPS", "Normalizer", "TrajectoryDataset", "TrajectoryNormalizer",
           "check_episode_ends", "episode_slices", "sequence_windows"]

RANGE_EPS = 1e-4  # a dimension whose range is below this is only shifted (Chi et al. 2023)
_FORMAT = "difflab-trajectory-normalizer"


def _float64(x, what: str) -> np.ndarray:
    """x (a tensor, array or nested list) as a float64 numpy array."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an array of numbers, got {type(x).__name__}") from None


@dataclass(frozen=True, eq=False)
class Normalizer:
    """Per-dimension affine map of the last axis, y = x * scale + offset (Chi et al. 2023's
    "limits" mode): the data's minimum goes to -1 and its maximum to 1; a dimension whose range is
    below RANGE_EPS keeps scale 1 and is shifted so that its value goes to 0. `lo` / `hi` are the
    data's minimum / maximum (kept for reference)."""

    scale: np.ndarray  # (D,) float64, > 0
    offset: np.ndarray  # (D,) float64
    lo: np.ndarray  # (D,) float64
    hi: np.ndarray  # (D,) float64

    def __post_init__(self):
        arrays = {k: _float64(getattr(self, k), k) for k in ("scale", "offset", "lo", "hi")}
        dims = {a.shape for a in arrays.values()}
        if len(dims) != 1 or arrays["scale"].ndim != 1:
            raise ValueError(f"a normaliser needs scale, offset, min and max of one shape (D,), "
                             f"got shapes {sorted(dims)}")
        if not all(np.isfinite(a).all() for a in arrays.values()) or (arrays["scale"] <= 0).any():
            raise ValueError("a normaliser's numbers must be finite and its scales positive")
        for k, a in arrays.items():
            a.setflags(write=False)
            object.__setattr__(self, k, a)

    @property
    def dim(self) -> int:
        return int(self.scale.shape[0])

    @classmethod
    def fit(cls, x) -> Normalizer:
        """Fit to x (N, D) or (N, ..., D): statistics over all but the last axis."""
        x = _float64(x, "data")
        if x.ndim < 2 or x.shape[-1] == 0 or x.size == 0:
            raise ValueError(f"fit needs data of shape (N, ..., D) with N, D > 0, got "
                             f"{tuple(x.shape)}")
        if not np.isfinite(x).all():
            raise ValueError("cannot fit a normaliser to data with NaN or infinite values")
        x = x.reshape(-1, x.shape[-1])  # (N, D)
        lo, hi = x.min(0), x.max(0)
        flat = (hi - lo) < RANGE_EPS  # (D,) only shifted
        scale = np.where(flat, 1.0, 2.0 / np.where(flat, 1.0, hi - lo))
        offset = np.where(flat, -lo, -1.0 - scale * lo)
        return cls(scale, offset, lo, hi)

    def _apply(self, x, scale: np.ndarray, offset: np.ndarray, inverse: bool):
        """x * scale + offset, or (x - offset) / scale, over x's last axis, in x's kind."""
        x = x if isinstance(x, Tensor) else np.asarray(x)
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"expected {self.dim} values in the last axis, got shape "
                             f"{tuple(x.shape)}")
        if isinstance(x, Tensor):
            dtype = x.dtype if x.is_floating_point() else torch.float32
            s, o = (torch.tensor(a.tolist(), dtype=dtype, device=x.device) for a in (scale, offset))
            x = x.to(dtype)
        else:  # numpy: computed in float64, returned in x's float type
            dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
            s, o, x = scale, offset, x.astype(np.float64)
        y = (x - o) / s if inverse else x * s + o
        return y if isinstance(y, Tensor) else y.astype(dtype)

    def normalize(self, x):
        """x (..., D) -> y (..., D): tensors stay tensors (same device), arrays stay arrays."""
        return self._apply(x, self.scale, self.offset, inverse=False)

    def unnormalize(self, y):
        """The inverse of normalize: y (..., D) -> x (..., D)."""
        return self._apply(y, self.scale, self.offset, inverse=True)

    def to_dict(self) -> dict[str, list[float]]:
        return {"scale": self.scale.tolist(), "offset": self.offset.tolist(),
                "min": self.lo.tolist(), "max": self.hi.tolist()}

    @classmethod
    def from_dict(cls, d) -> Normalizer:
        if not isinstance(d, dict):
            raise ValueError(f"a normaliser is a dict of scale, offset, min, max; got "
                             f"{type(d).__name__}")
        missing = [k for k in ("scale", "offset", "min", "max") if k not in d]
        if missing:
            raise ValueError(f"normaliser dict is missing {', '.join(missing)}")
        return cls(d["scale"], d["offset"], d["min"], d["max"])


@dataclass(frozen=True)
class TrajectoryNormalizer:
    """The normalisers of a policy's observations and actions, saved as JSON (never pickled)."""

    obs: Normalizer
    action: Normalizer

    @classmethod
    def fit(cls, obs, action) -> TrajectoryNormalizer:
        """Fit both to frames: obs (N, ..., obs_dim), action (N, ..., action_dim)."""
        return cls(Normalizer.fit(obs), Normalizer.fit(action))

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": 1, "obs": self.obs.to_dict(),
                "action": self.action.to_dict()}

    @classmethod
    def from_dict(cls, d) -> TrajectoryNormalizer:
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError(f"not a trajectory normaliser (expected a dict with format "
                             f"{_FORMAT!r})")
        if d.get("version") != 1:
            raise ValueError(f"trajectory normaliser version {d.get('version')!r} is not known "
                             f"to this difflab (version 1); upgrade difflab")
        return cls(Normalizer.from_dict(d.get("obs")), Normalizer.from_dict(d.get("action")))

    def save(self, path) -> Path:
        """Write JSON to a temporary file beside `path`, then rename it onto `path`."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path) -> TrajectoryNormalizer:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a JSON normaliser file ({e})") from None
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


# ----------------------------------------------------------------------------------------------
# Windows: the frames of each training item


def check_episode_ends(episode_ends, n_frames: int | None = None) -> np.ndarray:
    """Exclusive episode ends (E,) as int64, checked: non-decreasing, >= 0, last == n_frames."""
    ends = np.asarray(episode_ends)
    if ends.ndim != 1 or not (np.issubdtype(ends.dtype, np.integer) or ends.size == 0):
        raise ValueError(f"episode_ends must be a 1-D integer array, got {ends.dtype} of shape "
                         f"{tuple(ends.shape)}")
    ends = ends.astype(np.int64)
    if ends.size and (ends[0] < 0 or (np.diff(ends) < 0).any()):
        raise ValueError("episode_ends must be ascending exclusive end indices starting at >= 0")
    if n_frames is not None and (ends[-1] if ends.size else 0) != n_frames:
        last = int(ends[-1]) if ends.size else 0
        raise ValueError(f"the last episode ends at {last} but there are {n_frames} frames; "
                         f"episode_ends must end at the number of frames")
    return ends


def episode_slices(episode_ends) -> list[slice]:
    """The frames of each episode, slice(start, end), from exclusive ends (E,)."""
    ends = check_episode_ends(episode_ends)
    starts = np.concatenate([[0], ends[:-1]])
    return [slice(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def sequence_windows(episode_ends, horizon: int, pad_before: int = 0,
                     pad_after: int = 0) -> np.ndarray:
    """The frame indices (W, horizon) of every window, in the order of Chi et al. 2023's
    SequenceSampler: per episode of length L, windows start at s = -pad_before .. L - horizon +
    pad_after (relative to the episode), and position j reads frame clip(s + j, 0, L - 1), i.e.
    frames outside the episode repeat its first / last frame. Empty episodes give no window."""
    ends = check_episode_ends(episode_ends)
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    for name, pad in (("pad_before", pad_before), ("pad_after", pad_after)):
        if int(pad) != pad or not 0 <= pad <= horizon - 1:
            raise ValueError(f"{name} must be an integer in [0, horizon - 1] = [0, "
                             f"{horizon - 1}], got {pad!r}")
    steps = np.arange(horizon)  # (horizon,)
    out = [np.zeros((0, horizon), dtype=np.int64)]
    for sl in episode_slices(ends):
        length = sl.stop - sl.start
        if length == 0:
            continue
        first = np.arange(-pad_before, length - horizon + pad_after + 1)  # (W_e,) window starts
        out.append(sl.start + np.clip(first[:, None] + steps, 0, length - 1))  # (W_e, horizon)
    return np.concatenate(out).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# The dataset


def _frames(x, what: str) -> np.ndarray:
    """x as float64 frames (N, D)."""
    x = _float64(x, what)
    if x.ndim != 2:
        raise ValueError(f"{what} must have shape (N, {what}_dim), got {tuple(x.shape)}")
    return x


def _check_steps(n_obs_steps: int, horizon: int, n_action_steps: int) -> None:
    """1 <= To, 1 <= Ta, and the executed actions [To - 1, To - 1 + Ta) inside the horizon."""
    for name, v in (("n_obs_steps", n_obs_steps), ("horizon", horizon),
                    ("n_action_steps", n_action_steps)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if n_obs_steps - 1 + n_action_steps > horizon:
        raise ValueError(f"n_obs_steps - 1 + n_action_steps = {n_obs_steps - 1 + n_action_steps}"
                         f" exceeds horizon {horizon}: the executed actions [To - 1, To - 1 + Ta)"
                         f" must lie in the predicted chunk; raise horizon or lower the steps")


class TrajectoryDataset(Dataset):
    """Diffusion-policy items from episodes (Chi et al. 2023): item i is (obs (To, obs_dim),
    action (Tp, action_dim)), float32 and normalised: the first To observations and all Tp
    actions of window i of sequence_windows(episode_ends, Tp, To - 1, Ta - 1).

    obs (N, obs_dim), action (N, action_dim): the frames of all episodes, one after another;
    episode_ends (E,): exclusive end of each episode (the replay format's meta/episode_ends).
    normalizer: a TrajectoryNormalizer to use (e.g. the training part's for a validation part);
    None fits one to these frames.
    """

    name: str = ""
    num_classes: int = 0  # unlabelled: the condition is the observation window

    def __init__(self, obs, action, episode_ends, n_obs_steps: int = 2, horizon: int = 16,
                 n_action_steps: int = 8, *, normalizer: TrajectoryNormalizer | None = None):
        obs, action = _frames(obs, "obs"), _frames(action, "action")  # (N, Do), (N, Da)
        if obs.shape[0] != action.shape[0]:
            raise ValueError(f"obs has {obs.shape[0]} frames but action has {action.shape[0]}")
        _check_steps(n_obs_steps, horizon, n_action_steps)
        self.episode_ends = check_episode_ends(episode_ends, obs.shape[0])  # (E,)
        if normalizer is None:
            normalizer = TrajectoryNormalizer.fit(obs, action)
        if not isinstance(normalizer, TrajectoryNormalizer):
            raise ValueError(f"normalizer must be a TrajectoryNormalizer, got "
                             f"{type(normalizer).__name__}")
        if (normalizer.obs.dim, normalizer.action.dim) != (obs.shape[1], action.shape[1]):
            raise ValueError(f"the normaliser is for obs_dim {normalizer.obs.dim} and action_dim "
                             f"{normalizer.action.dim}, the data has {obs.shape[1]} and "
                             f"{action.shape[1]}")
        self.normalizer = normalizer
        self.obs_dim, self.action_dim = int(obs.shape[1]), int(action.shape[1])
        self.n_obs_steps, self.horizon = int(n_obs_steps), int(horizon)
        self.n_action_steps = int(n_action_steps)
        self.shape = (self.horizon, self.action_dim)  # one sample x0
        self._obs = torch.from_numpy(normalizer.obs.normalize(obs).astype(np.float32))
        self._action = torch.from_numpy(normalizer.action.normalize(action).astype(np.float32))
        windows = sequence_windows(self.episode_ends, self.horizon, self.n_obs_steps - 1,
                                   self.n_action_steps - 1)  # (W, Tp)
        self.windows = torch.from_numpy(windows)

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        w = self.windows[_check_index(i, len(self))]  # (Tp,) frame indices
        return self._obs[w[: self.n_obs_steps]], self._action[w]  # (To, Do), (Tp, Da)

    def episodes(self) -> list[slice]:
        """The frames of each episode, slice(start, end)."""
        return episode_slices(self.episode_ends)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
                f"episodes={len(self.episode_ends)}, obs=({self.n_obs_steps}, {self.obs_dim}), "
                f"action={self.shape}, n_action_steps={self.n_action_steps})")
