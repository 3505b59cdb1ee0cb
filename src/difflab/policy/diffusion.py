"""DiffusionPolicy: observation history -> action chunk -> the actions to execute (Chi et al.
2023, section 3.1: predict Tp actions from the last To observations, execute Ta of them, then
predict again), with the interface of LeRobot's policies: reset(), select_action(observation),
predict_action_chunk(observations)."""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor

from ..sampling import sample
from ..schedules import Schedule


class DiffusionPolicy:
    """A network trained on action chunks, sampled with any difflab sampler.

    model: net(A_t (B, Tp, action_dim), t (B,), O (B, To, obs_dim)) on normalised data;
    normalizer: the run's TrajectoryNormalizer (.obs and .action: normalize / unnormalize).
    sampler, steps: `ddpm` with 100 steps is the paper's; `ddim`, `dpm++2m`, `unipc` with 5 to
    10 evaluations are fast. The k-th chunk prediction uses seed `seed + k` (k counts on across
    reset(), so episodes differ; reset(seed=s) starts again at s), so a rollout is reproducible;
    sample i of a batch draws from the stream (seed + k, i).
    """

    def __init__(self, model, schedule: Schedule, normalizer, *, obs_dim: int, action_dim: int,
                 n_obs_steps: int, horizon: int, n_action_steps: int,
                 prediction: str | None = None, sampler: str = "ddpm", steps: int = 100,
                 clip_x0: float | None = 1.0, seed: int = 0, device="cpu"):
        if not 1 <= n_action_steps <= horizon - n_obs_steps + 1:
            raise ValueError(f"n_action_steps must be in 1..{horizon - n_obs_steps + 1} "
                             f"(horizon - n_obs_steps + 1), got {n_action_steps}")
        self.model, self.schedule, self.normalizer = model, schedule, normalizer
        self.To, self.Tp, self.Ta = n_obs_steps, horizon, n_action_steps
        self.prediction = prediction or getattr(model, "prediction", "eps")
        self.sampler, self.steps, self.clip_x0 = sampler, steps, clip_x0
        self.seed, self.device = seed, torch.device(device)
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the observation history and the queued actions (a new episode). The chunk
        counter goes on, so the next episode draws new noise; seed: restart the noise streams
        at chunk 0 of this seed (to reproduce an episode)."""
        self._history: deque[Tensor] = deque(maxlen=self.To)
        self._queue: deque[Tensor] = deque()
        if seed is not None or not hasattr(self, "calls"):
            self.seed, self.calls = (self.seed if seed is None else seed), 0

    def _check_obs(self, obs: Tensor, shape: tuple[int, ...]) -> Tensor:
        """obs as a float32 CPU tensor of its own (a copy: simulators reuse their buffers)."""
        obs = torch.tensor(obs.detach().cpu().numpy() if isinstance(obs, Tensor) else obs,
                           dtype=torch.float32)
        if tuple(obs.shape[-len(shape):]) != shape or obs.ndim not in (len(shape), len(shape) + 1):
            raise ValueError(f"observation of shape {tuple(obs.shape)}: this policy takes "
                             f"{shape} (or a batch (B, {', '.join(map(str, shape))}))")
        return obs

    @torch.no_grad()
    def predict_action_chunk(self, observations) -> Tensor:
        """The actions to execute, (B, Ta, action_dim), for observation windows (B, To,
        obs_dim) in the data's units: positions [To - 1, To - 1 + Ta) of a sampled chunk."""
        obs = self._check_obs(observations, (self.To, self.obs_dim))
        batched = obs.ndim == 3
        obs = obs if batched else obs[None]
        cond = torch.as_tensor(self.normalizer.obs.normalize(obs), dtype=torch.float32)
        chunk = self.sample_chunk(cond.to(self.device), seed=self.seed + self.calls)
        self.calls += 1
        actions = torch.as_tensor(self.normalizer.action.unnormalize(chunk.cpu()))
        actions = actions[:, self.To - 1:self.To - 1 + self.Ta]  # (B, Ta, A)
        return actions if batched else actions[0]

    def sample_chunk(self, cond: Tensor, seed: int) -> Tensor:
        """A normalised action chunk (B, Tp, A) for normalised observation windows cond (B, To,
        obs_dim): the reverse diffusion, conditioned on them (Chi et al. 2023, eq. 4)."""
        return sample(self.model, self.schedule, shape=(cond.shape[0], self.Tp, self.action_dim),
                      prediction=self.prediction, sampler=self.sampler, steps=self.steps,
                      seed=seed, cond=cond, device=self.device, clip_x0=self.clip_x0)

    def select_action(self, observation) -> Tensor:
        """The next action (action_dim,) or (B, action_dim) for the newest observation
        (obs_dim,) or (B, obs_dim): a new chunk when the queue of Ta actions is empty."""
        obs = self._check_obs(observation, (self.obs_dim,))
        if self._history and self._history[-1].shape != obs.shape:
            raise ValueError(f"the observations changed from shape "
                             f"{tuple(self._history[-1].shape)} to {tuple(obs.shape)}: call "
                             f"reset() for a new episode or batch")
        if not self._history:  # the first observation of an episode fills the window
            self._history.extend([obs] * self.To)
        else:
            self._history.append(obs)
        if not self._queue:
            window = torch.stack(list(self._history), dim=-2)  # ([B,] To, obs_dim)
            chunk = self.predict_action_chunk(window)  # ([B,] Ta, A)
            self._queue.extend(chunk.unbind(-2))
        return self._queue.popleft()


__all__ = ["DiffusionPolicy"]
