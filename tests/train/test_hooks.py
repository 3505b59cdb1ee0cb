"""Hooks (difflab.train.hooks): every-N-steps jobs whose metrics reach metrics.jsonl and
`difflab info`, named by the config, and unable to change what is trained."""

import json
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from difflab.cli import main
from difflab.train import (
    Hook,
    TrainError,
    available_hooks,
    read_hook_metrics,
    read_metrics,
    register_hook,
    train,
)


class Jittered(Dataset):
    """The toy points with numpy noise added on every read: random augmentation drawn from the
    global numpy RNG, which exact resume (num_workers 0) keeps."""

    def __init__(self, base):
        self.base, self.num_classes, self.shape = base, base.num_classes, base.shape

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return x + torch.from_numpy(np.random.normal(0, 0.05, 2).astype(np.float32)), y


def _lines(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@register_hook("test-count")
class Count(Hook):
    """Counts its calls and reports the step it saw and the mean of the EMA's first weight."""

    def __init__(self, every, cfg, task, **options):
        super().__init__(every, cfg, task, **options)
        self.calls = 0

    def __call__(self, ctx):
        self.calls += 1
        first = next(iter(ctx.ema.parameters()))
        return {"calls": self.calls, "seen_step": ctx.step, "w": float(first.mean())}


def test_hook_metrics_are_step_stamped_and_shown_by_info(toys, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = toys.toy_config(run, steps=10, log_every=5, checkpoint_every=5,
                          hooks={"test-count": 4, "ema_loss": {"every": 5, "batches": 2}})
    train(cfg, net=toys.make_net(), dataset=toys.ToyPoints())
    hooks = read_hook_metrics(run / "metrics.jsonl")
    count = [r for r in hooks if r["hook"] == "test-count"]
    assert [(r["step"], r["seen_step"], r["calls"]) for r in count] == [
        (4, 4, 1), (8, 8, 2), (10, 10, 3)]  # and once at the end, off its grid
    ema = [r for r in hooks if r["hook"] == "ema_loss"]
    assert [r["step"] for r in ema] == [5, 10] and ema[1]["ema_loss"] < ema[0]["ema_loss"]
    # the training records are unchanged by the hook records beside them
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [5, 10]
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"ema_loss     {ema[1]['ema_loss']:.4g} at step 10" in out
    assert "test-count.calls 3 at step 10" in out


@pytest.mark.parametrize("kept", [True, False])
def test_hooks_do_not_change_the_trained_weights(toys, tmp_path, monkeypatch, kept):
    """A network with dropout draws from torch's RNG, the data's augmentation from numpy's;
    hooks (a sample picture, the EMA loss, whose data loader draws a seed and reads augmented
    items) run between steps. The weights equal those of a run without hooks, because the loop
    puts every RNG back after a hook; the control (kept=False: it does not) shows the test
    would see the difference."""
    from difflab.train import loop

    if not kept:
        monkeypatch.setattr(loop, "kept_rng", lambda device: nullcontext())
    data, kw = Jittered(toys.ToyPoints()), dict(steps=8, class_cond=True, cond_drop=0.25)
    plain = toys.make_net(num_classes=2, dropout=0.3)
    train(toys.toy_config(tmp_path / "plain", **kw), net=plain, dataset=data)
    hooked = toys.make_net(num_classes=2, dropout=0.3)
    train(toys.toy_config(tmp_path / "hooked", sample_every=3, num_sample=16, sample_steps=3,
                          hooks={"ema_loss": 2}, **kw), net=hooked, dataset=data)
    assert (tmp_path / "hooked" / "samples" / "step-00000006.png").is_file()
    same = all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(),
                                                 hooked.state_dict().values(), strict=True))
    assert same == kept


def test_resumed_run_logs_the_same_hook_metrics(toys, tmp_path):
    """Also with augmented data: the EMA loss's fixed set is the same whenever it is built
    (here at step 3, and again after the resume, at step 9)."""
    data = Jittered(toys.ToyPoints())
    kw = dict(log_every=2, checkpoint_every=4, hooks={"ema_loss": 3})
    train(toys.toy_config(tmp_path / "a", steps=12, **kw), net=toys.make_net(), dataset=data)
    with pytest.raises(KeyboardInterrupt):
        train(toys.toy_config(tmp_path / "b", steps=12, **kw), net=toys.make_net(interrupt_at=7),
              dataset=data)
    train(toys.toy_config(tmp_path / "b", steps=12, **kw), resume=True, net=toys.make_net(),
          dataset=data)
    a, b = _lines(tmp_path / "a"), _lines(tmp_path / "b")

    def strip(rows):  # the speed differs from run to run
        return [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]

    assert strip(a) == strip(b)
    assert [r["step"] for r in a if r.get("hook")] == [3, 6, 9, 12]


def test_hook_names_and_options_are_checked_before_anything_is_written(toys, tmp_path):
    run, data = tmp_path / "run", toys.ToyPoints()
    assert {"samples", "ema_loss"} <= set(available_hooks())
    cases = [({"nope": 10}, r"unknown hook 'nope'; choose one of samples, ema_loss"),
             ({"samples": 10}, "sample_every"),
             ({"ema_loss": {"every": 5, "size": 3}}, r"no option\(s\) size; its options: every, "
                                                     "batches"),
             ({"ema_loss": {"every": 5, "batches": 0}}, "batches must be a positive integer"),
             ({"ema_loss": {"batches": 2}}, "config field hooks"),
             ({"ema_loss": -1}, "config field hooks")]
    for hooks, msg in cases:
        with pytest.raises(TrainError, match=msg) as e:
            train(toys.toy_config(run, hooks=hooks), net=toys.make_net(), dataset=data)
        assert "\n" not in str(e.value)
        assert not run.exists()
    # the samples hook's sampler budget is checked before training, not at the first picture
    with pytest.raises(TrainError, match="pc spends 2 evaluations"):
        train(toys.toy_config(run, sample_every=5, sampler="pc", sample_steps=1),
              net=toys.make_net(), dataset=data)
    assert not run.exists()


def test_interval_0_is_never_and_a_hook_must_return_numbers(toys, tmp_path):
    run, data = tmp_path / "run", toys.ToyPoints()
    train(toys.toy_config(run, steps=4, hooks={"ema_loss": 0, "test-count": 2}),
          net=toys.make_net(), dataset=data)
    assert {r["hook"] for r in read_hook_metrics(run / "metrics.jsonl")} == {"test-count"}

    @register_hook("test-bad")
    class Bad(Hook):
        def __call__(self, ctx):
            return self.options_returned

    for returned, msg in (({"step": 1.0}, "'step' and 'hook' are taken"),
                          ({"x": "high"}, "returned x = 'high', not a number"),
                          ([1.0], "returned list; a hook returns a dict")):
        Bad.options_returned = returned
        with pytest.raises(TrainError, match=msg):
            train(toys.toy_config(tmp_path / str(len(msg)), steps=2, hooks={"test-bad": 1}),
                  net=toys.make_net(), dataset=data)
