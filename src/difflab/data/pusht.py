"""Push-T (Chi et al. 2023): observations from the replay store, the block's keypoints, the split.

The task: push a T-shaped block onto a target with a disc agent in a 512 x 512 pixel plane. A
frame's `state` is (agent x, agent y, block x, block y, block angle) and its `keypoint` the (x, y)
of 9 points fixed on the block; the action is the agent's target position. The paper's
low-dimensional observation is the 20 numbers keypoints-then-agent (`obs="keypoints"`); the
5-number state is the other option (`obs="state"`). A rollout sees only the block's pose, so
`fit_block_keypoints` recovers the points' coordinates in the block's frame once from the data
and `block_keypoints` places them for any pose.

    ds = difflab.data.get_dataset("pusht", root="data/pusht")    # all 206 episodes
    obs, action = ds[0]                                          # (2, 20), (16, 2) in [-1, 1]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from difflab.data.registry import register
from difflab.data.replay import read_replay
from difflab.data.trajectories import TrajectoryDataset, TrajectoryNormalizer, episode_slices

__all__ = ["DATA_URL", "OBS_KINDS", "PushTDataset", "STORE_NAME", "block_keypoints",
           "fit_block_keypoints", "make_pusht", "obs_from", "replay_path", "split_episodes"]

STORE_NAME = "pusht_cchi_v7_replay.zarr"
DATA_URL = "https://diffusion-policy.cs.columbia.edu/data/training/pusht.zip"  # Chi et al. 2023
OBS_KINDS = ("keypoints", "state")
SPLITS = ("all", "paper")
PARTS = ("train", "val")


def _check_choice(name: str, value, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _cat(parts: list, like):
    """Concatenate numpy arrays or tensors (the kind of `like`) along the last axis."""
    return torch.cat(parts, -1) if isinstance(like, Tensor) else np.concatenate(parts, -1)


def obs_from(kind: str, state, keypoint=None):
    """A Push-T observation from state (..., 5) and keypoint (..., K, 2), numpy or torch:
    "keypoints": (..., 2K + 2), the K block keypoints (x, y) flattened, then the agent's (x, y),
    the paper's low-dimensional observation (Chi et al. 2023; K = 9: 20 numbers);
    "state": (..., 5), agent x, y, block x, y, angle."""
    _check_choice("obs", kind, OBS_KINDS)
    if state.shape[-1] != 5:
        raise ValueError(f"a Push-T state has 5 numbers (agent x, y, block x, y, angle), got "
                         f"shape {tuple(state.shape)}")
    if kind == "state":
        return state[..., :5]
    if keypoint is None or keypoint.shape[-1] != 2 or keypoint.shape[:-2] != state.shape[:-1]:
        got = None if keypoint is None else tuple(keypoint.shape)
        raise ValueError(f"keypoints observations need keypoint of shape (..., K, 2) with the "
                         f"state's leading shape {tuple(state.shape[:-1])}, got {got}")
    flat = keypoint.reshape(*keypoint.shape[:-2], keypoint.shape[-2] * 2)  # (..., 2K)
    return _cat([flat, state[..., :2]], state)  # (..., 2K + 2)


# ----------------------------------------------------------------------------------------------
# The block's keypoints: world = position + R(angle) @ local


def _rotate(v, theta):
    """v (..., K, 2) rotated counterclockwise by theta (...,), numpy or torch (the angle
    convention of the Push-T data: a positive angle turns +x towards +y)."""
    xp = torch if isinstance(v, Tensor) else np
    c, s = xp.cos(theta)[..., None], xp.sin(theta)[..., None]  # (..., 1)
    x, y = v[..., 0], v[..., 1]  # (..., K)
    return xp.stack([c * x - s * y, s * x + c * y], -1)  # (..., K, 2)


def block_keypoints(block_pose, local):
    """World keypoints (..., K, 2) of a block at pose (..., 3) = (x, y, angle), from the points'
    coordinates `local` (K, 2) in the block's frame (from fit_block_keypoints)."""
    if block_pose.shape[-1] != 3:
        raise ValueError(f"a block pose is (x, y, angle), got shape {tuple(block_pose.shape)}")
    if isinstance(block_pose, Tensor):
        local = torch.as_tensor(local, dtype=block_pose.dtype, device=block_pose.device)
    else:
        block_pose, local = np.asarray(block_pose, dtype=np.float64), np.asarray(local)
    if local.ndim != 2 or local.shape[-1] != 2:
        raise ValueError(f"local keypoints must have shape (K, 2), got {tuple(local.shape)}")
    lead = block_pose.shape[:-1]
    v = local.expand(*lead, *local.shape) if isinstance(local, Tensor) else \
        np.broadcast_to(local, (*lead, *local.shape))  # (..., K, 2)
    return block_pose[..., None, :2] + _rotate(v, block_pose[..., 2])  # (..., K, 2)


