"""Trajectory windows, the min-max normaliser and the dataset of (observation, action chunk)."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from difflab.data.trajectories import (
    RANGE_EPS,
    Normalizer,
    TrajectoryDataset,
    TrajectoryNormalizer,
    episode_slices,
    sequence_windows,
)


def frames(lengths, obs_dim=3, action_dim=2, seed=0):
    """Random episodes: obs (N, obs_dim), action (N, action_dim), exclusive ends (E,)."""
    rng = np.random.default_rng(seed)
    n = int(sum(lengths))
    obs = rng.normal(size=(n, obs_dim)) * [1.0, 50.0, 0.01][:obs_dim] + 7
    action = rng.uniform(0, 512, size=(n, action_dim))
    return obs, action, np.cumsum(lengths)


# ----------------------------------------------------------------------------------------------
# The normaliser


def test_normalize_then_unnormalize_is_the_identity():
    obs, _, _ = frames([40, 25])
    norm = Normalizer.fit(obs)
    y = norm.normalize(obs)
    assert y.dtype == np.float64 and y.shape == obs.shape
    np.testing.assert_allclose(norm.unnormalize(y), obs, rtol=0, atol=1e-12)
    x32 = torch.as_tensor(obs, dtype=torch.float32).reshape(5, 13, 3)  # any leading dims
    y32 = norm.normalize(x32)
    assert isinstance(y32, torch.Tensor) and y32.dtype == torch.float32 and y32.shape == (5, 13, 3)
    np.testing.assert_allclose(norm.unnormalize(y32).numpy(), x32.numpy(), rtol=1e-6, atol=1e-5)


def test_limits_map_the_data_onto_minus_one_to_one():
    obs, _, _ = frames([60])
    y = Normalizer.fit(obs).normalize(obs)
    np.testing.assert_allclose(y.min(0), -1, atol=1e-12)
    np.testing.assert_allclose(y.max(0), 1, atol=1e-12)
    np.testing.assert_allclose(Normalizer.fit(obs).normalize(obs[:1]), y[:1])  # per row


def test_fit_over_all_but_the_last_axis():
    x = np.random.default_rng(1).normal(size=(4, 6, 3))
    a, b = Normalizer.fit(x), Normalizer.fit(x.reshape(-1, 3))
    np.testing.assert_array_equal(a.scale, b.scale)
    np.testing.assert_array_equal(a.offset, b.offset)


def test_a_constant_dimension_is_only_shifted():
    x = np.random.default_rng(2).normal(size=(50, 3))
    x[:, 1] = 5.0  # constant
    x[:, 2] = 3.0 + np.linspace(0, 0.5 * RANGE_EPS, 50)  # range below the threshold
    norm = Normalizer.fit(x)
    assert norm.scale[1] == 1 and norm.offset[1] == -5.0
    assert norm.scale[2] == 1 and norm.offset[2] == -3.0
    y = norm.normalize(x)
    np.testing.assert_array_equal(y[:, 1], 0.0)
    np.testing.assert_allclose(y[:, 2], x[:, 2] - 3.0, atol=1e-15)
    np.testing.assert_allclose(norm.unnormalize(y)[:, 1:], x[:, 1:], atol=1e-14)
    wide = Normalizer.fit(np.array([[0.0], [2 * RANGE_EPS]]))  # above it: scaled to [-1, 1]
    np.testing.assert_allclose(wide.normalize(np.array([[0.0], [2 * RANGE_EPS]]))[:, 0], [-1, 1])


def test_normalizer_errors():
    norm = Normalizer.fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="expected 2 values in the last axis"):
        norm.normalize(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="N, D > 0"):
        Normalizer.fit(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.fit(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="missing offset"):
        Normalizer.from_dict({"scale": [1.0], "min": [0.0], "max": [1.0]})
    with pytest.raises(ValueError, match="scales positive"):
        Normalizer([0.0], [0.0], [0.0], [1.0])


def test_json_round_trip(tmp_path):
    obs, action, _ = frames([30, 20])
    obs[:, 0] = 1.25  # a shifted-only dimension travels too
    tn = TrajectoryNormalizer.fit(obs, action)
    path = tn.save(tmp_path / "normalizer.json")
    assert [p.name for p in tmp_path.iterdir()] == ["normalizer.json"]  # no temporary left
    d = json.loads(path.read_text())  # plain JSON: lists of numbers
    assert d["format"] == "difflab-trajectory-normalizer" and isinstance(d["obs"]["scale"], list)
    back = TrajectoryNormalizer.load(path)
    for a, b in ((tn.obs, back.obs), (tn.action, back.action)):
        for k in ("scale", "offset", "lo", "hi"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))  # bit for bit
    np.testing.assert_array_equal(back.obs.normalize(obs), tn.obs.normalize(obs))
    assert TrajectoryNormalizer.from_dict(tn.to_dict()).action.dim == 2


def test_loading_a_file_that_is_not_a_normaliser(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON normaliser file"):
        TrajectoryNormalizer.load(bad)
    bad.write_text('{"obs": {}}')
    with pytest.raises(ValueError, match="not a trajectory normaliser"):
        TrajectoryNormalizer.load(bad)


# ----------------------------------------------------------------------------------------------
# Windows


def test_windows_by_hand():
    # episodes [0, 1, 2] and [3, 4]; horizon 4, one frame of padding before, two after
    w = sequence_windows([3, 5], horizon=4, pad_before=1, pad_after=2)
    np.testing.assert_array_equal(w, [[0, 0, 1, 2],   # starts one frame early: frame 0 repeated
                                      [0, 1, 2, 2],
                                      [1, 2, 2, 2],   # ends two frames late: frame 2 repeated
                                      [3, 3, 4, 4],   # a 2-frame episode, shorter than horizon
                                      [3, 4, 4, 4]])
    np.testing.assert_array_equal(sequence_windows([3], 2), [[0, 1], [1, 2]])  # no padding
    assert sequence_windows([2], 4).shape == (0, 4)  # too short without padding: no window


def create_indices_reference(ends, horizon, pad_before, pad_after):
    """Chi et al. 2023's SequenceSampler indices, written out literally (buffer and sample
    ranges per window), then expanded into the frame of each window position."""
    out, start = [], 0
    for end in ends:
        length = end - start
        for idx in range(-pad_before, length - horizon + pad_after + 1):
            b0 = max(idx, 0) + start
            b1 = min(idx + horizon, length) + start
            s0 = b0 - (idx + start)
            s1 = horizon - ((idx + horizon + start) - b1)
            assert s1 - s0 == b1 - b0
            row = [0] * horizon
            buf = list(range(b0, b1))
            row[s0:s1] = buf
            row[:s0] = [buf[0]] * s0  # data[:sample_start] = sample[0]
            row[s1:] = [buf[-1]] * (horizon - s1)  # data[sample_end:] = sample[-1]
            out.append(row)
        start = end
    return np.array(out, dtype=np.int64).reshape(-1, horizon)


@pytest.mark.parametrize("seed", range(6))
def test_windows_match_the_papers_sampler(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, size=rng.integers(1, 8))
    horizon = int(rng.integers(1, 17))
    pad_before, pad_after = (int(rng.integers(0, horizon)) for _ in range(2))
    ends = np.cumsum(lengths)
    got = sequence_windows(ends, horizon, pad_before, pad_after)
    np.testing.assert_array_equal(got, create_indices_reference(ends, horizon, pad_before,
                                                                pad_after))


def test_window_errors():
    with pytest.raises(ValueError, match="pad_after must be an integer in"):
        sequence_windows([5], horizon=3, pad_after=3)
    with pytest.raises(ValueError, match="ascending"):
        sequence_windows([5, 3], horizon=2)
    assert episode_slices([2, 2, 5]) == [slice(0, 2), slice(2, 2), slice(2, 5)]
    assert sequence_windows([2, 2, 5], 2).shape == (1 + 2, 2)  # the empty episode adds none


# ----------------------------------------------------------------------------------------------
# The dataset


def test_items_are_normalised_windows_padded_at_the_edges():
    obs, action, ends = frames([12, 9, 20])
    ds = TrajectoryDataset(obs, action, ends, n_obs_steps=2, horizon=8, n_action_steps=4)
    assert (ds.obs_dim, ds.action_dim, ds.shape, ds.num_classes) == (3, 2, (8, 2), 0)
    assert len(ds) == sum(n - 8 + 1 + 3 + 1 for n in (12, 9, 20))
    windows = sequence_windows(ends, 8, pad_before=1, pad_after=3)
    o_n, a_n = ds.normalizer.obs.normalize(obs), ds.normalizer.action.normalize(action)
    for i in (0, 1, 5, len(ds) - 1):
        o, a = ds[i]
        assert o.dtype == a.dtype == torch.float32 and o.shape == (2, 3) and a.shape == (8, 2)
        np.testing.assert_allclose(o.numpy(), o_n[windows[i, :2]], atol=1e-6)
        np.testing.assert_allclose(a.numpy(), a_n[windows[i]], atol=1e-6)
    o, a = ds[0]  # the first window starts one frame before the episode: frame 0 twice
    assert torch.equal(o[0], o[1]) and torch.equal(a[0], a[1])
    _, a = ds[12 - 8 + 1 + 3]  # the last window of episode 0 ends 3 frames after it
    assert all(torch.equal(a[j], a[4]) for j in range(5, 8))  # frame 11 repeated
    assert ds.episodes() == [slice(0, 12), slice(12, 21), slice(21, 41)]


def test_every_training_action_lies_in_minus_one_to_one():
    obs, action, ends = frames([30, 17, 44], seed=3)
    ds = TrajectoryDataset(obs, action, ends, 2, 16, 8)
    o, a = next(iter(DataLoader(ds, batch_size=len(ds))))  # (B, 2, 3), (B, 16, 2)
    assert a.shape == (len(ds), 16, 2) and o.shape == (len(ds), 2, 3)
    assert float(a.min()) == -1.0 and float(a.max()) == 1.0  # attained, never passed
    assert float(o.min()) >= -1.0 and float(o.max()) <= 1.0


def test_a_given_normalizer_is_used():
    obs, action, ends = frames([30, 20])
    train = TrajectoryDataset(obs[:30], action[:30], [30], 2, 16, 8)
    val = TrajectoryDataset(obs[30:], action[30:], [20], 2, 16, 8, normalizer=train.normalizer)
    assert val.normalizer is train.normalizer
    first = [30] + list(range(30, 45))  # the first window of the second episode, padded
    np.testing.assert_allclose(val[0][1].numpy(), train.normalizer.action.normalize(
        action[first]), atol=1e-6)


def test_dataset_errors():
    obs, action, ends = frames([10])
    with pytest.raises(ValueError, match="exceeds horizon"):
        TrajectoryDataset(obs, action, ends, n_obs_steps=2, horizon=8, n_action_steps=8)
    with pytest.raises(ValueError, match="the last episode ends at 9 but there are 10 frames"):
        TrajectoryDataset(obs, action, [9], 2, 8, 4)
    with pytest.raises(ValueError, match="obs has 10 frames but action has 9"):
        TrajectoryDataset(obs, action[:9], ends, 2, 8, 4)
    other = TrajectoryNormalizer.fit(obs[:, :2], action)
    with pytest.raises(ValueError, match="normaliser is for obs_dim 2"):
        TrajectoryDataset(obs, action, ends, 2, 8, 4, normalizer=other)
    with pytest.raises(IndexError):
        TrajectoryDataset(obs, action, ends, 2, 8, 4)[100]
