"""Band-limiting: a sharp, zero-phase FIR band filter applied to whole recordings at the task rate.

Why: the CWRU normal recording (97.mat) holds about two thirds of its 0-6 kHz power in a line near
4148 Hz that no fault recording has. Broadband noise adds power there, so noisy fault windows look
"normal" to a model. ``data.band_hz=[0, 4000]`` removes the line (and the band noise would fill) from
every recording before it is split and windowed, which makes that shortcut unavailable.

Design (:func:`band_filter`): a linear-phase Kaiser-window FIR (``scipy.signal.firwin`` with the order
and beta from ``scipy.signal.kaiserord``), designed for 80 dB stopband attenuation, i.e. a ripple of
1e-4 (0.0009 dB) in the passband. The band edges are *stopband* edges: everything outside
``[low, high]`` is attenuated by about 80 dB, and the transitions, ``w = min(200 Hz, fs/60)`` wide,
lie inside the band, so the passband is ``[low + w, high - w]`` (an edge at 0 Hz or at Nyquist has no
transition; ``w`` shrinks for bands narrower than ``4 w``). At 12 kHz with ``band_hz=[0, 4000]``:
303 taps (half-length 151 samples = 12.6 ms), passband 0-3800 Hz, -6 dB at 3900 Hz, stopband from
4000 Hz; measured (``tests/test_spectral.py``): passband ripple 0.0009 dB, stopband attenuation
79.9 dB, the 4148 Hz line of 97.mat 92 dB down. A Butterworth filter run forwards and backwards
cannot do this: an 8th-order one at 4 kHz through ``sosfiltfilt`` takes 1.2 dB off 3.8 kHz and only
14.5 dB off 4148 Hz, so the line would survive.

Application (:func:`band_limit`): the odd-length symmetric filter is convolved centred on each sample
(zero phase, no delay), after extending the signal at both ends by an odd reflection of half the filter
length (as ``scipy.signal.filtfilt`` pads), which keeps the edges free of a start-up transient. An
output sample depends on input samples up to :func:`band_limit_margin` samples away on either side;
the leak audit adds this reach to its margin.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
from scipy import signal

from fault_diag.data.errors import ConfigError, DataError

#: Designed stopband attenuation (dB); the Kaiser design also gives a passband ripple of 1e-4
#: (Kaiser's formula is approximate: the 12 kHz low-passes measure 79.9 dB at the stopband edge).
STOPBAND_ATTENUATION_DB = 80.0
#: Transition width (Hz) at each band edge for task rates >= 12 kHz (fs/60 below: same filter length).
TRANSITION_HZ = 200.0
#: Longest filter accepted: only a band a few Hz wide would need more.
MAX_TAPS = 8191


@dataclass(frozen=True)
class BandFilter:
    """A designed band filter: taps and the numbers that describe it (see :func:`band_filter`)."""

    fs_hz: float
    band_hz: tuple[float, float]
    kind: str  # lowpass | highpass | bandpass
    taps: np.ndarray  # odd length, symmetric (linear phase)
    transition_hz: float  # width of each transition band, inside the band, ending at its edge
    attenuation_db: float  # designed stopband attenuation

    @property
    def numtaps(self) -> int:
        """Filter length in samples (odd)."""
        return int(self.taps.size)

    @property
    def half_length(self) -> int:
        """Samples on each side an output sample depends on (``(numtaps - 1) // 2``)."""
        return (self.numtaps - 1) // 2

    @property
    def passband_hz(self) -> tuple[float, float]:
        """Frequencies passed within the design ripple (1e-4, 0.0009 dB)."""
        low, high = self.band_hz
        w = self.transition_hz
        return (low + w if low > 0 else 0.0, high - w if high < self.fs_hz / 2 else high)

    @property
    def stopbands_hz(self) -> list[tuple[float, float]]:
        """Frequency ranges attenuated by about ``attenuation_db``: all of them outside the band."""
        low, high = self.band_hz
        out = []
        if low > 0:
            out.append((0.0, low))
        if high < self.fs_hz / 2:
            out.append((high, self.fs_hz / 2))
        return out

    def describe(self) -> str:
        """One line for the split protocol."""
        stops = ", ".join(f"{a:g}-{b:g} Hz" for a, b in self.stopbands_hz)
        pa, pb = self.passband_hz
        return (
            f"{self.kind} {self.band_hz[0]:g}-{self.band_hz[1]:g} Hz at {self.fs_hz:g} Hz: "
            f"zero-phase Kaiser-window FIR, {self.numtaps} taps (half-length {self.half_length} "
            f"samples), passband {pa:g}-{pb:g} Hz (ripple <= 0.001 dB), transition "
            f"{self.transition_hz:g} Hz, stopband {stops} (about {self.attenuation_db:g} dB down)"
        )


def _bad_band(band_hz: Any, fs_hz: float, why: str | None = None) -> ConfigError:
    nyq = fs_hz / 2
    expected = (
        f"[low, high] with 0 <= low < high <= {nyq:g} (Nyquist of data.fs_hz={fs_hz:g}), "
        "or null for no filter"
    )
    return ConfigError(
        f"data.band_hz={band_hz!r} is invalid: {why + '; ' if why else ''}expected {expected}"
    )


def check_band_hz(band_hz: Any, fs_hz: float) -> tuple[float, float]:
    """Validate ``band_hz`` against the task rate; return ``(low, high)`` as floats.

    Raises :class:`ConfigError` naming ``data.band_hz``, the value and the allowed range: not two
    finite numbers, ``low < 0``, ``low >= high``, ``high > fs_hz/2``, or ``[0, fs_hz/2]`` (which
    passes everything: no filter, use null).
    """
    fs = float(fs_hz)
    if not math.isfinite(fs) or fs <= 0:
        raise ConfigError(f"fs_hz={fs_hz!r}: expected a positive sampling rate in Hz")
    if isinstance(band_hz, str | bytes) or not isinstance(band_hz, Sequence | np.ndarray):
        raise _bad_band(band_hz, fs, "not a list")
    values = list(band_hz)
    if len(values) != 2:
        raise _bad_band(band_hz, fs, f"{len(values)} values")
    if any(isinstance(v, bool) or not isinstance(v, Real) for v in values):
        raise _bad_band(band_hz, fs, "not numbers")
    low, high = (float(v) for v in values)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise _bad_band(band_hz, fs, "not finite")
    nyq = fs / 2
    if not (0.0 <= low < high <= nyq):
        raise _bad_band(band_hz, fs)
    if low == 0.0 and high == nyq:
        raise _bad_band(band_hz, fs, "[0, Nyquist] passes every frequency, which is no filter")
    return low, high


@functools.lru_cache(maxsize=32)
def _design(fs: float, low: float, high: float) -> BandFilter:
    nyq = fs / 2
    two_edges = low > 0 and high < nyq
    # Transitions lie inside the band; leave at least half of it (two edges) as passband.
    width = min(TRANSITION_HZ, fs / 60, (high - low) / (4 if two_edges else 2))
    numtaps, beta = signal.kaiserord(STOPBAND_ATTENUATION_DB, width / nyq)
    numtaps |= 1  # odd: a whole-sample centre (zero phase) and a valid high-pass (type I)
    if numtaps > MAX_TAPS:
        raise ConfigError(
            f"data.band_hz=[{low:g}, {high:g}] is invalid: a band this narrow needs {width:g} Hz "
            f"transitions and {numtaps} taps (more than {MAX_TAPS}); widen it"
        )
    # firwin's cutoffs are the -6 dB points: half a transition inside each edge that is not 0/Nyquist.
    half = width / 2
    if low == 0.0:
        kind, cutoff, pass_zero = "lowpass", [high - half], True
    elif high == nyq:
        kind, cutoff, pass_zero = "highpass", [low + half], False
    else:
        kind, cutoff, pass_zero = "bandpass", [low + half, high - half], False
    taps = signal.firwin(numtaps, cutoff, window=("kaiser", beta), pass_zero=pass_zero, fs=fs)
    taps.setflags(write=False)  # shared by the cache
    return BandFilter(fs, (low, high), kind, taps, float(width), STOPBAND_ATTENUATION_DB)


def band_filter(fs_hz: float, band_hz: Sequence[float]) -> BandFilter:
    """Design (cached) the zero-phase band filter for ``band_hz = [low, high]`` Hz at ``fs_hz``.

    ``low = 0`` gives a low-pass, ``high = fs_hz/2`` a high-pass, anything else a band-pass. See the
    module docstring for the design numbers. Raises :class:`ConfigError` for an invalid band.
    """
    low, high = check_band_hz(band_hz, fs_hz)
    return _design(float(fs_hz), low, high)


def band_limit_margin(fs_hz: float, band_hz: Sequence[float] | None) -> int:
    """Samples on each side that one output sample of :func:`band_limit` depends on (0 for None)."""
    return 0 if band_hz is None else band_filter(fs_hz, band_hz).half_length


def band_limit(x: np.ndarray, fs_hz: float, band_hz: Sequence[float]) -> np.ndarray:
    """Keep only ``band_hz = [low, high]`` Hz of ``x`` (zero phase, sharp); float64 out, same shape.

    Filters along the last axis; meant for whole recordings at the task rate ``fs_hz`` (the training
    data and ``fd-predict`` both filter the recording before cutting windows: filtering each window
    alone would differ in its first and last :func:`band_limit_margin` samples).

    Passband (0-3800 Hz for ``[0, 4000]`` at 12 kHz) within 0.001 dB, everything outside the band
    (from 4000 Hz) about 80 dB down; see the module docstring and ``tests/test_spectral.py`` for measurements.

    Raises:
        ConfigError: an invalid ``band_hz`` (message names ``data.band_hz`` and the allowed range).
        DataError: an empty signal, a non-finite sample or a signal shorter than the filter's
            half-length.
    """
    filt = band_filter(fs_hz, band_hz)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise DataError(f"band_limit needs a non-empty signal, got shape {arr.shape}")
    half = filt.half_length
    if arr.shape[-1] <= half:
        raise DataError(
            f"band_limit: a signal of {arr.shape[-1]} samples is shorter than the band filter's "
            f"half-length ({half} samples, {filt.numtaps} taps); filter the whole recording"
        )
    if not np.all(np.isfinite(arr)):
        raise DataError("band_limit: the signal holds NaN or Inf samples")
    pad = [(0, 0)] * (arr.ndim - 1) + [(half, half)]
    # Odd reflection about the end samples (filtfilt's default): no step at the edges, so no ringing.
    padded = np.pad(arr, pad, mode="reflect", reflect_type="odd")
    taps = filt.taps.reshape((1,) * (arr.ndim - 1) + (-1,))
    # "valid" on a signal padded by the half-length on both sides = centred convolution (zero phase).
    out = signal.oaconvolve(padded, taps, mode="valid", axes=-1)
    return np.ascontiguousarray(out)
