"""Trained diffusion policies (Chi et al. 2023): an observation history in, the actions to
execute out, with a receding horizon. `difflab.train.load_policy(run_dir)` builds one from a
run of the `policy` task; policy/ never imports train/."""

from .diffusion import DiffusionPolicy
from .regression import RegressionPolicy, regression_inputs

__all__ = ["DiffusionPolicy", "RegressionPolicy", "regression_inputs"]