def fit_block_keypoints(state, keypoint) -> np.ndarray:
    """The keypoints' coordinates (K, 2) in the block's frame, least squares over all frames:
    with pose (p_n, theta_n) = state[n, 2:5], argmin_l sum_n |p_n + R(theta_n) l - k_n|^2 is the
    mean of R(theta_n)^T (k_n - p_n), since each R is orthogonal."""
    state, keypoint = np.asarray(state, np.float64), np.asarray(keypoint, np.float64)
    if state.ndim != 2 or state.shape[1] != 5 or keypoint.ndim != 3 or keypoint.shape[2] != 2 \
            or keypoint.shape[0] != state.shape[0] or state.shape[0] == 0:
        raise ValueError(f"need state (N, 5) and keypoint (N, K, 2) with N > 0, got "
                         f"{state.shape} and {keypoint.shape}")
    d = keypoint - state[:, None, 2:4]  # (N, K, 2)
    return _rotate(d, -state[:, 4]).mean(0)  # (K, 2)


# ----------------------------------------------------------------------------------------------
# The paper's split


def split_episodes(n_episodes: int, val_ratio: float = 0.02, seed: int = 42,
                   max_train: int | None = 90) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) episode indices, ascending, as Chi et al. 2023 split Push-T: round(n *
    val_ratio) validation episodes (at least 1, leaving at least 1) drawn without replacement by
    numpy's default_rng(seed), then at most max_train of the others, drawn with a fresh
    default_rng(seed) (None: keep all)."""
    if int(n_episodes) != n_episodes or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    if not 0 <= val_ratio < 1:
        raise ValueError(f"val_ratio must lie in [0, 1), got {val_ratio!r}")
    if max_train is not None and (int(max_train) != max_train or max_train < 1):
        raise ValueError(f"max_train must be a positive integer or None, got {max_train!r}")
    n = int(n_episodes)
    val = np.zeros(n, dtype=bool)
    if val_ratio > 0:
        n_val = min(max(1, round(n * val_ratio)), n - 1)
        val[np.random.default_rng(seed).choice(n, size=n_val, replace=False)] = True
    train = np.flatnonzero(~val)
    if max_train is not None and len(train) > max_train:
        pick = np.random.default_rng(seed).choice(len(train), size=int(max_train), replace=False)
        train = np.sort(train[pick])
    return train.astype(np.int64), np.flatnonzero(val).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# The dataset


class PushTDataset(TrajectoryDataset):
    """A TrajectoryDataset of Push-T episodes; also `obs_kind` ("keypoints" | "state"),
    `episode_ids` (the store's episodes it holds, ascending) and `keypoints_local` (K, 2), the
    block-frame keypoints fitted on the whole store (for rollouts: obs_from(kind, state,
    block_keypoints(state[..., 2:5], keypoints_local)))."""

    def __init__(self, obs, action, episode_ends, n_obs_steps: int, horizon: int,
                 n_action_steps: int, *, normalizer: TrajectoryNormalizer, obs_kind: str,
                 episode_ids: np.ndarray, keypoints_local: np.ndarray):
        super().__init__(obs, action, episode_ends, n_obs_steps, horizon, n_action_steps,
                         normalizer=normalizer)
        self.obs_kind, self.episode_ids, self.keypoints_local = obs_kind, episode_ids, \
            keypoints_local


def _episodes_of(frames: list[np.ndarray], slices: list[slice], ids: np.ndarray):
    """The frames of episodes `ids` one after another, and their exclusive ends."""
    picked = [[f[slices[i]] for i in ids] for f in frames]
    ends = np.cumsum([slices[i].stop - slices[i].start for i in ids], dtype=np.int64)
    return [np.concatenate(p) for p in picked], ends


def make_pusht(data: dict[str, np.ndarray], *, obs: str = "keypoints", n_obs_steps: int = 2,
               horizon: int = 16, n_action_steps: int = 8, split: str = "all",
               part: str = "train") -> PushTDataset:
    """The Push-T dataset from read_replay's arrays: all episodes (split="all"), or the paper's
    train / val part (split="paper"); normalised with the train part's normaliser."""
    _check_choice("obs", obs, OBS_KINDS)
    _check_choice("split", split, SPLITS)
    _check_choice("part", part, PARTS)
    if split == "all" and part == "val":
        raise ValueError("split='all' trains on every episode and has no val part; use "
                         "split='paper' for the paper's validation episodes")
    state, keypoint = data["state"], data["keypoint"]
    frames = [obs_from(obs, state, keypoint), data["action"]]  # (N, Do), (N, 2)
    slices = episode_slices(data["episode_ends"])
    n = len(slices)
    train, val = (np.arange(n), np.zeros(0, np.int64)) if split == "all" else split_episodes(n)
    (obs_t, act_t), _ = _episodes_of(frames, slices, train)
    normalizer = TrajectoryNormalizer.fit(obs_t, act_t)
    ids = train if part == "train" else val
    (obs_p, act_p), ends = _episodes_of(frames, slices, ids)
    return PushTDataset(obs_p, act_p, ends, n_obs_steps, horizon, n_action_steps,
                        normalizer=normalizer, obs_kind=obs, episode_ids=ids,
                        keypoints_local=fit_block_keypoints(state, keypoint))


def replay_path(root) -> Path:
    """The Push-T store: root itself if it is a .zarr path, else root/STORE_NAME (or
    root/pusht/STORE_NAME, as the paper's zip unpacks)."""
    if root is None:
        raise ValueError(f"dataset pusht needs root, the folder holding {STORE_NAME}: download "
                         f"{DATA_URL} and unzip it (on the command line: --dataset-kwargs "
                         f"'{{\"root\": \"data/pusht\"}}')")
    root = Path(root).expanduser()
    if root.suffix == ".zarr":
        return root
    for path in (root / STORE_NAME, root / "pusht" / STORE_NAME):
        if path.exists():
            return path
    raise FileNotFoundError(f"no {STORE_NAME} in {root}: download {DATA_URL} and unzip it there")


@register("pusht", "Push-T demonstrations (Chi et al. 2023), items (obs (To, 20), action (Tp, 2));"
          " kw root, obs, n_obs_steps, horizon, n_action_steps, split, part")
def _pusht(root=None, *, obs: str = "keypoints", n_obs_steps: int = 2, horizon: int = 16,
           n_action_steps: int = 8, split: str = "all", part: str = "train") -> PushTDataset:
    _check_choice("obs", obs, OBS_KINDS)  # before reading the store: cheap mistakes first
    _check_choice("split", split, SPLITS)
    _check_choice("part", part, PARTS)
    return make_pusht(read_replay(replay_path(root)), obs=obs, n_obs_steps=n_obs_steps,
                      horizon=horizon, n_action_steps=n_action_steps, split=split, part=part)
