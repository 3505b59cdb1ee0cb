"""Scatter pictures of 2-D samples (difflab.pictures): one panel, many panels, and the
histogram fallback when matplotlib is missing."""

import struct
import sys

import numpy as np
import pytest

from difflab.pictures import scatter_panels, scatter_png


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def test_scatter_pictures(tmp_path):
    pytest.importorskip("matplotlib")
    pts = np.random.default_rng(0).normal(size=(500, 2))
    pts[0] = np.nan  # a diverged sample is dropped, not fatal
    scatter_png(pts, tmp_path / "one.png", "title")
    assert _png_size(tmp_path / "one.png") == (400, 400)
    scatter_panels([(f"p{i}", pts) for i in range(7)], tmp_path / "seven.png", cols=5, lim=3.0)
    assert _png_size(tmp_path / "seven.png") == (5 * 300, 2 * 300)  # 5 columns, 2 rows
    scatter_panels([("a", pts), ("b", pts)], tmp_path / "two.png")
    assert _png_size(tmp_path / "two.png") == (2 * 300, 300)  # no empty columns
    with pytest.raises(ValueError, match="at least one"):
        scatter_panels([], tmp_path / "none.png")


def test_scatter_without_matplotlib_writes_a_density_image(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    pts = np.random.default_rng(0).normal(size=(500, 2))
    scatter_png(pts, tmp_path / "hist.png")
    assert _png_size(tmp_path / "hist.png") == (256, 256)


def test_loss_curve_from_metrics_records(tmp_path):
    pytest.importorskip("matplotlib")
    from difflab.pictures import loss_curve
    from difflab.train import read_metrics

    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(f'{{"step": {s}, "loss": {1 / s}}}\n' for s in range(1, 11))
                   + '{"step": 11, "lo')  # a crash in the middle of the last line
    rows = read_metrics(log)
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert read_metrics(tmp_path / "missing.jsonl") == []
    assert _png_size(loss_curve(rows, tmp_path / "loss.png", "t")) == (600, 350)
