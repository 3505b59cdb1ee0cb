"""Push-T rollouts in the real simulator (gym-pusht, the `pusht` extra, which `make test`
installs): the paper's starts, the step limit, and the score arithmetic against replayed
demonstrations."""

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gym_pusht")

from difflab.eval.pusht import (  # noqa: E402
    PAPER_SEEDS,
    make_env,
    paper_rollouts,
    paper_start,
    rollouts,
    set_state_exact,
)

REPLAY = Path(__file__).parents[3] / "shared" / "data" / "pusht" / "pusht_cchi_v7_replay.zarr"


class Scripted:
    """A stand-in policy: per-episode action sequences (E, K, 2), one action a call; after
    the last one it holds the agent where it is. Counts a 'chunk' every 8 actions."""

    def __init__(self, actions=None, agent=slice(-2, None)):
        self.actions, self.calls, self.agent = actions, 0, agent  # where obs holds the agent

    def reset(self):
        self.k = 0

    def select_action(self, obs):  # obs (E, obs_dim); the agent position is obs[:, -2:]
        if self.k % 8 == 0:
            self.calls += 1
        here = obs[:, self.agent]
        if self.actions is None or self.k >= self.actions.shape[1]:
            out = here
        else:
            out = torch.as_tensor(self.actions[:, self.k], dtype=torch.float32)
        self.k += 1
        return out


def test_the_paper_starts():
    # the paper's draws, in their order (pinned: a reordering would change every start)
    assert paper_start(100_000)[:4].tolist() == [235, 124, 335, 128]
    assert paper_start(100_000)[4] == pytest.approx(-0.90492743)
    assert paper_start(100_049)[:4].tolist() == [143, 388, 104, 324]
    starts = np.stack([paper_start(s) for s in PAPER_SEEDS])
    assert starts.shape == (50, 5) and len({tuple(s) for s in starts}) == 50
    assert ((starts[:, :2] >= 50) & (starts[:, :2] < 450)).all()
    assert ((starts[:, 2:4] >= 100) & (starts[:, 2:4] < 400)).all()
    assert (np.abs(starts[:, 4]) <= 8 * np.pi).all()
    env = make_env()
    state, _ = env.reset(options={"reset_to_state": starts[0]})
    assert np.allclose(state[:2], starts[0][:2])  # the agent goes where it is told
    env.close()


def test_step_limit_and_a_policy_that_does_nothing():
    out = paper_rollouts(Scripted(agent=slice(0, 2)), episodes=3, obs="state", max_steps=7)
    assert out["steps"] == 7 and out["max_reward"].shape == (3,)
    assert out["score"] == pytest.approx(out["max_reward"].mean())
    assert out["success_rate"] == 0.0 and 0 <= out["score"] < 0.5


@pytest.mark.skipif(not REPLAY.exists(), reason="needs the shared Push-T demonstrations")
def test_replayed_demonstrations_score_what_the_simulator_reports(tmp_path):
    """Replaying recorded actions from recorded starts (angle set before position) reproduces
    the recorded states; the score is the mean over episodes of each one's best reward."""
    from difflab.data.pusht import fit_block_keypoints
    from difflab.data.replay import read_replay

    d = read_replay(REPLAY)
    ends = d["episode_ends"]
    first = np.concatenate([[0], ends[:-1]])
    eps = [0, 1, 2]
    K = max(ends[e] - first[e] for e in eps)
    actions = np.stack([np.pad(d["action"][first[e]:ends[e]], ((0, K - ends[e] + first[e]),
                                                                 (0, 0)), mode="edge")
                        for e in eps])  # (3, K, 2), the last action held
    local = fit_block_keypoints(d["state"], d["keypoint"])
    out = rollouts(Scripted(actions), d["state"][first[eps]], keypoints_local=local,
                   max_steps=K, exact_reset=True, gif_episodes=1)
    # the same episodes stepped by hand (the padded actions too), their best
    # min(coverage / 0.95, 1); while the recorded actions last, the recorded states come back
    best = []
    for i, e in enumerate(eps):
        env = make_env()
        env.reset(options={"reset_to_state": d["state"][first[e]]})
        set_state_exact(env, d["state"][first[e]])
        rewards = []
        for k in range(K):
            state, r, term, _, info = env.step(actions[i, k])
            assert r == pytest.approx(min(info["coverage"] / 0.95, 1.0))
            if first[e] + k + 1 < ends[e]:
                recorded = d["state"][first[e] + k + 1][:4]
                assert np.abs(state[:4] - recorded).max() < 1e-3  # float32 data
            rewards.append(r)
            if term:
                break
        best.append(max(rewards))
        env.close()
    assert out["max_reward"] == pytest.approx(best)
    assert out["score"] == pytest.approx(np.mean(best)) and out["score"] > 0.9
    frames = out["frames"]
    assert len(frames) == 1 and len(frames[0]) > 100 and frames[0][0].ndim == 3  # RGB frames
