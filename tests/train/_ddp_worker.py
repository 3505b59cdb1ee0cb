"""Run by tests/test_train.py under `python -m torch.distributed.run --nproc_per_node 2`.

Each process trains the stand-in net three times with the same config, as torchrun would run
`difflab train`: run A for 2N steps straight; run B for N steps, then resumed to 2N. Every
process then saves the weights it holds to OUT/rank{r}.pt for the test to compare.

usage: _ddp_worker.py OUT_DIR STEPS
"""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import ToyPoints, make_net, state_tensors, toy_config  # noqa: E402

from difflab.train import load_run, train  # noqa: E402


def main() -> None:
    out, steps = Path(sys.argv[1]), int(sys.argv[2])
    rank = int(os.environ["RANK"])
    data = ToyPoints()
    held = {}
    for name, plan in (("a", [(2 * steps, False)]), ("b", [(steps, False), (2 * steps, True)])):
        for n, resume in plan:
            net = make_net(num_classes=2)
            cfg = toy_config(out / name, steps=n, batch_size=16, class_cond=True, cond_drop=0.25,
                             grad_accum=2, warmup_steps=3, grad_clip=0.5, checkpoint_every=3,
                             sample_every=2 * steps, num_sample=32)
            train(cfg, resume=resume, net=net, dataset=data)
        held[name] = state_tensors(net)
    # The EMA weights come from the run directory, written by rank 0 alone.
    _, _, ema = load_run(out / "a", net=make_net(num_classes=2))
    torch.save({"a": held["a"], "b": held["b"], "ema": state_tensors(ema)}, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
