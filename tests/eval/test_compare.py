"""The sampler comparison (difflab.eval.compare): rows, the Markdown table, the scatter grid."""

import math

import pytest
import torch
from PIL import Image

from difflab import samplers
from difflab.eval.compare import (
    HEADER,
    format_table,
    plot_samples,
    run_sampler,
    sampler_table,
)


def test_sampler_table_rows_count_evaluations_and_score_finitely(mix2):
    seen = []
    rows, kept = sampler_table(mix2, "linear", nfes=(4, 8), n=200, names=["ddim", "heun"],
                               keep_nfe=8, progress=seen.append)
    assert [(r.sampler, r.nfe) for r in rows] == [
        ("ddim", 4), ("ddim", 8),
        ("heun", 3), ("heun", 7),  # 2 evaluations an interval, 1 for the final denoise
    ]
    assert seen == rows
    for r in rows:
        assert r.spacing == samplers.get(r.sampler).spacing
        assert all(math.isfinite(v) for v in (r.sw2, r.mode_tv, r.logp_gap, r.seconds))
        assert 0 <= r.mode_tv <= 1 and r.sw2 >= 0
    assert sorted(kept) == ["ddim", "heun"] and kept["ddim"].shape == (200, 2)


def test_run_sampler_is_seeded(mix2):
    row, x = run_sampler(mix2, "linear", "unipc", 5, n=150, seed=3)
    again, y = run_sampler(mix2, "linear", "unipc", 5, n=150, seed=3)
    assert row.nfe == 5 and (row.sw2, row.mode_tv) == (again.sw2, again.mode_tv)
    assert torch.equal(x, y)


def test_format_table_has_the_header_and_one_row_per_result(mix2):
    rows, _ = sampler_table(mix2, "linear", nfes=(4,), n=120, names=["ddim", "unipc"])
    lines = format_table(rows).splitlines()
    assert lines[0] == HEADER and len(lines) == 2 + len(rows)
    assert lines[2].startswith("| ddim | trailing | 4 |")
    assert lines[3].startswith("| unipc | logsnr_skip | 4 |")
    with_floor = format_table(rows, floor=0.0123)
    assert with_floor.endswith("noise floor (two true samples of the same size): 0.0123")


def test_plot_samples_puts_the_true_data_first(mix2, tmp_path):
    pytest.importorskip("matplotlib")
    kept = {"euler": mix2.sample(300, seed=1), "heun": mix2.sample(300, seed=2)}
    plot_samples(mix2, kept, tmp_path / "samplers.png", title="t", n_show=300)
    assert Image.open(tmp_path / "samplers.png").size == (3 * 300, 300)  # true data + 2 panels
