"""The level audit: can a class be told apart by its recording's gain (or DC offset) alone?

A dataset whose recording runs had different amplifier gains (HIT-SM: MFS ``Normal`` about 40x
quieter than the MFS faults) lets a classifier that sees raw amplitudes learn the gain, not the fault.
Models here standardise each window, which removes level and offset; this audit measures how much a
level-only rule would get, so that a summary says whether the shortcut exists in the data at all.

For the training windows: per class, the median and 5-95 % range of each window's RMS (raw, mean
included) and its mean (DC offset); and the balanced accuracy of the nearest-class-median rule on
log10(RMS), fitted and scored on the training windows (an upper-bound-style probe, not a model).
Classes whose RMS range overlaps no other class's are flagged: they carry an acquisition signature.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def level_report(windows: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Per-class RMS / DC of ``windows`` (N, 1, L) and the level-only probe (see module docstring)."""
    x = windows.reshape(windows.shape[0], -1).astype(np.float64)
    rms = np.sqrt(np.mean(x * x, axis=1))
    dc = x.mean(axis=1)
    log_rms = np.log10(np.maximum(rms, 1e-300))
    rows: dict[str, dict[str, float | int | None]] = {}
    ranges = {}
    medians = []
    for i, name in enumerate(class_names):
        m = labels == i
        if not m.any():
            rows[name] = {"n_windows": 0}
            medians.append(np.nan)
            continue
        r = rms[m]
        rows[name] = {
            "n_windows": int(m.sum()),
            "rms_median": float(np.median(r)),
            "rms_p5": float(np.percentile(r, 5)),
            "rms_p95": float(np.percentile(r, 95)),
            "dc_median": float(np.median(dc[m])),
        }
        ranges[name] = (float(r.min()), float(r.max()))
        medians.append(float(np.median(log_rms[m])))
    med = np.asarray(medians)
    present = [i for i in range(len(class_names)) if (labels == i).any()]
    recalls = []
    if len(present) > 1:
        cand = med[present]
        pred = np.asarray(present)[np.argmin(np.abs(log_rms[:, None] - cand[None, :]), axis=1)]
        recalls = [float(np.mean(pred[labels == i] == i)) for i in present]
    separated = [
        name
        for name, (lo, hi) in ranges.items()
        if all(hi < lo2 or lo > hi2 for other, (lo2, hi2) in ranges.items() if other != name)
    ]
    return {
        "classes": rows,
        "level_only_balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "chance": 1.0 / len(present) if present else None,
        "separated_by_level": separated,
        "rule": (
            "nearest class median of log10(window RMS), fitted and scored on the training windows; "
            "a class is 'separated by level' when its window RMS range overlaps no other class's"
        ),
    }


def level_lines(rep: dict[str, Any]) -> list[str]:
    """The level audit as text lines for ``fd-data summary``."""
    lines = ["level audit (raw training windows; models standardise each window):"]
    width = max([len(c) for c in rep["classes"]] + [5]) + 2
    lines.append(
        "class".ljust(width)
        + "rms median".rjust(12)
        + "rms 5-95 %".rjust(22)
        + "dc median".rjust(12)
    )
    for name, row in rep["classes"].items():
        if not row.get("n_windows"):
            lines.append(name.ljust(width) + "-".rjust(12))
            continue
        span = f"{row['rms_p5']:.2e}-{row['rms_p95']:.2e}"
        lines.append(
            name.ljust(width)
            + f"{row['rms_median']:.2e}".rjust(12)
            + span.rjust(22)
            + f"{row['dc_median']:+.1e}".rjust(12)
        )
    acc = rep["level_only_balanced_accuracy"]
    if acc is not None:
        lines.append(
            f"level-only rule: balanced accuracy {acc * 100:.1f} % (chance {rep['chance'] * 100:.1f} %)"
        )
    sep = rep["separated_by_level"]
    lines.append(
        "classes separated by level alone (acquisition signature): "
        + (", ".join(sep) if sep else "none")
    )
    return lines
