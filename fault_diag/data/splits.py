"""Leak-free splitting of recordings and cutting of windows.

Cutting a recording into overlapping windows and splitting the windows at random puts test windows
that overlap training windows into the test set and inflates accuracy (Matania et al., PHME 2024;
Vieira et al., arXiv 2509.22267). Here each recording is split by time first, into contiguous regions
in the order train | gap | val | gap | test, with a guard gap of unused samples between regions (default
one window length: it also covers the support of the resampling filter), and windows are cut inside
each region. Training windows may overlap each other (``train_hop``); validation and test windows do
not overlap anything (hop >= window length).

A condition split (train on some loads, speeds or rigs, test on others; the CWRU load split is the
one on load) uses the same machinery: recordings of the training conditions are split by time into
train | gap | val (roles ``load_train``), recordings of the test conditions are all test
(``load_test``).

Note: CWRU has one bearing per fault class, so a bearing-wise split is not possible on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fault_diag.data.errors import RecordingTooShortError

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Region:
    """A contiguous range ``[start, stop)`` of samples of one recording, assigned to a split."""

    split: str
    start: int
    stop: int

    @property
    def length(self) -> int:
        """Number of samples in the region."""
        return self.stop - self.start


def time_regions(
    n_samples: int, fractions: list[float], guard_gap: int, names: tuple[str, ...] = SPLIT_NAMES
) -> list[Region]:
    """Split ``n_samples`` into contiguous regions in time order with ``guard_gap`` samples between.

    Splits whose fraction is 0 get no region (and no gap). The fractions share the samples left after
    the gaps; the last region takes the rounding remainder.
    """
    active = [(name, float(f)) for name, f in zip(names, fractions, strict=True) if f > 0]
    total = sum(f for _, f in active)
    available = n_samples - guard_gap * (len(active) - 1)
    regions = []
    pos = 0
    for i, (name, frac) in enumerate(active):
        if i == len(active) - 1:
            length = n_samples - pos
        else:
            length = max(0, int(math.floor(available * frac / total)))
        regions.append(Region(name, pos, pos + max(0, length)))
        pos += max(0, length) + guard_gap
    return regions


def window_starts(region: Region, window_length: int, hop: int) -> np.ndarray:
    """Start indices of the windows of ``window_length`` samples that fit inside ``region``."""
    if region.length < window_length:
        return np.zeros(0, dtype=np.int64)
    return np.arange(region.start, region.stop - window_length + 1, hop, dtype=np.int64)


def plan_recording(
    *,
    source: str,
    n_samples: int,
    role: str,
    fractions: list[float],
    guard_gap: int,
    window_length: int,
    train_hop: int,
    eval_hop: int,
    fs_hz: int,
) -> list[tuple[Region, np.ndarray]]:
    """Regions and window starts of one recording.

    ``role``: ``"time"`` (train/val/test by time), ``"load_train"`` (train/val by time; the test share
    is dropped and the rest renormalised) or ``"load_test"`` (the whole recording is test).
    Raises :class:`RecordingTooShortError` when a region cannot hold a single window.
    """
    if role == "load_test":
        regions = [Region("test", 0, n_samples)]
    elif role == "load_train":
        regions = time_regions(n_samples, [fractions[0], fractions[1], 0.0], guard_gap)
    elif role == "time":
        regions = time_regions(n_samples, fractions, guard_gap)
    else:  # pragma: no cover - internal misuse
        raise ValueError(f"unknown role {role!r}")
    out = []
    for region in regions:
        hop = train_hop if region.split == "train" else eval_hop
        starts = window_starts(region, window_length, hop)
        if starts.size == 0:
            shares = [f for f in _role_fractions(role, fractions) if f > 0]
            n_gaps = len(shares) - 1
            needed = guard_gap * n_gaps + math.ceil(window_length / min(shares) * sum(shares))
            raise RecordingTooShortError(
                f"{source}: too short for one {window_length}-sample window per split: "
                f"{n_samples} samples at {fs_hz} Hz ({n_samples / fs_hz:.3f} s) give a "
                f"{region.split} region of {region.length} samples (regions: "
                f"{', '.join(f'{r.split}={r.length}' for r in regions)}, guard gap {guard_gap}); "
                f"needs about {needed} samples or more. Use a shorter window_length, a smaller "
                "guard_gap or drop this recording"
            )
        out.append((region, starts))
    return out


def _role_fractions(role: str, fractions: list[float]) -> list[float]:
    if role == "load_test":
        return [1.0]
    if role == "load_train":
        return [fractions[0], fractions[1]]
    return list(fractions)


def undersample(meta: pd.DataFrame, seed: int) -> np.ndarray:
    """Row positions kept when every class is undersampled to the smallest class, per split.

    Seeded (``numpy.random.default_rng(seed)``); kept rows stay in their original order.
    """
    rng = np.random.default_rng(seed)
    keep = []
    for split in SPLIT_NAMES:
        in_split = meta.index[meta["split"].to_numpy() == split]
        if len(in_split) == 0:
            continue
        labels = meta.loc[in_split, "label"].to_numpy()
        positions = meta.index.get_indexer(in_split)
        classes, counts = np.unique(labels, return_counts=True)
        target = int(counts.min())
        for cls in classes:
            members = positions[labels == cls]
            chosen = (
                rng.choice(members, size=target, replace=False)
                if members.size > target
                else members
            )
            keep.append(np.asarray(chosen, dtype=np.int64))
    if not keep:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(keep))
