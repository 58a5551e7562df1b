"""Parity of an exported bundle with eager torch: onnxruntime and the ``.pt2`` program on random
batches (1 and 7), edge windows (all zeros, quiet) and real test windows, within a tolerance that
scales with each window's logits and input (:func:`parity_tolerance`; docs/export.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fault_diag.bundle.card import CARD_FILE
from fault_diag.bundle.load import load_bundle

log = logging.getLogger(__name__)

# Parity tolerance (see parity_tolerance): |runtime - torch| <= RTOL |logit| + ATOL s c per logit,
# s = the window's largest |logit| (at least 1), c = 1 + |mean| / std of the window (at most
# PARITY_MAX_INPUT_FACTOR). At s = c = 1 it is the former fixed np.allclose(rtol=1e-4, atol=1e-5).
PARITY_RTOL = 1e-4
PARITY_ATOL = 1e-5
PARITY_MAX_INPUT_FACTOR = 1e4
PARITY_RANDOM_BATCHES = (1, 7)
PARITY_QUIET_STD = 1e-6  # edge window: the normalisation's eps (1e-8) is 1 % of this std
PARITY_TOLERANCE_RULE = (
    "|runtime - torch| <= rtol*|logit| + atol*s*c for every logit, where s = max(1, largest |logit| "
    "of the window) and c = min(1 + |mean|/std of the raw window, "
    f"{PARITY_MAX_INPUT_FACTOR:g}) (1 for a constant window)"
)

# ---------------------------------------------------------------------------------- parity


def parity_tolerance(ref: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-logit tolerance of the parity check: ``rtol*|ref| + atol*s*c`` (shape of ``ref``).

    Float32 rounding differs between runtimes (summation order in convolutions and reductions), and
    what it does to a logit is proportional to the size of the activations behind it, not to the
    logit itself: a logit near zero in a window whose other logits are large carries the rounding
    of the large ones. Hence ``s`` = the window's largest ``|logit|`` (at least 1). The per-window
    standardisation divides by the window's std, so rounding in the raw window (relative to its
    values, i.e. to ``|mean| + std``) grows by ``c = 1 + |mean|/std``: a window with a large DC
    offset is ill-conditioned in float32 in any runtime. ``c`` is 1 for a constant window (the
    standardised window is exactly zero, or the eps decides) and at most
    :data:`PARITY_MAX_INPUT_FACTOR`.

    A *quiet* window is not loosened: amplitude alone changes nothing in float32 (relative
    rounding), so a correct graph agrees on quiet windows as on loud ones, and a graph that treats
    them differently (e.g. one that lost the normalisation's eps) still fails.
    """
    ref64 = np.asarray(ref, dtype=np.float64)
    if ref64.size == 0:
        return np.zeros_like(ref64)
    finite = np.where(np.isfinite(ref64), np.abs(ref64), 0.0)
    scale = np.maximum(1.0, finite.max(axis=1, keepdims=True))
    x64 = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mean, std = x64.mean(axis=1), x64.std(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(std > 0, 1.0 + np.abs(mean) / std, 1.0)
    cond = np.minimum(cond, PARITY_MAX_INPUT_FACTOR)[:, None]
    return PARITY_RTOL * finite + PARITY_ATOL * scale * cond


def _compare(
    name: str, runtime: str, ref: np.ndarray, got: np.ndarray, x: np.ndarray
) -> dict[str, Any]:
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    tol = parity_tolerance(ref64, x)
    both_nan = np.isnan(ref64) & np.isnan(got64)  # the model itself gives NaN: both agree
    diff = np.where(both_nan, 0.0, np.abs(got64 - ref64))
    diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only: a mismatch
    denom = np.maximum(np.abs(ref64), 1e-12)
    agree = got.argmax(1) == ref.argmax(1)
    # A disagreeing argmax is tolerated only where torch's top two logits tie within the tolerance.
    order = np.argsort(ref64, axis=1)
    rows = np.arange(ref64.shape[0])
    if ref64.shape[1] >= 2:
        top1, top2 = order[:, -1], order[:, -2]
        gap = ref64[rows, top1] - ref64[rows, top2]
        tie = gap <= tol[rows, top1] + tol[rows, top2]
    else:
        tie = np.ones(ref64.shape[0], dtype=bool)
    ratio = diff / tol
    within = bool((diff <= tol).all())
    out: dict[str, Any] = {
        "inputs": name,
        "runtime": runtime,
        "n_windows": int(ref.shape[0]),
        # None where a value is not finite (NaN on one side only): the report stays strict JSON
        "max_abs_diff": _finite(diff.max()) if diff.size else 0.0,
        "max_rel_diff": _finite((diff / denom).max()) if diff.size else 0.0,
        "max_diff_over_tolerance": _finite(ratio.max()) if diff.size else 0.0,
        "allclose": within,  # every logit within parity_tolerance
        "argmax_agreement": float(agree.mean()) if agree.size else 1.0,
        "argmax_disagreements_beyond_ties": int((~agree & ~tie).sum()),
        "passed": within and int((~agree & ~tie).sum()) == 0,
    }
    if diff.size:
        i, j = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        out["worst"] = {
            "window": int(i),
            "logit": int(j),
            "torch": _finite(ref64[i, j]),
            "runtime": _finite(got64[i, j]),
            "abs_diff": _finite(diff[i, j]),
            "tolerance": _finite(tol[i, j]),
            "window_std": _finite(np.asarray(x[i], dtype=np.float64).std()),
        }
    return out


def _finite(value: Any) -> float | None:
    v = float(value)
    return v if np.isfinite(v) else None


def describe_check(c: dict[str, Any]) -> str:
    """One failed parity check, for the error message."""
    if c["max_abs_diff"] is None:
        diff = "NaN/Inf where torch is finite (or the reverse)"
    else:
        diff = (
            f"max abs diff {c['max_abs_diff']:.3g} "
            f"({c['max_diff_over_tolerance']:.3g}x the tolerance)"
        )
    return f"{c['runtime']} on {c['inputs']}: {diff}, argmax agreement {c['argmax_agreement']:.3f}"


def _edge_windows(length: int, seed: int) -> np.ndarray:
    """An all-zero window (a dead channel, padding) and a quiet one (std 1e-6, where the
    normalisation's eps of 1e-8 matters at 1 %): they catch a graph whose normalisation differs
    from the eager one, which raw-signal-like windows (std 0.3) cannot show."""
    rng = np.random.default_rng(seed + 1)
    quiet = PARITY_QUIET_STD * rng.standard_normal(length)
    return np.stack([np.zeros(length), quiet])[:, None, :].astype(np.float32)


def parity_report(
    classifier: nn.Module,
    bundle_dir: Path,
    real_windows: np.ndarray | None,
    real_source: str | None,
    seed: int = 0,
    real_skipped_reason: str | None = None,
) -> dict[str, Any]:
    """Compare onnxruntime and the .pt2 program with eager torch on random and real windows."""
    card_length = int(json.loads((bundle_dir / CARD_FILE).read_text())["window_length"])
    runtimes = {rt: load_bundle(bundle_dir, rt) for rt in ("onnx", "pt2")}
    rng = np.random.default_rng(seed)
    inputs: list[tuple[str, np.ndarray]] = []
    for b in PARITY_RANDOM_BATCHES:
        # raw-signal-like: an offset and a scale far from (0, 1), so the in-graph normalisation counts
        x = (0.02 + 0.3 * rng.standard_normal((b, 1, card_length))).astype(np.float32)
        inputs.append((f"random batch {b}", x))
    inputs.append(("edge windows: all zeros, quiet (std 1e-6)", _edge_windows(card_length, seed)))
    if real_windows is not None:
        inputs.append(
            (f"real windows: {real_source}", np.ascontiguousarray(real_windows, np.float32))
        )
    checks = []
    classifier.eval()
    for name, x in inputs:
        with torch.no_grad():
            ref = classifier(torch.from_numpy(x)).numpy()
        for rt, bundle in runtimes.items():
            label = "onnxruntime" if rt == "onnx" else "torch.export (.pt2)"
            checks.append(_compare(name, label, ref, bundle.logits(x), x))
    return {
        "reference": "eager torch (the rebuilt classifier, eval mode, float32, CPU)",
        "rtol": PARITY_RTOL,
        "atol": PARITY_ATOL,
        "tolerance": PARITY_TOLERANCE_RULE,
        "criterion": "every logit within the tolerance, and equal argmax except where torch's top "
        "two logits tie within it",
        "real_windows": {
            "status": "used",
            "source": real_source,
            "n_windows": int(len(real_windows)),
        }
        if real_windows is not None
        else {"status": "skipped", "reason": real_skipped_reason or "no real windows given"},
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
    }
