import itertools

import pytest
import torch

from difflab import predictions as P
from difflab.schedules import get_schedule


@pytest.mark.parametrize("schedule", ["cosine", "edm", "subvp"])
def test_conversions_round_trip_and_match_definitions(schedule):
    g = torch.Generator().manual_seed(0)
    sched = get_schedule(schedule)
    t = torch.tensor([0.02, 0.4, 0.9], dtype=torch.float64)
    alpha, sigma = sched.alpha(t).view(3, 1), sched.sigma(t).view(3, 1)
    x0 = torch.randn(3, 5, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 5, generator=g, dtype=torch.float64)
    x = alpha * x0 + sigma * eps
    truth = {"eps": eps, "x0": x0, "v": alpha * eps - sigma * x0, "score": -eps / sigma}
    for src, dst in itertools.product(P.PREDICTIONS, repeat=2):
        out = P.convert(truth[src], x, alpha, sigma, src, dst)
        assert torch.allclose(out, truth[dst], rtol=1e-9, atol=1e-9), (src, dst)
        assert torch.allclose(P.from_x0_eps(x0, eps, alpha, sigma, dst), truth[dst])


def test_v_is_salimans_ho_on_vp():
    # for VP, v = alpha eps - sigma x0 and x0 = alpha x - sigma v (Salimans & Ho 2022, sec. 4)
    sched = get_schedule("linear")
    a, s = float(sched.alpha(0.3)), float(sched.sigma(0.3))
    x0, eps = torch.tensor([0.7]), torch.tensor([-1.2])
    x = a * x0 + s * eps
    v = a * eps - s * x0
    x0_hat, eps_hat = P.to_x0_eps(v, x, a, s, "v")
    assert torch.allclose(x0_hat, a * x - s * v) and torch.allclose(eps_hat, s * x + a * v)


def test_unknown_prediction():
    with pytest.raises(ValueError, match="choose one of eps, x0, v, score"):
        P.convert(torch.zeros(1), torch.zeros(1), 1.0, 1.0, "noise", "x0")


def test_check_net_output_returns_a_prediction_shaped_like_x_t():
    x = torch.zeros(4, 3, 8, 8)
    out = torch.ones(4, 3, 8, 8)
    assert P.check_net_output(out, x) is out
    with pytest.raises(ValueError, match=r"returned \(4, 1, 8, 8\) for an input of shape "
                                         r"\(4, 3, 8, 8\): it must return a prediction shaped"):
        P.check_net_output(out[:, :1], x)
    with pytest.raises(ValueError, match="returned tuple for an input of shape"):
        P.check_net_output((out,), x)
