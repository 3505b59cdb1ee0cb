"""Push-T rollouts scored as Diffusion Policy scores them (Chi et al. 2023, section 5 and their
evaluation environment), in the `gym-pusht` simulator (the `pusht` extra).

- The 50 test starts: for seeds 100000..100049, np.random.RandomState(seed) draws [randint(50,
  450), randint(50, 450), randint(100, 400), randint(100, 400), randn() * 2 pi - pi] (agent x, y,
  block x, y, angle), given to reset(options={"reset_to_state": ...}); gym-pusht sets the
  block's position before its angle, as the paper's evaluation environment does.
- At most 300 environment steps; the policy's actions are absolute agent targets (10 Hz);
  an episode stops when the coverage of the goal exceeds 0.95.
- The score is the mean over episodes of the maximum over time of min(coverage / 0.95, 1) (the
  environment's reward); the success rate is the fraction whose coverage exceeded 0.95.
All episodes run side by side, one batched policy call a step.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..data.pusht import block_keypoints, obs_from
from ..errors import UserError

PAPER_SEEDS = tuple(range(100_000, 100_050))
MAX_STEPS = 300
GIF_SIZE = 128  # pixels of a rendered frame (gym-pusht renders 680 by default: 1.4 MB a frame)


class MissingSimulator(UserError, ImportError):
    """gym-pusht is not installed."""


def paper_start(seed: int) -> np.ndarray:
    """The paper's test start of `seed`: (agent x, agent y, block x, block y, block angle)."""
    rs = np.random.RandomState(seed)
    return np.array([rs.randint(50, 450), rs.randint(50, 450), rs.randint(100, 400),
                     rs.randint(100, 400), rs.randn() * 2 * np.pi - np.pi], dtype=np.float64)


def make_env(render: bool = False):
    """One gym-pusht environment with state observations (agent x, y, block x, y, angle)."""
    try:
        import gym_pusht  # noqa: F401  (registers the environment)
        import gymnasium
    except ImportError as e:
        raise MissingSimulator(f"the Push-T simulator is not installed ({e.name}): pip install "
                               f"'difflab[pusht]'") from None
    return gymnasium.make("gym_pusht/PushT-v0", obs_type="state",
                          render_mode="rgb_array" if render else None,
                          visualization_width=GIF_SIZE, visualization_height=GIF_SIZE)


def set_state_exact(env, state) -> None:
    """Put the simulator in a recorded state, the block's angle set before its position (what
    replaying a demonstration needs; reset_to_state sets them the other way round)."""
    u = env.unwrapped
    u.agent.position = list(state[:2])
    u.block.angle = float(state[4])
    u.block.position = list(state[2:4])
    u.space.step(u.dt)


def observe(state: np.ndarray, kind: str, keypoints_local: np.ndarray | None) -> np.ndarray:
    """The policy's observation (E, obs_dim) of simulator states (E, 5): the 5 numbers, or the
    block keypoints computed from the block pose and the agent position (20 numbers)."""
    if kind == "state":
        return obs_from("state", state)
    if keypoints_local is None:
        raise UserError("keypoint observations need the block's keypoints (the run's "
                        "keypoints_local)")
    return obs_from("keypoints", state, block_keypoints(state[:, 2:5], keypoints_local))


def _reset(env, start, exact: bool) -> np.ndarray:
    state, _ = env.reset(options={"reset_to_state": start})
    if exact:
        set_state_exact(env, start)
        state = env.unwrapped.get_obs()
    return state


def rollouts(policy, starts, *, obs: str = "keypoints", keypoints_local=None,
             max_steps: int = MAX_STEPS, gif_episodes: int = 0, exact_reset: bool = False
             ) -> dict:
    """Run `policy` (select_action on a batch) from each start (E, 5). Returns score, success
    rate, per-episode max rewards, steps, seconds per policy chunk and (gif_episodes > 0) the
    first episodes' RGB frames. exact_reset: start exactly in the given states (to replay a
    demonstration) instead of the paper's reset."""
    starts = np.asarray(starts, dtype=np.float64)
    envs = [make_env(render=i < gif_episodes) for i in range(len(starts))]
    state = np.stack([_reset(env, s, exact_reset)
                      for env, s in zip(envs, starts, strict=True)])  # (E, 5)
    best = np.zeros(len(envs))  # the maximum reward so far
    done = np.zeros(len(envs), dtype=bool)
    frames: list[list[np.ndarray]] = [[env.render()] for env in envs[:gif_episodes]]
    policy.reset()
    calls0, t_policy, steps = policy.calls, 0.0, 0
    while steps < max_steps and not done.all():
        t0 = time.perf_counter()
        action = policy.select_action(torch.as_tensor(observe(state, obs, keypoints_local),
                                                      dtype=torch.float32))  # (E, 2)
        action = np.asarray(torch.as_tensor(action).detach().cpu(), dtype=np.float64)
        t_policy += time.perf_counter() - t0
        for i, env in enumerate(envs):
            if done[i]:
                continue
            state[i], reward, terminated, _, _ = env.step(action[i])
            best[i] = max(best[i], reward)
            done[i] = terminated
            if i < gif_episodes:
                frames[i].append(env.render())
        steps += 1
    for env in envs:
        env.close()
    chunks = max(1, policy.calls - calls0)
    return {"score": float(best.mean()), "success_rate": float(done.mean()),  # coverage > 0.95
            "max_reward": best, "steps": steps, "seconds_per_chunk": t_policy / chunks,
            "frames": frames}


def paper_rollouts(policy, episodes: int = 50, **kw) -> dict:
    """`rollouts` from the first `episodes` of the paper's 50 test starts."""
    return rollouts(policy, np.stack([paper_start(s) for s in PAPER_SEEDS[:episodes]]), **kw)


__all__ = ["PAPER_SEEDS", "MAX_STEPS", "MissingSimulator", "paper_start", "make_env",
           "set_state_exact", "observe", "rollouts", "paper_rollouts"]
