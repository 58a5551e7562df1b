"""Anti-aliased resampling: tones above the new Nyquist are suppressed, tones below are kept."""

from __future__ import annotations

import numpy as np
import pytest

from fault_diag.data.resample import plan_resampling, resample


def _amplitude(x: np.ndarray, fs_hz: float, f_hz: float) -> float:
    """Amplitude of the f_hz component (Hann-windowed DFT at that frequency)."""
    n = np.arange(x.size)
    w = np.hanning(x.size)
    return float(2 * abs(np.sum(w * x * np.exp(-2j * np.pi * f_hz * n / fs_hz))) / w.sum())


def _tone(f_hz: float, fs_hz: int, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(fs_hz * seconds)) / fs_hz
    return np.sin(2 * np.pi * f_hz * t)


@pytest.mark.parametrize(
    ("fs_in", "fs_out", "f_high", "alias", "method"),
    [
        (48000, 12000, 9000.0, 3000.0, "decimate_fir"),  # the CWRU normal baseline case
        (12000, 8000, 5500.0, 2500.0, "resample_poly"),  # a non-integer ratio (2/3)
    ],
)
def test_tone_above_new_nyquist_is_suppressed_and_below_is_kept(
    fs_in: int, fs_out: int, f_high: float, alias: float, method: str
) -> None:
    assert plan_resampling(fs_in, fs_out).method == method
    low = resample(_tone(1000.0, fs_in), fs_in, fs_out)
    assert low.size == pytest.approx(2 * fs_out, abs=1)
    assert _amplitude(low, fs_out, 1000.0) == pytest.approx(1.0, abs=0.01)  # kept (< 0.1 dB)
    high = resample(_tone(f_high, fs_in), fs_in, fs_out)
    # The tone would fold to `alias` Hz; the anti-aliasing filter removes it (< -40 dB).
    assert _amplitude(high, fs_out, alias) < 0.01
    assert np.sqrt(np.mean(high[100:-100] ** 2)) < 0.01  # edges: filter start-up


def test_naive_slicing_would_alias() -> None:
    """Sanity check of the measurement: dropping samples without a filter keeps the alias."""
    high = _tone(9000.0, 48000)[::4]
    assert _amplitude(high, 12000, 3000.0) > 0.9


def test_same_rate_is_untouched_and_bad_rates_are_refused() -> None:
    x = np.arange(10.0)
    assert resample(x, 12000, 12000) is not None
    np.testing.assert_array_equal(resample(x, 12000, 12000), x)
    from fault_diag.data.errors import ConfigError

    with pytest.raises(ConfigError, match="positive integers"):
        resample(x, 0, 12000)


@pytest.mark.parametrize(("fs_in", "fs_out"), [(48000, 12000), (12000, 10000), (12000, 16000)])
def test_margin_covers_the_filter_support(fs_in: int, fs_out: int) -> None:
    """An impulse spreads over at most margin_samples output samples on each side."""
    plan = plan_resampling(fs_in, fs_out)
    reach = 0.0
    for k in range(4000, 4013):
        x = np.zeros(8000)
        x[k] = 1.0
        y = resample(x, fs_in, fs_out)
        nz = np.flatnonzero(np.abs(y) > 0)
        centre = k * fs_out / fs_in
        reach = max(reach, abs(nz.min() - centre), abs(nz.max() - centre))
    assert reach <= plan.margin_samples
    assert plan.margin_samples <= reach + 2  # and it is not a gross over-estimate
