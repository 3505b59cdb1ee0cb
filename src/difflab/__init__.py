"""difflab: diffusion models, exact and complete, fast on a laptop CPU."""

from . import predictions, samplers, schedules
from ._version import __version__
from .sampling import SamplingError, sample
from .schedules import get_schedule, get_times

__all__ = ["sample", "SamplingError", "get_schedule", "get_times", "samplers", "schedules",
           "predictions", "__version__"]
