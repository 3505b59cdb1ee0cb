"""Evaluation: scores of samples and samplers, never of how a model was trained.

    metrics.py   sample-quality metrics against the exact Gaussian mixture (sliced W2, mode TV,
                 log-density gap), each refusing too few samples
    compare.py   every sampler at several NFE budgets on the mixture: rows, a Markdown table, plots

Later issues add Frechet distance (and KID, precision/recall), likelihood (bits/dim) and policy
rollouts in environments here, each as its own module. eval/ never imports difflab.train
(DESIGN.md section 5; tests/test_imports.py checks it).
"""
