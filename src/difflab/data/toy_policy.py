"""Toy control problems for policies, generated in seconds: a point agent whose action is the
next position it goes to (absolute targets, as in Push-T).

bimodal: from the bottom of the square to the top, around a round obstacle in the middle, on
the left or on the right with equal probability. The demonstrations are multimodal: the mean of
the two ways goes through the obstacle, which is what a policy fitted by mean squared error
learns (the motivating example of Chi et al. 2023, section 2 and figure 3).

precision: reach a target and stop on it, to within less than one bin of a 256-bin action
tokeniser, which a binned policy cannot resolve.
"""

from __future__ import annotations

import math

import numpy as np

OBSTACLE = (0.0, 0.0, 0.25)  # centre x, centre y, radius
START_Y, GOAL_Y, BULGE = -1.0, 1.0, 0.7  # the paths: x = side * BULGE * sin(pi u)


def bimodal_demos(n_episodes: int = 200, steps: int = 24, seed: int = 0
                  ) -> dict[str, np.ndarray]:
    """Demonstrations {obs (N, 2), action (N, 2), episode_ends (E,), side (E,)}: episode e
    passes the obstacle on side[e] = -1 (left) or +1 (right), drawn with probability 1/2; obs[k]
    is the position at step k, action[k] the position at step k + 1."""
    rng = np.random.default_rng(seed)
    obs, action, ends, sides = [], [], [], []
    for _ in range(n_episodes):
        side = rng.choice([-1.0, 1.0])
        x0 = rng.normal(0.0, 0.02)
        u = np.linspace(0.0, 1.0, steps + 1)  # (steps + 1,)
        path = np.stack([x0 * (1 - u) + side * BULGE * np.sin(math.pi * u),
                         START_Y + (GOAL_Y - START_Y) * u], axis=1)  # (steps + 1, 2)
        obs.append(path[:-1])
        action.append(path[1:])
        ends.append(sum(len(o) for o in obs))
        sides.append(side)
    return {"obs": np.concatenate(obs).astype(np.float32),
            "action": np.concatenate(action).astype(np.float32),
            "episode_ends": np.asarray(ends, dtype=np.int64),
            "side": np.asarray(sides)}


def bimodal_start(n: int, seed: int = 0) -> np.ndarray:
    """n start positions (n, 2), as the demonstrations start."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(0.0, 0.02, n), np.full(n, START_Y)], axis=1)


def collides(path: np.ndarray) -> np.ndarray:
    """Whether each path (B, K, 2) enters the obstacle, segments included (B,) bool."""
    cx, cy, r = OBSTACLE
    a, b = path[:, :-1], path[:, 1:]  # (B, K - 1, 2) segment ends
    d = b - a
    c = np.array([cx, cy])
    u = np.clip(((c - a) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0.0, 1.0)
    nearest = a + u[..., None] * d
    return (np.linalg.norm(nearest - c, axis=-1) < r).any(axis=1)


def side_taken(path: np.ndarray) -> np.ndarray:
    """-1 (left) or +1 (right) for each path (B, K, 2): the sign of x where it crosses y = 0
    (0 when it never does)."""
    y = path[..., 1]
    out = np.zeros(path.shape[0])
    for i in range(path.shape[0]):
        k = np.nonzero((y[i, :-1] < 0) & (y[i, 1:] >= 0))[0]
        if len(k):
            out[i] = np.sign(path[i, k[0] + 1, 0])
    return out


def precision_demos(n_episodes: int = 200, steps: int = 12, seed: int = 0
                    ) -> dict[str, np.ndarray]:
    """precision: reach a target drawn uniformly in the square and stop on it. obs[k] is
    (agent x, y, target x, y), action[k] the next position: a straight line to the target in
    steps // 2 steps, then the target itself. A tolerance below half a bin of a 256-bin
    tokeniser (2 / 256 / 2 = 0.0039 in these units) is what tokens cannot resolve."""
    rng = np.random.default_rng(seed)
    obs, action, ends = [], [], []
    for _ in range(n_episodes):
        start, target = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2)
        u = np.minimum(np.arange(steps + 1) / (steps // 2), 1.0)[:, None]  # (steps + 1, 1)
        path = start + u * (target - start)  # (steps + 1, 2)
        obs.append(np.concatenate([path[:-1], np.broadcast_to(target, (steps, 2))], 1))
        action.append(path[1:])
        ends.append(sum(len(o) for o in obs))
    return {"obs": np.concatenate(obs).astype(np.float32),
            "action": np.concatenate(action).astype(np.float32),
            "episode_ends": np.asarray(ends, dtype=np.int64)}


__all__ = ["bimodal_demos", "bimodal_start", "collides", "side_taken", "precision_demos",
           "OBSTACLE"]
