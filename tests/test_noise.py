import torch

from difflab.noise import NoiseSource, sample_keys


def test_streams_do_not_depend_on_the_batch():
    big = NoiseSource(sample_keys(7, 100), (3, 4))
    small = NoiseSource(sample_keys(7, 5), (3, 4))
    for _ in range(3):
        assert torch.equal(big()[:5], small())
    offset = NoiseSource(sample_keys(7, 10, offset=90), (3, 4))
    big = NoiseSource(sample_keys(7, 100), (3, 4))
    assert torch.equal(big()[90:], offset())


def test_draws_are_standard_normal_and_independent():
    src = NoiseSource(sample_keys(1, 2000), (50,), dtype=torch.float64)
    a, b = src(), src()
    assert a.shape == (2000, 50)
    z = torch.cat([a, b]).flatten()
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float((z**4).mean()) - 3) < 0.05  # Gaussian kurtosis
    corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]
    assert abs(float(corr)) < 0.01  # successive draws independent
    rows = torch.corrcoef(a[:, :2].T)[0, 1]
    assert abs(float(rows)) < 0.05  # elements independent
    assert not torch.equal(NoiseSource(sample_keys(2, 3), (5,))(), NoiseSource(
        sample_keys(1, 3), (5,))())
