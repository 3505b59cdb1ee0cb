"""Conversions between what a network predicts: eps, x0, v and score (DESIGN.md section 2).

With x_t = alpha x0 + sigma eps:
    eps   = (x_t - alpha x0) / sigma
    x0    = (x_t - sigma eps) / alpha
    v     = alpha eps - sigma x0                   (Salimans & Ho 2022, section 4)
    score = grad log p_t(x_t) = -eps / sigma       (Tweedie; Song et al. 2021, eq. 7)
alpha and sigma broadcast against x (shape (B, 1, ...) or scalars).
"""

from __future__ import annotations

from torch import Tensor

PREDICTIONS = ("eps", "x0", "v", "score")


def check_prediction(name: str) -> str:
    if name not in PREDICTIONS:
        raise ValueError(f"unknown prediction {name!r}; choose one of {', '.join(PREDICTIONS)}")
    return name


def check_net_output(out, x: Tensor) -> Tensor:
    """`out` if it is a tensor shaped like x = x_t (what every prediction is), else a ValueError."""
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the network returned {got} for an input of shape {tuple(x.shape)}: "
                         f"it must return a prediction shaped like x_t")
    return out


def to_x0_eps(pred: Tensor, x: Tensor, alpha, sigma, prediction: str) -> tuple[Tensor, Tensor]:
    """(x0_hat, eps_hat) from a prediction of the given type at x = x_t."""
    if prediction == "eps":
        eps = pred
        return (x - sigma * eps) / alpha, eps
    if prediction == "x0":
        return pred, (x - alpha * pred) / sigma
    if prediction == "v":  # x0 = alpha x - sigma v, eps = sigma x + alpha v (alpha^2 + sigma^2 = 1)
        # general alpha, sigma: solve v = alpha eps - sigma x0 and x = alpha x0 + sigma eps
        r2 = alpha**2 + sigma**2
        return (alpha * x - sigma * pred) / r2, (sigma * x + alpha * pred) / r2
    if prediction == "score":
        eps = -sigma * pred
        return (x - sigma * eps) / alpha, eps
    check_prediction(prediction)
    raise AssertionError


def from_x0_eps(x0: Tensor, eps: Tensor, alpha, sigma, prediction: str) -> Tensor:
    """The prediction of the given type from x0 and eps: the training target."""
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return alpha * eps - sigma * x0
    if prediction == "score":
        return -eps / sigma
    check_prediction(prediction)
    raise AssertionError


def convert(pred: Tensor, x: Tensor, alpha, sigma, src: str, dst: str) -> Tensor:
    """Any prediction type into any other, at x = x_t."""
    x0, eps = to_x0_eps(pred, x, alpha, sigma, src)
    return from_x0_eps(x0, eps, alpha, sigma, dst)
