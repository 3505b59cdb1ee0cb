"""Which samples and random numbers each step uses (difflab.train.batches): a function of
(seed, step) alone, never of the process count or of where a run was resumed."""

import pytest
import torch

from difflab.train import batches as B


def test_derive_seed_is_a_deterministic_63_bit_hash():
    s = B.derive_seed(7, B.STEP_NOISE, 3)
    assert s == B.derive_seed(7, B.STEP_NOISE, 3) and 0 <= s < 2**63
    others = {B.derive_seed(7, B.STEP_NOISE, 4), B.derive_seed(8, B.STEP_NOISE, 3),
              B.derive_seed(7, B.DATA_ORDER, 3), B.derive_seed(7, B.STEP_NOISE)}
    assert s not in others and len(others) == 4


def test_index_stream_is_a_sequence_of_permutations():
    stream = B.IndexStream(10, seed=3)
    first, second = stream.indices(0, 10), stream.indices(10, 10)
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    assert stream.indices(7, 6) == first[7:] + second[:3]  # across the epoch boundary
    assert B.IndexStream(10, seed=3).indices(25, 4) == stream.indices(25, 4)  # no state
    with pytest.raises(ValueError, match="empty"):
        B.IndexStream(0, seed=0)


@pytest.mark.parametrize("accum,world", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_step_batches_split_the_global_batch(accum, world):
    """The micro-batches of every process of a step are, in the order m * world + rank, the
    step's stream positions [s B, (s + 1) B); a sampler started at step 2 continues there."""
    n, batch, steps = 13, 8, 3
    stream = B.IndexStream(n, seed=1)
    per_rank = [B.StepBatches(n, 1, batch, accum, r, world) for r in range(world)]
    its = [iter(s) for s in per_rank]
    for step in range(steps):
        chunks = {}
        for r, it in enumerate(its):
            for m in range(accum):
                chunks[m * world + r] = next(it)
        got = [i for k in sorted(chunks) for i in chunks[k]]
        assert got == stream.indices(step * batch, batch)
    resumed = iter(B.StepBatches(n, 1, batch, accum, 0, world, start=2 * batch))
    assert next(resumed) == stream.indices(2 * batch, batch // (accum * world))


def test_chunk_size():
    assert B.chunk_size(12, 2, 3) == 2
    with pytest.raises(ValueError, match="batch_size 10 is not divisible by grad_accum x "
                                         "processes = 2 x 3"):
        B.chunk_size(10, 2, 3)


def test_step_generator_depends_on_seed_and_step_only():
    a = torch.randn(4, generator=B.step_generator(5, 9))
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(a, torch.randn(4, generator=B.step_generator(5, 9)))
    assert not torch.equal(a, torch.randn(4, generator=B.step_generator(5, 10)))
    assert not torch.equal(a, torch.randn(4, generator=B.step_generator(6, 9)))
