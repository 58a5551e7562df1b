"""Spectral audit of a setup: where each class keeps its power, and which class stands apart.

Why: on CWRU the only normal recording (97.mat) holds about 65 % of its 0-6 kHz power in 4-6 kHz (a
line near 4148 Hz) while every fault class holds a few percent there. Broadband noise adds power in
4-6 kHz, so a model that learnt "power up there = normal" sends noisy fault windows to normal. The
profile makes such a class signature visible before anyone trains; the flag names it.

- :func:`band_power_profile`: per class, the mean over its windows of each window's share of power in
  a few frequency bands (default: 6 equal bands from 0 Hz to Nyquist). A window's share comes from the
  rfft power spectrum of the mean-removed window (rectangular window, one-sided power), so loud and
  quiet windows weigh the same.
- :func:`flag_spectral_outliers`: for every class and every contiguous run of bands (4-5 and 5-6 kHz
  merge into 4-6 kHz), compare the class's share with every other class's share in that run. The rule
  (``min_diff`` = 0.25, ``min_ratio`` = 2): a class is flagged *high* in a run when its share exceeds
  the largest other share by at least 0.25 (absolute) and is at least twice it; *low* when its share is
  at least 0.25 below the smallest other share and at most half of it. Both conditions are needed: the
  absolute one ignores bands where everyone is near 0 (e.g. the empty bands of a band-limited setup),
  the ratio one ignores a class that is merely a bit higher where everyone is high. For each flagged
  class and direction the run with the largest margin is reported (margins equal to 0.01 percentage
  point tie; ties go to the narrower, then the lower run): a class can be flagged twice, e.g. CWRU's normal holds far more power than any fault
  class in 4-6 kHz (high) and far less in 2-4 kHz (low), and noise moves fault windows towards both.

Torch-free (numpy only), so ``fd-data`` stays light.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fault_diag.data.errors import DataError

DEFAULT_N_BANDS = 6
FLAG_MIN_DIFF = 0.25
FLAG_MIN_RATIO = 2.0
RULE = (
    "a class is flagged when, in a run of adjacent bands, its share is {diff:g} points or more above "
    "every other class's and {ratio:g}x the largest (or {diff:g} points or more below every other "
    "class's and at most 1/{ratio:g} of the smallest); the widest-margin run is shown"
)
_CHUNK = 1024  # windows per rfft batch: bounds memory (1024 x 1025 complex128 = 16 MiB at 2048)


@dataclass
class BandProfile:
    """Mean per-window share of power per class (rows) and band (columns), from :func:`band_power_profile`."""

    class_names: list[str]
    band_edges_hz: list[float]  # B + 1 increasing edges
    shares: np.ndarray  # (C, B) float64, NaN for a class without usable windows
    n_windows: list[int]  # windows used per class (windows with zero power are skipped)
    fs_hz: float

    @property
    def bands_hz(self) -> list[tuple[float, float]]:
        """The bands as ``(low, high)`` pairs in Hz."""
        e = self.band_edges_hz
        return [(float(a), float(b)) for a, b in zip(e[:-1], e[1:], strict=True)]

    def band_labels(self) -> list[str]:
        """Short band names for tables and plots ("0-1k", "4-5k", or Hz below 1 kHz edges)."""
        if all(float(e) % 100 == 0 for e in self.band_edges_hz):
            return [f"{a / 1000:g}-{b / 1000:g}k" for a, b in self.bands_hz]
        return [f"{a:.0f}-{b:.0f}" for a, b in self.bands_hz]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (shares as fractions, NaN as None)."""
        return {
            "class_names": list(self.class_names),
            "band_edges_hz": [float(e) for e in self.band_edges_hz],
            "shares": [
                [None if np.isnan(v) else float(v) for v in row] for row in self.shares.tolist()
            ],
            "n_windows": [int(n) for n in self.n_windows],
            "fs_hz": float(self.fs_hz),
        }


