"""Closed-loop rollouts of a policy on the toy control problems (difflab.data.toy_policy):
every episode runs in one batch, one policy call a step, as a simulator would be driven."""

from __future__ import annotations

import numpy as np
import torch

from ..data.toy_policy import bimodal_start, collides, side_taken


def bimodal_rollouts(policy, n: int = 64, steps: int = 24, seed: int = 0) -> dict[str, float]:
    """n episodes of `steps` steps from the demonstrations' starts; the agent goes to each
    action it is given. Returns the collision rate, the fraction that passes on the left, the
    fraction that reaches the top (y > 0.9) and the paths (n, steps + 1, 2)."""
    policy.reset()
    pos = torch.as_tensor(bimodal_start(n, seed), dtype=torch.float32)  # (n, 2)
    path = [pos]
    for _ in range(steps):
        pos = torch.as_tensor(policy.select_action(pos), dtype=torch.float32)  # (n, 2)
        path.append(pos)
    paths = torch.stack(path, 1).numpy()  # (n, steps + 1, 2)
    side = side_taken(paths)
    return {"collision_rate": float(collides(paths).mean()),
            "left_fraction": float((side < 0).mean()),
            "right_fraction": float((side > 0).mean()),
            "reached": float((paths[:, -1, 1] > 0.9).mean()), "paths": paths}


def precision_rollouts(policy, n: int = 100, steps: int = 12, seed: int = 0) -> dict:
    """n episodes from random starts to random targets (the demonstrations' distribution);
    returns the final distance to the target (per episode, the larger coordinate error), its
    mean and median."""
    rng = np.random.default_rng(10_000 + seed)
    pos = torch.as_tensor(rng.uniform(-1, 1, (n, 2)), dtype=torch.float32)
    target = torch.as_tensor(rng.uniform(-1, 1, (n, 2)), dtype=torch.float32)
    policy.reset()
    for _ in range(steps):
        pos = torch.as_tensor(policy.select_action(torch.cat([pos, target], 1)),
                              dtype=torch.float32)
    err = (pos - target).abs().amax(1).numpy()  # (n,)
    return {"error": err, "mean_error": float(err.mean()), "median_error": float(np.median(err))}


__all__ = ["bimodal_rollouts", "precision_rollouts"]
