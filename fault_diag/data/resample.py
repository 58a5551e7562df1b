"""Anti-aliased resampling to the task's sampling rate.

The CWRU normal baseline (97-100) was recorded at 48 kHz while the usual fault set is at 12 kHz: pairing
them needs a low-pass filter before dropping samples, or energy above 6 kHz folds into the band and
gives the normal class a spectral signature the fault classes lack (many published pipelines skip
this). Integer factors use ``scipy.signal.decimate`` with its FIR filter applied forwards and backwards
(zero phase); other ratios use the polyphase ``resample_poly``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fault_diag.data.errors import ConfigError


@dataclass(frozen=True)
class ResamplePlan:
    """How a recording at ``fs_in_hz`` is brought to ``fs_out_hz``."""

    fs_in_hz: int
    fs_out_hz: int
    method: str  # none | decimate_fir | resample_poly
    up: int = 1
    down: int = 1

    @property
    def margin_samples(self) -> int:
        """Half-length of the anti-aliasing filter in output samples (0 for no resampling).

        An output sample depends on input samples up to this distance away, so a split region's edge
        samples carry information from its neighbour within this margin; the guard gap between regions
        must cover it, and the leak audit checks it.
        """
        if self.method == "none":
            return 0
        if self.method == "decimate_fir":
            # decimate(ftype="fir", zero_phase=True) applies firwin(20*q + 1) once, centred
            # (resample_poly with that window): half-length 10*q input samples = 10 output samples.
            return 10 + 1  # +1: output positions are rounded to whole samples
        # resample_poly's default filter: half-length 10*max(up, down) samples at the up-sampled
        # rate, i.e. 10*max(up, down)/down output samples (checked with impulses in the tests).
        return math.ceil(10 * max(self.up, self.down) / self.down) + 1

    def describe(self) -> str:
        """One line for the split protocol."""
        if self.method == "none":
            return f"none ({self.fs_in_hz} Hz)"
        if self.method == "decimate_fir":
            return (
                f"scipy.signal.decimate q={self.down} ftype=fir zero_phase=True "
                f"({self.fs_in_hz} -> {self.fs_out_hz} Hz)"
            )
        return (
            f"scipy.signal.resample_poly up={self.up} down={self.down} "
            f"({self.fs_in_hz} -> {self.fs_out_hz} Hz)"
        )


def plan_resampling(fs_in_hz: int, fs_out_hz: int) -> ResamplePlan:
    """Choose the method for ``fs_in_hz`` -> ``fs_out_hz`` (both positive integers, Hz)."""
    fs_in, fs_out = int(fs_in_hz), int(fs_out_hz)
    if fs_in <= 0 or fs_out <= 0 or fs_in != fs_in_hz or fs_out != fs_out_hz:
        raise ConfigError(
            f"sampling rates must be positive integers in Hz, got {fs_in_hz} -> {fs_out_hz}"
        )
    if fs_in == fs_out:
        return ResamplePlan(fs_in, fs_out, "none")
    if fs_in % fs_out == 0:
        return ResamplePlan(fs_in, fs_out, "decimate_fir", 1, fs_in // fs_out)
    g = math.gcd(fs_in, fs_out)
    return ResamplePlan(fs_in, fs_out, "resample_poly", fs_out // g, fs_in // g)


def resample(x: np.ndarray, fs_in_hz: int, fs_out_hz: int) -> np.ndarray:
    """Resample a 1-D signal to ``fs_out_hz`` with an anti-aliasing filter (float64 out)."""
    plan = plan_resampling(fs_in_hz, fs_out_hz)
    x = np.asarray(x, dtype=np.float64)
    if plan.method == "none":
        return x
    if plan.method == "decimate_fir":
        from scipy import signal  # lazy: `import fault_diag.data` stays free of scipy

        return np.ascontiguousarray(signal.decimate(x, plan.down, ftype="fir", zero_phase=True))
    from scipy import signal

    return np.ascontiguousarray(signal.resample_poly(x, plan.up, plan.down))
