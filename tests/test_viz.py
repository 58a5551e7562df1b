"""plot_noisy_example: a headless figure with a time panel and a Welch spectrum panel."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from fault_diag.noise import NoiseError
from fault_diag.viz import plot_noisy_example, save_figure

FS_HZ = 12_000.0


def _signal(n: int = 4096) -> np.ndarray:
    t = np.arange(n) / FS_HZ
    rng = np.random.default_rng(0)
    return (np.sin(2 * math.pi * 160.0 * t) + 0.1 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("kind", ["gaussian", "pink", "laplacian"])
def test_plot_noisy_example_axes_and_png(kind: str, tmp_path: Path) -> None:
    x = _signal()
    fig = plot_noisy_example(x, FS_HZ, -2.0, kind, seed=1, span_s=0.02)
    assert isinstance(fig, Figure)
    ax_t, ax_f = fig.axes
    assert ax_t.get_xlabel() == "time (ms)"
    assert ax_f.get_xlabel() == "frequency (Hz)"
    assert ax_f.get_xscale() == "log" and ax_f.get_yscale() == "log"
    # Two curves per panel: noisy and clean; the time panel shows only the short span.
    assert len(ax_t.get_lines()) == 2 and len(ax_f.get_lines()) == 2
    noisy_line, clean_line = ax_t.get_lines()
    assert len(clean_line.get_xdata()) == round(0.02 * FS_HZ)
    assert np.allclose(clean_line.get_ydata(), x[: round(0.02 * FS_HZ)])
    assert not np.allclose(noisy_line.get_ydata(), clean_line.get_ydata())
    # The title reports the realised SNR, which must equal the target.
    title = fig.get_suptitle()
    assert kind in title and "realised -2.000 dB" in title
    # The noisy PSD lies above the clean one at high frequency (noise floor at -2 dB SNR).
    f_noisy = ax_f.get_lines()[0].get_ydata()
    f_clean = ax_f.get_lines()[1].get_ydata()
    assert np.median(f_noisy[-50:]) > 5 * np.median(f_clean[-50:])

    out = save_figure(fig, tmp_path / "plots" / f"{kind}.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000
    assert [p.name for p in out.parent.iterdir()] == [f"{kind}.png"]  # no temp file left behind


def test_plot_is_reproducible_from_the_seed() -> None:
    x = _signal(2048)
    a = plot_noisy_example(x, FS_HZ, 0.0, "pink", seed=5).axes[0].get_lines()[0].get_ydata()
    b = plot_noisy_example(x, FS_HZ, 0.0, "pink", seed=5).axes[0].get_lines()[0].get_ydata()
    c = plot_noisy_example(x, FS_HZ, 0.0, "pink", seed=6).axes[0].get_lines()[0].get_ydata()
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_plot_bad_input() -> None:
    with pytest.raises(NoiseError, match="1-D"):
        plot_noisy_example(np.zeros((2, 100)), FS_HZ, 0.0, "gaussian")
    with pytest.raises(NoiseError, match="fs_hz"):
        plot_noisy_example(_signal(), 0.0, 0.0, "gaussian")
    with pytest.raises(NoiseError, match="snr_db"):
        plot_noisy_example(_signal(), FS_HZ, float("nan"), "gaussian")
    with pytest.raises(TypeError, match="floating"):
        plot_noisy_example(np.arange(100), FS_HZ, 0.0, "gaussian")


def test_save_figure_leaves_nothing_on_failure(tmp_path: Path) -> None:
    fig = plot_noisy_example(_signal(1024), FS_HZ, 0.0, "gaussian", seed=0)
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "fig.notaformat")
    assert list(tmp_path.iterdir()) == []


def test_confusion_matrix_shares_colour_bar_and_publication_files(tmp_path: Path) -> None:
    from PIL import Image

    from fault_diag.viz import PUBLICATION_DPI, plot_confusion_matrix, save_publication

    cm = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]])  # the last class has no window: 0 %, no NaN
    fig = plot_confusion_matrix(cm, ["normal", "inner", "outer"], "test set")
    image_axes, colour_bar = fig.axes
    assert colour_bar.get_ylabel() == "share of the true class (%)"
    texts = [t.get_text() for t in image_axes.texts]
    assert texts[:3] == ["80\n(8)", "20\n(2)", "0\n(0)"] and texts[-1] == "0\n(0)"
    assert image_axes.get_xlabel() == "predicted class"
    svg, png = save_publication(fig, tmp_path / "cm")
    assert (svg.name, png.name) == ("cm.svg", "cm.png")
    assert "<dc:date>" not in svg.read_text()
    with Image.open(png) as img:
        assert img.info["dpi"] == pytest.approx((PUBLICATION_DPI, PUBLICATION_DPI), abs=0.1)
    with pytest.raises(ValueError, match="3 class names"):
        plot_confusion_matrix(np.zeros((2, 2)), ["a", "b", "c"])
