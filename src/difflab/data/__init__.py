"""Data: the analytic Gaussian mixture (toy 2-D sets and image sets to follow)."""

from difflab.data.mixture import GaussianMixture

__all__ = ["GaussianMixture"]
