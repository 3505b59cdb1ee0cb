"""The policy tasks (difflab.train.actions) and the policies (difflab.policy) on the bimodal toy
problem: the diffusion policy passes the obstacle on both sides, in proportion, without hitting
it; the MSE baseline, with the same network and chunking, averages the two ways into the
obstacle (Chi et al. 2023, section 2)."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from torch import nn

from difflab.data.toy_policy import bimodal_demos
from difflab.data.trajectories import TrajectoryDataset
from difflab.eval.rollouts import bimodal_rollouts
from difflab.nets.layers import sinusoidal_embedding
from difflab.policy import DiffusionPolicy
from difflab.train import TrainError, load_policy, train

TO, TP, TA = 2, 16, 8


class ChunkMLP(nn.Module):
    """net(x (B, Tp, A), t (B,), cond (B, To, O)) -> (B, Tp, A): an MLP on the flattened chunk,
    a sinusoidal embedding of 1000 t and the flattened observations."""

    def __init__(self, action_dim=2, horizon=TP, obs_dim=2, n_obs_steps=TO, hidden=256,
                 out_dim=None):
        super().__init__()
        n_in = horizon * action_dim + 64 + n_obs_steps * obs_dim
        self.out_shape = (horizon, out_dim or action_dim)
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                  nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                  nn.Linear(hidden, horizon * (out_dim or action_dim)))

    def forward(self, x, t, cond):
        B = x.shape[0]
        emb = sinusoidal_embedding(1000 * t, 64).to(x.dtype)  # (B, 64)
        h = torch.cat([x.reshape(B, -1), emb, cond.reshape(B, -1)], 1)
        return self.body(h).reshape(B, x.shape[1], -1)  # (B, Tp, out_dim or A)


@pytest.fixture(scope="module")
def bimodal():
    d = bimodal_demos(200, seed=0)
    return TrajectoryDataset(d["obs"], d["action"], d["episode_ends"], n_obs_steps=TO,
                             horizon=TP, n_action_steps=TA)


def _config(toys, run, task, **kw):
    base = dict(task=task, dataset="bimodal", schedule="cosine", schedule_kwargs={"T": 100},
                prediction="eps", steps=3000, batch_size=256, lr=2e-3, warmup_steps=50,
                ema_decay=0.999, ema_power=0.75, sampler="ddim", sample_steps=10,
                sample_every=3000, num_sample=12, checkpoint_every=0, log_every=500)
    return toys.toy_config(run, **{**base, **kw})


@pytest.fixture(scope="module")
def trained(toys, bimodal, tmp_path_factory):
    """Both policies trained by the same loop on the same windows: {task: run directory}."""
    runs = {}
    for task in ("policy", "policy-mse"):
        run = tmp_path_factory.mktemp(task) / "run"
        torch.manual_seed(0)
        train(_config(toys, run, task), net=ChunkMLP(), dataset=bimodal)
        runs[task] = run
    return runs


def test_the_diffusion_policy_takes_both_ways_and_mse_hits_the_obstacle(trained):
    diffusion = load_policy(trained["policy"], sampler="ddpm", steps=100, net=ChunkMLP)
    mse = load_policy(trained["policy-mse"], net=ChunkMLP)
    d, m = bimodal_rollouts(diffusion, n=100), bimodal_rollouts(mse, n=100)
    # measured over training seeds 0, 1, 2: diffusion collisions 0.02 to 0.04, left 0.40 to
    # 0.44, reached 0.97 to 1.0; MSE collisions 1.0
    assert d["collision_rate"] <= 0.12 and d["reached"] >= 0.9
    assert 0.3 <= d["left_fraction"] <= 0.7 and d["left_fraction"] + d["right_fraction"] >= 0.9
    assert m["collision_rate"] >= 0.5


def test_a_policy_run_keeps_its_normaliser_and_windows(trained, bimodal):
    run = trained["policy"]
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    assert resolved["task"] == "policy"
    assert (resolved["obs_dim"], resolved["action_dim"]) == (2, 2)
    assert (resolved["n_obs_steps"], resolved["horizon"], resolved["n_action_steps"]) == (TO, TP,
                                                                                          TA)
    assert (run / "normalizer.json").is_file()
    assert (run / "samples" / "step-00003000.png").is_file()  # the task's preview
    policy = load_policy(run, sampler="ddim", steps=5, net=ChunkMLP)
    x = torch.as_tensor(bimodal.normalizer.action.unnormalize(torch.zeros(3, 2)))
    y = torch.as_tensor(policy.normalizer.action.unnormalize(torch.zeros(3, 2)))
    assert torch.allclose(x, y)


def test_receding_horizon_and_errors(trained):
    policy = load_policy(trained["policy"], sampler="ddim", steps=4, net=ChunkMLP)
    obs = torch.tensor([[0.0, -1.0], [0.01, -1.0]])
    chunk = policy.predict_action_chunk(torch.stack([obs, obs], 1))  # (2, To, 2) windows
    assert chunk.shape == (2, TA, 2) and policy.calls == 1
    policy.reset(seed=0)
    actions = [policy.select_action(obs) for _ in range(2 * TA + 1)]
    assert policy.calls == 3 and all(a.shape == (2, 2) for a in actions)  # a chunk per Ta
    policy.reset()
    assert not torch.equal(policy.select_action(obs), actions[0])  # the next episode: new noise
    policy.reset(seed=0)
    assert torch.equal(policy.select_action(obs), actions[0])  # the same stream again
    with pytest.raises(ValueError, match=r"changed from shape \(2, 2\) to \(3, 2\): call reset"):
        policy.select_action(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"observation of shape \(2, 3\): this policy takes "
                                         r"\(2,\)"):
        policy.select_action(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="n_action_steps must be in 1..15"):
        DiffusionPolicy(policy.model, policy.schedule, policy.normalizer, obs_dim=2,
                        action_dim=2, n_obs_steps=2, horizon=16, n_action_steps=16)


def test_load_policy_refuses_other_runs(toys, tmp_path):
    run = tmp_path / "run"
    train(toys.toy_config(run, steps=2), net=toys.make_net(), dataset=toys.ToyPoints())
    with pytest.raises(TrainError, match="is not a policy run"):
        load_policy(run)


def test_the_policy_task_needs_trajectories(toys, tmp_path):
    with pytest.raises(TrainError, match="task policy needs a trajectory dataset"):
        train(_config(toys, tmp_path / "r", "policy", steps=2), net=ChunkMLP(),
              dataset=toys.ToyPoints())


def test_the_pusht_presets_train_and_give_a_policy(tmp_path, capsys):
    """`difflab train pusht-small` on a tiny replay store written here (a few short random
    episodes in the real layout), then its policy: the CLI path end to end."""
    zarr = pytest.importorskip("zarr")
    import math

    from difflab.cli import main

    rng = np.random.default_rng(0)
    lengths = [30, 25, 28]
    n = sum(lengths)
    state = np.concatenate([rng.uniform(50, 450, (n, 4)), rng.uniform(0, 2 * math.pi, (n, 1))], 1)
    store = zarr.open_group(str(tmp_path / "pusht_cchi_v7_replay.zarr"), mode="w")
    store.create_dataset("data/state", data=state.astype(np.float32))
    store.create_dataset("data/action", data=rng.uniform(0, 512, (n, 2)).astype(np.float32))
    store.create_dataset("data/keypoint", data=rng.uniform(0, 512, (n, 9, 2)).astype(np.float32))
    store.create_dataset("meta/episode_ends", data=np.cumsum(lengths))
    run = tmp_path / "run"
    assert main(["train", "pusht-small", "--steps", "3", "--batch-size", "8", "--run-dir",
                 str(run), "--dataset-kwargs", json.dumps({"root": str(tmp_path),
                                                           "split": "all"}),
                 "--sample-every", "0", "--checkpoint-every", "0", "--no-progress",
                 "--device", "cpu"]) == 0
    policy = load_policy(run, sampler="unipc", steps=3)
    window = torch.tensor(np.concatenate([rng.uniform(0, 512, (2, 18)),
                                          rng.uniform(50, 450, (2, 2))], 1), dtype=torch.float32)
    actions = policy.predict_action_chunk(window[None].repeat(3, 1, 1))  # (3, To, 20)
    assert actions.shape == (3, TA, 2) and torch.isfinite(actions).all()
    assert main(["info", str(run)]) == 0 and "unet1d-pusht-small" in capsys.readouterr().out
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    assert resolved["pusht"]["obs"] == "keypoints"
    assert np.asarray(resolved["pusht"]["keypoints_local"]).shape == (9, 2)

    if importlib.util.find_spec("gym_pusht") is None:
        pytest.skip("the simulator (difflab[pusht]) is not installed")
    # scored in the simulator from the command line, and as a hook during training
    assert main(["policy", "eval", str(run), "--episodes", "2", "--max-steps", "4",
                 "--sampler", "unipc", "--steps", "2", "--gif", str(tmp_path / "r.gif")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("score ") and "success rate" in out and (tmp_path / "r.gif").is_file()
    hooked = tmp_path / "hooked"
    assert main(["train", "pusht-small", "--steps", "2", "--batch-size", "8", "--run-dir",
                 str(hooked), "--dataset-kwargs", json.dumps({"root": str(tmp_path)}),
                 "--hooks", json.dumps({"pusht_rollout": {"every": 2, "episodes": 2,
                                                          "max_steps": 3, "sampler": "unipc",
                                                          "steps": 2}}),
                 "--sample-every", "0", "--checkpoint-every", "0", "--no-progress",
                 "--device", "cpu"]) == 0
    from difflab.train import read_hook_metrics

    rows = read_hook_metrics(hooked / "metrics.jsonl")
    assert [r["hook"] for r in rows] == ["pusht_rollout"] and 0 <= rows[0]["score"] <= 1
    assert main(["policy", "eval", str(tmp_path / "nowhere")]) == 2


def test_bins_are_uniform_over_the_normalised_range():
    from difflab.policy import BINS, bin_centre, bin_index

    a = torch.tensor([-1.0, -1 + 1e-6, -1 + 2 / BINS, 0.0, 1 - 1e-6, 1.0, 3.0])
    assert bin_index(a).tolist() == [0, 0, 1, BINS // 2, BINS - 1, BINS - 1, BINS - 1]
    k = torch.arange(BINS)
    assert torch.equal(bin_index(bin_centre(k)), k)  # each centre lies in its own bin
    x = torch.rand(10_000) * 2 - 1
    err = (bin_centre(bin_index(x)) - x).abs()
    assert float(err.max()) <= 1 / BINS + 1e-6  # half a bin at most


def test_the_baselines_train_through_the_same_loop(toys, tmp_path):
    """The binned and MSE baselines on the precision toy: they train (their losses fall), and
    their policies return chunks in the data's units; the binned one only bin centres."""
    from difflab.data.toy_policy import precision_demos
    from difflab.eval.rollouts import precision_rollouts
    from difflab.policy import BINS, BinnedPolicy, RegressionPolicy

    d = precision_demos(50, seed=0)
    data = TrajectoryDataset(d["obs"], d["action"], d["episode_ends"], n_obs_steps=TO,
                             horizon=TP, n_action_steps=TA)
    for task, cls, out_dim in (("policy-binned", BinnedPolicy, 2 * BINS),
                               ("policy-mse", RegressionPolicy, None)):
        run = tmp_path / task
        torch.manual_seed(0)
        train(_config(toys, run, task, steps=200, log_every=50, sample_every=0),
              net=ChunkMLP(obs_dim=4, out_dim=out_dim), dataset=data)
        losses = [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert losses[-1] < 0.7 * losses[0], (task, losses)
        policy = load_policy(run, net=lambda o=out_dim: ChunkMLP(obs_dim=4, out_dim=o))
        assert type(policy) is cls
        out = precision_rollouts(policy, n=20)
        assert out["error"].shape == (20,) and np.isfinite(out["error"]).all()
    chunk = policy.normalizer.action.normalize(policy.predict_action_chunk(
        torch.zeros(1, TO, 4)))
    assert chunk.shape == (1, TA, 2)
    with pytest.raises(TrainError, match="out_dim = action_dim x 256 = 512"):
        train(_config(toys, tmp_path / "bad", "policy-binned", steps=2), net=ChunkMLP(obs_dim=4),
              dataset=data)


class ConstantChunk(nn.Module):
    """An x0-predicting 'network' whose chunk is always position j -> (j / 16, -j / 16)."""

    prediction = "x0"

    def forward(self, x, t, cond):
        j = torch.arange(x.shape[1], dtype=x.dtype) / 16  # (Tp,)
        return torch.stack([j, -j], 1).expand(x.shape[0], -1, -1)  # (B, Tp, 2)


def test_the_executed_actions_are_positions_to_minus_1_onwards(bimodal):
    """Chunk positions [To - 1, To - 1 + Ta) are executed, in the data's units; the window
    holds copies of the observations, not the caller's buffer."""
    policy = DiffusionPolicy(ConstantChunk(), bimodal_schedule(), bimodal.normalizer, obs_dim=2,
                             action_dim=2, n_obs_steps=TO, horizon=TP, n_action_steps=TA,
                             sampler="ddim", steps=3)
    j = torch.arange(TO - 1, TO - 1 + TA, dtype=torch.float32) / 16
    want = bimodal.normalizer.action.unnormalize(torch.stack([j, -j], 1))  # (Ta, 2)
    buffer = torch.tensor([0.0, -1.0])
    seen = []
    policy.predict_action_chunk = lambda w, f=policy.predict_action_chunk: seen.append(
        w.clone()) or f(w)
    got = []
    for k in range(TA):
        buffer[0] = float(k)  # a simulator writing into one buffer
        got.append(policy.select_action(buffer))
    assert torch.allclose(torch.stack(got), want, atol=1e-5)
    policy.reset(seed=0)
    for k in range(2):
        buffer[0] = 10.0 + k
        policy.select_action(buffer)
    assert seen[0][:, 0].tolist() == [0.0, 0.0]  # the first observation fills the window
    assert len(seen) == 2 and seen[1][:, 0].tolist() == [10.0, 10.0]


def bimodal_schedule():
    from difflab import get_schedule

    return get_schedule("cosine", T=100)