@dataclass(frozen=True)
class SpectralFlag:
    """A class whose share of power in ``band_hz`` stands apart from every other class."""

    class_name: str
    direction: str  # high | low
    band_hz: tuple[float, float]
    share: float  # the class's share in the band
    others_min: float  # smallest share of the other classes in the band
    others_max: float  # largest share of the other classes in the band
    margin: float  # share - others_max (high) or others_min - share (low)
    n_runs: int  # runs of bands in which the class meets the rule (the widest-margin one is shown)

    def describe(self) -> str:
        """One line: class, band, its share and the range of the other classes' shares."""
        lo, hi = self.band_hz
        word = "above" if self.direction == "high" else "below"
        return (
            f"{self.class_name}: {self.share * 100:.1f} % of its power in {lo:g}-{hi:g} Hz, "
            f"{word} every other class ({self.others_min * 100:.1f}-{self.others_max * 100:.1f} %)"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        d = asdict(self)
        d["band_hz"] = [float(v) for v in self.band_hz]
        return d


def _edges(fs_hz: float, band_edges_hz: Sequence[float] | None) -> np.ndarray:
    nyq = fs_hz / 2
    if band_edges_hz is None:
        return np.linspace(0.0, nyq, DEFAULT_N_BANDS + 1)
    edges = np.asarray([float(e) for e in band_edges_hz])
    if (
        edges.size < 2
        or not np.all(np.isfinite(edges))
        or np.any(np.diff(edges) <= 0)
        or edges[0] < 0
        or edges[-1] > nyq
    ):
        raise DataError(
            f"band_edges_hz={list(band_edges_hz)!r}: expected at least 2 increasing edges in "
            f"[0, {nyq:g}] Hz (Nyquist of {fs_hz:g} Hz)"
        )
    return edges


def band_power_profile(
    windows: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    fs_hz: float,
    band_edges_hz: Sequence[float] | None = None,
) -> BandProfile:
    """Per class, the mean over its windows of each window's share of power in each band.

    Args:
        windows: ``(N, L)`` or ``(N, 1, L)`` raw windows (any float dtype).
        labels: ``(N,)`` integer labels indexing ``class_names``.
        class_names: class names in label order.
        fs_hz: sampling rate of the windows.
        band_edges_hz: increasing band edges in Hz within ``[0, fs_hz/2]``; default 6 equal bands
            from 0 Hz to Nyquist. Bins at or above the last edge belong to the last band only when
            that edge is Nyquist; a band is ``[low, high)`` otherwise.

    A window's share in a band is the band's power over the window's total 0-Nyquist power, from the
    one-sided rfft power spectrum of the mean-removed window; windows with zero power are skipped.
    With edges that do not cover 0-Nyquist the shares of a class sum to less than 1.
    """
    x = np.asarray(windows)
    if x.ndim == 3 and x.shape[1] == 1:
        x = x[:, 0, :]
    if x.ndim != 2 or x.shape[1] < 2:
        raise DataError(f"windows must be (N, L) or (N, 1, L) with L >= 2, got {np.shape(windows)}")
    y = np.asarray(labels)
    if y.shape != (x.shape[0],):
        raise DataError(f"labels must be ({x.shape[0]},), got {y.shape}")
    if not np.isfinite(fs_hz) or fs_hz <= 0:
        raise DataError(f"fs_hz={fs_hz!r} must be a positive sampling rate in Hz")
    edges = _edges(float(fs_hz), band_edges_hz)
    n_classes = len(class_names)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"labels must lie in [0, {n_classes - 1}] (class_names)")
    length = x.shape[1]
    freqs = np.fft.rfftfreq(length, d=1.0 / fs_hz)
    # One-sided power: every bin but DC (and Nyquist for even L) stands for two conjugate bins.
    weight = np.full(freqs.size, 2.0)
    weight[0] = 1.0
    if length % 2 == 0:
        weight[-1] = 1.0
    band_of = np.searchsorted(edges, freqs, side="right") - 1  # bin -> band index (-1: below)
    if edges[-1] == fs_hz / 2:
        band_of[freqs >= edges[-1]] = edges.size - 2  # Nyquist belongs to the last band
    n_bands = edges.size - 1
    band_of[(band_of < 0) | (band_of >= n_bands)] = -1
    member = np.zeros((freqs.size, n_bands))  # bins x bands: power @ member = power per band
    ok = band_of >= 0
    member[np.flatnonzero(ok), band_of[ok]] = 1.0

    sums = np.zeros((n_classes, n_bands))
    counts = np.zeros(n_classes, dtype=np.int64)
    for lo in range(0, x.shape[0], _CHUNK):
        chunk = np.asarray(x[lo : lo + _CHUNK], dtype=np.float64)
        chunk = chunk - chunk.mean(axis=1, keepdims=True)
        power = np.abs(np.fft.rfft(chunk, axis=1)) ** 2 * weight
        total = power.sum(axis=1)
        usable = total > 0
        share = (power[usable] @ member) / total[usable, None]
        lab = y[lo : lo + _CHUNK][usable]
        np.add.at(sums, lab, share)
        counts += np.bincount(lab, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = sums / counts[:, None]
    shares[counts == 0] = np.nan
    return BandProfile(
        class_names=[str(c) for c in class_names],
        band_edges_hz=[float(e) for e in edges],
        shares=shares,
        n_windows=[int(c) for c in counts],
        fs_hz=float(fs_hz),
    )


def flag_spectral_outliers(
    profile: BandProfile,
    *,
    min_diff: float = FLAG_MIN_DIFF,
    min_ratio: float = FLAG_MIN_RATIO,
) -> list[SpectralFlag]:
    """Classes whose share of power in some contiguous run of bands stands apart (rule: module doc).

    Returns at most one flag per class and direction (high, then low; the run with the largest
    margin), in class order. Classes without usable windows are neither flagged nor compared against.
    """
    shares = np.asarray(profile.shares, dtype=np.float64)
    n_classes, n_bands = shares.shape
    have = np.logical_not(np.isnan(shares).any(axis=1))
    bands = profile.bands_hz
    # Share of every class in every run [i, j] of bands: sums of band shares (the mean is linear).
    csum = np.concatenate([np.zeros((n_classes, 1)), np.cumsum(shares, axis=1)], axis=1)
    runs = [(i, j) for i in range(n_bands) for j in range(i, n_bands)]
    flags = []
    for c in range(n_classes):
        others = [k for k in range(n_classes) if k != c and have[k]]
        if not have[c] or not others:
            continue
        best: dict[str, tuple[tuple[float, int, int], SpectralFlag]] = {}
        n_runs = {"high": 0, "low": 0}
        for i, j in runs:
            run = csum[:, j + 1] - csum[:, i]
            s, o = float(run[c]), run[others]
            o_min, o_max = float(o.min()), float(o.max())
            candidates = []
            if s - o_max >= min_diff and s >= min_ratio * o_max:
                candidates.append(("high", s - o_max))
            if o_min - s >= min_diff and s * min_ratio <= o_min:
                candidates.append(("low", o_min - s))
            for direction, margin in candidates:
                n_runs[direction] += 1
                # Rank: margin to 0.01 percentage point (finer differences are estimation noise, e.g.
                # adding an empty band to a run), then the narrower, then the lower run.
                rank = (round(margin, 4), -(j - i), -i)
                if direction not in best or rank > best[direction][0]:
                    flag = SpectralFlag(
                        class_name=profile.class_names[c],
                        direction=direction,
                        band_hz=(bands[i][0], bands[j][1]),
                        share=s,
                        others_min=o_min,
                        others_max=o_max,
                        margin=float(margin),
                        n_runs=0,
                    )
                    best[direction] = (rank, flag)
        for direction in ("high", "low"):
            if direction in best:
                flags.append(dataclasses.replace(best[direction][1], n_runs=n_runs[direction]))
    return flags


def flag_rule(min_diff: float = FLAG_MIN_DIFF, min_ratio: float = FLAG_MIN_RATIO) -> str:
    """The flag rule in words, shares in percentage points (for reports)."""
    return RULE.format(diff=min_diff * 100, ratio=min_ratio)
