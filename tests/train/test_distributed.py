"""One process or many (difflab.train.distributed): the single-process Dist is the identity,
device names are checked, and two real gloo processes agree through Dist's collectives."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from difflab.train import TrainError
from difflab.train.distributed import init, pick_device


def test_a_single_process_is_the_identity(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    d = init("cpu")
    assert (d.rank, d.world_size, d.is_main, d.active) == (0, 1, True, False)
    model = nn.Linear(2, 2)
    assert d.wrap(model) is model
    x = torch.arange(3.0)
    assert d.all_reduce_sum(x) is x and d.broadcast("a") == "a" and d.gather(5) == [5]
    with d.no_sync(model, skip=True):
        pass
    d.barrier()


def test_device_names(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device("auto") == torch.device("cpu")
        with pytest.raises(TrainError, match="CUDA is not available"):
            pick_device("cuda")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(TrainError, match="names one GPU, but this is one of 2 processes"):
        init("cuda:1")


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    d = init("cpu")
    total = d.all_reduce_sum(torch.tensor([rank + 1.0]))
    got = {"rank": d.rank, "world": d.world_size, "main": d.is_main, "sum": float(total),
           "broadcast": d.broadcast(f"from {rank}"), "gather": d.gather(rank * 10)}
    d.barrier()
    torch.save(got, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_processes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(port, str(tmp_path)), nprocs=2, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world"], r0["main"], r1["main"]) == (0, 1, 2, True,
                                                                             False)
    assert r0["sum"] == r1["sum"] == 3.0
    assert r0["broadcast"] == r1["broadcast"] == "from 0"
    assert r0["gather"] == r1["gather"] == [0, 10]
