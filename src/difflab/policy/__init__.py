"""Trained diffusion policies (Chi et al. 2023): an observation history in, the actions to
execute out, with a receding horizon. `difflab.train.load_policy(run_dir)` builds one from a
run of the `policy` task; policy/ never imports train/."""

from .diffusion import DiffusionPolicy
from .regression import (
           BINS,
           BinnedPolicy,
           RegressionPolicy,
           bin_centre,
           bin_index,
           regression_inputs,
)

__all__ = ["DiffusionPolicy", "RegressionPolicy", "BinnedPolicy", "regression_inputs", "bin_index",
           "bin_centre", "BINS"]
