#!/usr/bin/env python
"""The summary tables of docs/results.md, computed from an ``fd-report`` folder's ``runs.csv``.

``fd-report`` writes the complete pivot (every model, protocol, noise and SNR); this script prints
the condensed views the results page discusses, so that every number there can be regenerated:

- matched protocol: accuracy per model, noise kind and training SNR, and the mean over the 3 kinds;
- DRSN against its ablation: paired differences DRSN-CW - ResNet (and DRSN-CS - ResNet), pairing
  runs with the same noise kind, SNR and seed (same data, same noise draws);
- clean-train / noisy-test: accuracy on the Gaussian grid and its mean over the 3 kinds at a few SNRs.

    python scripts/results_tables.py docs/results/cpu/runs.csv
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

MODEL_ORDER = [
    "convnet1d",
    "resnet1d",
    "drsn_cs",
    "drsn_cw",
    "se_resnet1d",
    "se_felu_resnet1d",
    "resnet1d_aprelu",
    "ran1d",
    "wdcnn",
]
NOISES = ["gaussian", "laplacian", "pink"]


def _cell(values: pd.Series) -> str:
    """Mean ± std (ddof 1) in %, or the mean alone for a single value."""
    v = 100 * values.dropna().to_numpy(float)
    if len(v) == 0:
        return ""
    if len(v) == 1:
        return f"{v[0]:.1f}"
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}"


def _models(df: pd.DataFrame) -> list[str]:
    present = set(df["model"])
    return [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))


def _table(header: list[str], rows: list[list[str]], align_first: int = 1) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * align_first + ["---:"] * (len(header) - align_first)) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def matched_table(runs: pd.DataFrame) -> str:
    """Model x (kind, SNR) plus the mean over kinds per SNR; mean ± std over seeds."""
    m = runs[(runs["protocol"] == "matched") & (runs["row"] == "test")]
    snrs = sorted(m["snr_db"].dropna().unique())
    header = ["model"] + [f"{k} {s:g} dB" for s in snrs for k in NOISES]
    header += [f"mean of 3 kinds, {s:g} dB" for s in snrs]
    rows = []
    for model in _models(m):
        g = m[m["model"] == model]
        row = [f"`{model}`"]
        row += [
            _cell(g[(g["noise"] == k) & (g["snr_db"] == s)]["test_acc"])
            for s in snrs
            for k in NOISES
        ]
        for s in snrs:
            # mean over kinds per seed, then mean ± std over seeds
            per_seed = g[g["snr_db"] == s].groupby("seed")["test_acc"].mean()
            row.append(_cell(per_seed))
        rows.append(row)
    return _table(header, rows)


def paired_differences(runs: pd.DataFrame, baseline: str = "resnet1d") -> str:
    """Each model minus ``baseline``, paired by (kind, SNR, seed), in points, per training SNR."""
    m = runs[(runs["protocol"] == "matched") & (runs["row"] == "test")]
    key = ["noise", "snr_db", "seed"]
    base = m[m["model"] == baseline].set_index(key)["test_acc"]
    header = [
        f"model - {baseline}",
        "SNR (dB)",
        "pairs",
        "mean difference (points)",
        "std",
        "wins / ties / losses",
    ]
    rows = []
    for model in _models(m):
        if model == baseline:
            continue
        other = m[m["model"] == model].set_index(key)["test_acc"]
        diff = 100 * (other - base).dropna()
        for snr in sorted(diff.index.get_level_values("snr_db").unique()):
            d = diff[diff.index.get_level_values("snr_db") == snr]
            wins, ties = int((d > 0.05).sum()), int((d.abs() <= 0.05).sum())
            rows.append(
                [
                    f"`{model}`",
                    f"{snr:g}",
                    str(len(d)),
                    f"{d.mean():+.1f}",
                    f"{d.std(ddof=1):.1f}" if len(d) > 1 else "",
                    f"{wins} / {ties} / {len(d) - wins - ties}",
                ]
            )
    return _table(header, rows)


def clean_train_table(runs: pd.DataFrame, kind: str = "gaussian") -> str:
    """Clean-train models on the ``kind`` grid, mean ± std over seeds, plus the clean test set."""
    c = runs[runs["protocol"] == "clean_train"]
    grid = c[(c["row"] == "grid") & (c["test_noise"] == kind)]
    snrs = sorted(grid["test_snr_db"].unique())
    header = ["model"] + [f"{s:g}" for s in snrs] + ["clean"]
    rows = []
    for model in _models(c):
        g = grid[grid["model"] == model]
        row = [f"`{model}`"] + [_cell(g[g["test_snr_db"] == s]["test_acc"]) for s in snrs]
        row.append(_cell(c[(c["model"] == model) & (c["row"] == "test")]["test_acc"]))
        rows.append(row)
    return _table(header, rows)


def clean_train_means(runs: pd.DataFrame, snrs: tuple[float, ...] = (-4, 0, 4, 10)) -> str:
    """Clean-train accuracy averaged over the 3 kinds at a few SNRs (mean ± std over seeds)."""
    c = runs[(runs["protocol"] == "clean_train") & (runs["row"] == "grid")]
    header = ["model"] + [f"{s:g} dB, mean of 3 kinds" for s in snrs]
    rows = []
    for model in _models(c):
        g = c[c["model"] == model]
        row = [f"`{model}`"]
        for s in snrs:
            per_seed = g[g["test_snr_db"] == s].groupby("seed")["test_acc"].mean()
            row.append(_cell(per_seed))
        rows.append(row)
    return _table(header, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_csv", type=Path, help="runs.csv written by fd-report")
    args = ap.parse_args(argv)
    if not args.runs_csv.is_file():
        print(f"error: {args.runs_csv} does not exist (run fd-report first)", file=sys.stderr)
        return 2
    runs = pd.read_csv(args.runs_csv)
    # fd-report now names the accuracy column ``acc`` (runs.csv files written before: ``test_acc``)
    # and adds AdaBN rows (``variant``): these tables are about plain accuracy, one row per key
    if "test_acc" not in runs and "acc" in runs:
        runs = runs.rename(columns={"acc": "test_acc"})
    if "variant" in runs:
        runs = runs[runs["variant"] == "plain"]
    missing = {"model", "protocol", "noise", "snr_db", "seed", "test_acc", "row"} - set(runs)
    if missing:
        print(f"error: {args.runs_csv} lacks columns {sorted(missing)}", file=sys.stderr)
        return 2
    n_runs = runs["run_id"].nunique() if "run_id" in runs else math.nan
    print(f"<!-- from {args.runs_csv}: {n_runs} runs -->\n")
    print("### Matched\n")
    print(matched_table(runs), "\n")
    print("### Paired differences against ResNet (matched)\n")
    print(paired_differences(runs), "\n")
    print("### Clean-train, Gaussian grid\n")
    print(clean_train_table(runs), "\n")
    print("### Clean-train, mean over the 3 kinds\n")
    print(clean_train_means(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
