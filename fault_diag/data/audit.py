"""The leak audit: prove, from window provenance alone, that evaluation data never sits in training data.

For every recording (``file``), the union of the training windows ``[start, stop)`` is formed (widened
by ``margin`` samples on each side to cover the support of the resampling and band filters, whose
output near a region edge mixes in samples from across the edge). The audit passes when no validation
or test window intersects that union and no test window intersects a validation window. Interval
arithmetic only: it does not trust the code that made the split, only the provenance it recorded.

Validation and test windows may overlap each other (``data.eval_hop`` < ``window_length``): the checks
above hold window by window, so overlap inside a split changes nothing in the proof. It does change how
much evidence the windows hold, so the report also counts the *distinct* samples each evaluation split
covers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from fault_diag.data.errors import LeakageError

MAX_LISTED_VIOLATIONS = 20


@dataclass
class AuditReport:
    """Result of :func:`audit_windows`; ``passed`` is the verdict, ``to_dict()`` is JSON-able."""

    passed: bool
    n_files: int
    n_train_windows: int
    n_val_windows: int
    n_test_windows: int
    n_violations: int
    margin_samples: int
    min_gap_samples: int | None  # smallest distance from an eval window to a training window
    checks: list[str] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    # Samples covered by at least one validation / test window, summed over files (overlapping
    # evaluation windows count a sample once). None in reports written before these existed.
    n_val_samples_distinct: int | None = None
    n_test_samples_distinct: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditReport:
        """Inverse of :meth:`to_dict`; older dicts (without the newer fields) load with None there."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def raise_if_failed(self) -> None:
        """Raise :class:`LeakageError` listing the first violations when the audit failed."""
        if self.passed:
            return
        shown = "; ".join(
            f"{v['file']}: {v['split']} [{v['start']}, {v['stop']}) meets {v['against']} "
            f"[{v['other_start']}, {v['other_stop']})"
            for v in self.violations[:5]
        )
        raise LeakageError(
            f"split audit failed: {self.n_violations} validation/test windows overlap training "
            f"(or test overlaps validation) windows within {self.margin_samples} samples: {shown}"
        )


def _union(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge intervals ``[start, stop)`` into sorted disjoint intervals."""
    if starts.size == 0:
        return starts, stops
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], stops[order]
    # A new merged interval starts where the start exceeds every stop seen so far.
    running_stop = np.maximum.accumulate(e)
    new = np.ones(s.size, dtype=bool)
    new[1:] = s[1:] > running_stop[:-1]
    idx = np.flatnonzero(new)
    merged_start = s[idx]
    merged_stop = np.maximum.reduceat(e, idx)
    return merged_start, merged_stop


def _overlaps(
    u_start: np.ndarray, u_stop: np.ndarray, s: np.ndarray, e: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For windows ``[s, e)``: (overlaps any union interval?, index of that interval or -1)."""
    if u_start.size == 0:
        return np.zeros(s.size, dtype=bool), np.full(s.size, -1)
    # The union interval with the largest start < e also has the largest stop among those (disjoint,
    # sorted), so it alone decides.
    idx = np.searchsorted(u_start, e, side="left") - 1
    hit = (idx >= 0) & (u_stop[np.clip(idx, 0, None)] > s)
    return hit, np.where(hit, idx, -1)


def _gaps(u_start: np.ndarray, u_stop: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Distance (samples) from each window to the nearest interval; <= 0 means they overlap."""
    if u_start.size == 0 or s.size == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.searchsorted(u_start, s, side="right") - 1
    gap = np.full(s.size, np.iinfo(np.int64).max, dtype=np.int64)
    has_before = before >= 0
    gap[has_before] = s[has_before] - u_stop[before[has_before]]
    after = before + 1
    has_after = after < u_start.size
    gap[has_after] = np.minimum(gap[has_after], u_start[after[has_after]] - e[has_after])
    return gap


def distinct_samples(meta: pd.DataFrame) -> dict[str, int]:
    """Samples covered by at least one window, per split (``train``/``val``/``test``), summed over files.

    Overlapping windows count a sample once: with ``eval_hop`` = window_length / 4 the test split has
    four times the windows of the default but the same distinct samples.
    """
    out = {"train": 0, "val": 0, "test": 0}
    for (split, _), grp in meta.groupby(["split", "file"], sort=False):
        us, ue = _union(grp["start"].to_numpy(dtype=np.int64), grp["stop"].to_numpy(dtype=np.int64))
        out[str(split)] = out.get(str(split), 0) + int((ue - us).sum())
    return out


def audit_windows(meta: pd.DataFrame, margin_samples: int | Mapping[str, int] = 0) -> AuditReport:
    """Audit window provenance ``meta`` (columns ``file``, ``split``, ``start``, ``stop``).

    ``margin_samples``: samples added on each side of every training (and validation, for the
    test-vs-validation check) window; an int for all files or a mapping file -> margin.
    """
    for col in ("file", "split", "start", "stop"):
        if col not in meta.columns:
            raise ValueError(f"audit needs a {col!r} column in the window metadata")
    violations: list[dict[str, Any]] = []
    n_violations = 0
    min_gap: int | None = None
    max_margin = 0
    for file, grp in meta.groupby("file", sort=True):
        margin = int(
            margin_samples.get(str(file), 0)
            if isinstance(margin_samples, Mapping)
            else margin_samples
        )
        max_margin = max(max_margin, margin)
        split = grp["split"].to_numpy()
        start = grp["start"].to_numpy(dtype=np.int64)
        stop = grp["stop"].to_numpy(dtype=np.int64)
        tr, va, te = split == "train", split == "val", split == "test"
        u_tr = _union(start[tr] - margin, stop[tr] + margin)
        u_va = _union(start[va] - margin, stop[va] + margin)
        pairs = [("val", va, "train", u_tr), ("test", te, "train", u_tr), ("test", te, "val", u_va)]
        for name, mask, against, (us, ue) in pairs:
            s, e = start[mask], stop[mask]
            hit, idx = _overlaps(us, ue, s, e)
            n_violations += int(hit.sum())
            for k in np.flatnonzero(hit)[: max(0, MAX_LISTED_VIOLATIONS - len(violations))]:
                violations.append(
                    {
                        "file": str(file),
                        "split": name,
                        "start": int(s[k]),
                        "stop": int(e[k]),
                        "against": against,
                        "other_start": int(us[idx[k]] + margin),
                        "other_stop": int(ue[idx[k]] - margin),
                    }
                )
        raw_tr = _union(start[tr], stop[tr])
        ev = va | te
        gaps = _gaps(raw_tr[0], raw_tr[1], start[ev], stop[ev])
        if gaps.size:
            g = int(gaps.min())
            min_gap = g if min_gap is None else min(min_gap, g)
    distinct = distinct_samples(meta)
    return AuditReport(
        passed=n_violations == 0,
        n_files=int(meta["file"].nunique()),
        n_train_windows=int((meta["split"] == "train").sum()),
        n_val_windows=int((meta["split"] == "val").sum()),
        n_test_windows=int((meta["split"] == "test").sum()),
        n_violations=n_violations,
        margin_samples=max_margin,
        min_gap_samples=min_gap,
        checks=[
            "per file: no validation window intersects a training window (+/- margin)",
            "per file: no test window intersects a training window (+/- margin)",
            "per file: no test window intersects a validation window (+/- margin)",
        ],
        violations=violations,
        n_val_samples_distinct=distinct["val"],
        n_test_samples_distinct=distinct["test"],
    )
