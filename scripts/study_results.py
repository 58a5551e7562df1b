"""The tables and figures of docs/results.md, computed from the study's MLflow runs (issue 14).

``make study-cpu`` trains the runs (experiment ``study_cpu``) and then runs this script::

    python scripts/study_results.py --experiment study_cpu --out docs/results/study \\
        --update-docs docs/results.md --update-readme README.md

What it writes:

- ``<out>/``: the ``fd-report`` folder of every run (runs.csv, summary.csv, comparisons.csv,
  report.md, the full accuracy-vs-SNR figure), for a reader who wants every cell;
- ``<out>/study.md`` and ``<out>/study.json``: the condensed tables below, which ``--update-docs``
  pastes between the ``<!-- study:begin -->`` / ``<!-- study:end -->`` markers of the results page
  and ``--update-readme`` (the headline table only) between ``<!-- study-summary:... -->``;
- figures in ``--img`` (SVG plus a 200 dpi PNG each): accuracy vs SNR of the mixed protocol (all
  models), the confound panels (full band vs 0-4 kHz, clean-train with and without AdaBN), the
  per-class recall heat map at -4 dB, the validation curves that justify the epoch count.

The statistics (``fault_diag.stats``): a cell's interval is the two-level bootstrap over seeds and
test windows; an aggregate of a run (its mean over the 33 grid points, say) is averaged over seeds
with a bootstrap over seeds. A comparison pairs runs of the same seed (and, where runs are the same
network scored two ways, the same run); the Wilcoxon signed-rank test sees one number per unit, and
Holm's correction runs over the comparisons of one table. "Higher" is written only where the
corrected p is below 0.05. Everything is computed with fixed bootstrap seeds, so the page
regenerates byte for byte from the same runs.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fault_diag.report import (
    ADABN,
    PLAIN,
    _cell_rng,
    load_window_scores,
    plot_accuracy_vs_snr,
    select_runs,
    summary_table,
    tidy_table,
    write_report,
)
from fault_diag.stats import cell_interval, holm, paired_comparison

ALPHA = 0.05
N_BOOT = 2000
MODEL_ORDER = [
    "drsn_cw",
    "drsn_cs",
    "resnet1d",
    "se_resnet1d",
    "se_felu_resnet1d",
    "resnet1d_aprelu",
    "ran1d",
    "convnet1d",
    "wdcnn",
]
KINDS = ["gaussian", "pink", "laplacian"]
FULL, BAND = "full band", "0-4 kHz"
#: SNR regions of the "where does DRSN help" table (dB, inclusive).
REGIONS = {"-10..-6 dB": (-10.0, -6.0), "-4..0 dB": (-4.0, 0.0), "2..10 dB": (2.0, 10.0)}


# ------------------------------------------------------------------------------------ data


@dataclass
class Study:
    """The study's runs as tables: ``rows`` (one per run x test condition x variant, from
    :func:`fault_diag.report.tidy_table`) and ``runs`` (one per run x variant, its aggregates)."""

    rows: pd.DataFrame
    runs: pd.DataFrame
    selection: Any
    windows: dict[str, Any]


def band_name(setup: str) -> str:
    """``cwru10`` -> full band, ``cwru10 0-4000 Hz`` -> 0-4 kHz (the only band the study uses)."""
    return FULL if not re.search(r"\d+-\d+ Hz", setup) else BAND


def latest_per_cell(runs: list[Any]) -> list[Any]:
    """One run per (protocol, data, band, model, training noise, SNR, seed): the latest.

    ``make study-cpu`` run twice logs every cell twice into the same experiment; pooling both would
    count a seed twice and pair it with itself, so the newer run of a cell replaces the older.
    """
    keep: dict[tuple[str, ...], Any] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        tags = run.data.tags
        key = tuple(
            tags.get(k, "")
            for k in ("protocol", "data_setup", "band_hz", "model", "noise", "snr_db", "seed")
        )
        keep[key] = run
    if len(keep) < len(runs):
        print(
            f"note: {len(runs) - len(keep)} older duplicate run(s) of a cell left out",
            file=sys.stderr,
        )
    return list(keep.values())


def load_study(experiment: str, tracking_uri: str | None) -> Study:
    selection = select_runs(experiment=experiment, tracking_uri=tracking_uri)
    selection.runs = latest_per_cell(selection.runs)
    windows = load_window_scores(selection)
    rows = tidy_table(selection.runs, windows)
    rows["band"] = rows["data_setup"].map(band_name)
    per_run = []
    for (run_id, variant), g in rows.groupby(["run_id", "variant"], sort=True):
        first = g.iloc[0]
        grid = g[g["row"] == "grid"]
        clean = g[(g["test_noise"] == "none") & g["row"].isin(["test", "clean"])]
        entry: dict[str, Any] = {
            "run_id": run_id,
            "variant": variant,
            "model": first["model"],
            "protocol": first["protocol"],
            "band": first["band"],
            "seed": int(first["seed"]),
            "noise": first["noise"],
            "snr_db": first["snr_db"],
            "clean": float(clean["bal_acc"].mean()) if len(clean) else math.nan,
            "grid": float(grid["bal_acc"].mean()) if len(grid) else math.nan,
            "grid_to_normal": float(grid["healthy_share"].mean()) if len(grid) else math.nan,
        }
        for kind in KINDS:
            k = grid[grid["test_noise"] == kind]
            entry[f"grid_{kind}"] = float(k["bal_acc"].mean()) if len(k) else math.nan
            entry[f"to_normal_{kind}"] = float(k["healthy_share"].mean()) if len(k) else math.nan
        for region, (lo, hi) in REGIONS.items():
            r = grid[(grid["test_snr_db"] >= lo) & (grid["test_snr_db"] <= hi)]
            entry[f"region {region}"] = float(r["bal_acc"].mean()) if len(r) else math.nan
        for kind in KINDS:
            for snr in (-10.0, -8.0, -4.0, 0.0):
                c = grid[(grid["test_noise"] == kind) & (grid["test_snr_db"] == snr)]
                entry[f"{kind} {snr:g}"] = float(c["bal_acc"].mean()) if len(c) else math.nan
        per_run.append(entry)
    runs = pd.DataFrame(per_run)
    return Study(rows, runs, selection, windows)


def ordered_models(models: Sequence[str]) -> list[str]:
    present = set(models)
    return [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))


# ------------------------------------------------------------------------------ statistics


def _rng(*key: Any) -> np.random.Generator:
    """A bootstrap generator fixed by what is being estimated (fd-report's per-cell rule), so the
    tables regenerate exactly and no two estimates share a stream."""
    return _cell_rng(0, key, "study")


def seed_interval(values: Sequence[float], *key: Any) -> tuple[float, float, float, int]:
    """Mean of per-seed values (as fractions) with a 95 % bootstrap interval over seeds."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    iv = cell_interval(v, None, n_boot=N_BOOT, rng=_rng("seed", *key))
    return iv.mean, iv.low, iv.high, int(v.size)


def fmt(mean: float, low: float = math.nan, high: float = math.nan, digits: int = 1) -> str:
    """Percent with its interval: ``96.5 [95.8, 97.1]``."""
    if math.isnan(mean):
        return "n/a"
    text = f"{100 * mean:.{digits}f}"
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{100 * low:.{digits}f}, {100 * high:.{digits}f}]"
    return text


def fmt_diff(mean: float, low: float, high: float) -> str:
    if math.isnan(mean):
        return "n/a"
    text = f"{mean:+.1f}"
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:+.1f}, {high:+.1f}]"
    return text


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


@dataclass
class Comparison:
    label: str
    n_units: int
    mean: float
    low: float
    high: float
    p: float
    p_holm: float = math.nan

    def verdict(self, higher: str, lower: str) -> str:
        if math.isnan(self.p_holm):
            return "no test"
        if self.p_holm < ALPHA:
            return higher if self.mean > 0 else lower
        return "no difference shown"


def paired(
    a: pd.DataFrame, b: pd.DataFrame, metric: str, keys: Sequence[str], label: str
) -> Comparison:
    """``a - b`` in points, paired on ``keys`` (each matched pair one unit)."""
    m = pd.merge(a[[*keys, metric]], b[[*keys, metric]], on=list(keys), suffixes=("", "_b"))
    m = m.dropna(subset=[metric, f"{metric}_b"])
    diff = 100.0 * (m[metric] - m[f"{metric}_b"]).to_numpy(float)
    units = [tuple(u) for u in m[list(keys)].astype(str).itertuples(index=False)]
    res = paired_comparison(diff, units, n_boot=N_BOOT, rng=_rng("pair", label, metric))
    return Comparison(label, res.n_units, res.mean, res.low, res.high, res.p)


def with_holm(comparisons: list[Comparison]) -> list[Comparison]:
    for c, p in zip(comparisons, holm([c.p for c in comparisons]), strict=True):
        c.p_holm = float(p)
    return comparisons


def comparison_md(
    comparisons: list[Comparison], first: str, higher: str, lower: str, unit: str
) -> list[str]:
    lines = [
        f"| {first} | {unit} | difference (points) [95 % CI] | Wilcoxon p | Holm p | reading |",
        "|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.label} | {c.n_units} | {fmt_diff(c.mean, c.low, c.high)} | {fmt_p(c.p)} | "
            f"{fmt_p(c.p_holm)} | {c.verdict(higher, lower)} |"
        )
    return lines


# ---------------------------------------------------------------------------------- tables


def headline_table(study: Study) -> tuple[list[str], list[dict[str, Any]]]:
    """Mixed protocol, full band: per model, balanced accuracy clean / grid mean / per kind."""
    runs = study.runs[
        (study.runs["protocol"] == "mixed")
        & (study.runs["band"] == FULL)
        & (study.runs["variant"] == PLAIN)
    ]
    cols = [
        ("clean", "clean"),
        ("grid", "mean over the grid"),
        ("region -10..-6 dB", "-10..-6 dB"),
        ("grid_gaussian", "Gaussian"),
        ("grid_pink", "pink"),
        ("grid_laplacian", "Laplacian"),
    ]
    lines = [
        "| model | seeds | " + " | ".join(label for _, label in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    records = []
    for model in ordered_models(runs["model"].unique()):
        r = runs[runs["model"] == model]
        cells = []
        record: dict[str, Any] = {"model": model, "seeds": int(r["seed"].nunique())}
        for col, _ in cols:
            mean, low, high, _n = seed_interval(r[col].tolist(), "headline", model, col)
            cells.append(fmt(mean, low, high))
            record[col] = [mean, low, high]
        records.append(record)
        lines.append(f"| `{model}` | {record['seeds']} | " + " | ".join(cells) + " |")
    return lines, records


def against(study: Study, baseline: str) -> list[Comparison]:
    """Every model against ``baseline`` on the per-seed grid mean (mixed, full band)."""
    runs = study.runs[
        (study.runs["protocol"] == "mixed")
        & (study.runs["band"] == FULL)
        & (study.runs["variant"] == PLAIN)
    ]
    base = runs[runs["model"] == baseline]
    out = []
    for model in ordered_models(runs["model"].unique()):
        if model == baseline:
            continue
        out.append(
            paired(
                runs[runs["model"] == model], base, "grid", ["seed"], f"`{model}` - `{baseline}`"
            )
        )
    return with_holm(out)


def drsn_regions(
    study: Study, model: str = "drsn_cw", baseline: str = "resnet1d"
) -> list[Comparison]:
    """Where DRSN-CW differs from ResNet: per noise kind x SNR region, and the clean test set."""
    runs = study.runs[
        (study.runs["protocol"] == "mixed")
        & (study.runs["band"] == FULL)
        & (study.runs["variant"] == PLAIN)
    ]
    a, b = runs[runs["model"] == model], runs[runs["model"] == baseline]
    rows = study.rows[
        (study.rows["protocol"] == "mixed")
        & (study.rows["band"] == FULL)
        & (study.rows["variant"] == PLAIN)
        & (study.rows["row"] == "grid")
    ]
    out = [paired(a, b, "clean", ["seed"], "clean")]
    for kind in KINDS:
        for region, (lo, hi) in REGIONS.items():
            sel = rows[
                (rows["test_noise"] == kind)
                & (rows["test_snr_db"] >= lo)
                & (rows["test_snr_db"] <= hi)
            ]
            per_seed = sel.groupby(["model", "seed"])["bal_acc"].mean().reset_index()
            out.append(
                paired(
                    per_seed[per_seed["model"] == model],
                    per_seed[per_seed["model"] == baseline],
                    "bal_acc",
                    ["seed"],
                    f"{kind} {region}",
                )
            )
    return with_holm(out)


def confound_tables(study: Study) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Full band vs 0-4 kHz per protocol and variant (models with both), and the share of fault
    windows sent to the healthy class."""
    runs = study.runs[study.runs["protocol"].isin(["mixed", "clean_train"])]
    both = set(runs[runs["band"] == BAND]["model"]) & set(runs[runs["band"] == FULL]["model"])
    families = [
        ("mixed", PLAIN, "mixed"),
        ("clean_train", PLAIN, "clean-train"),
        ("clean_train", ADABN, "clean-train + AdaBN"),
    ]
    metrics = [("clean", "clean"), ("grid", "grid mean"), ("grid_to_normal", "to normal")]
    lines = [
        "| protocol | model | "
        + " | ".join(f"{label}: full / 0-4 kHz" for _, label in metrics)
        + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    records = []
    tests: list[Comparison] = []
    for protocol, variant, name in families:
        fam = runs[(runs["protocol"] == protocol) & (runs["variant"] == variant)]
        if fam.empty:
            continue
        for model in ordered_models(both):
            cells = []
            for col, _ in metrics:
                parts = []
                for band in (FULL, BAND):
                    sel = fam[(fam["model"] == model) & (fam["band"] == band)]
                    # only the seeds both setups have, so the two numbers are comparable
                    seeds = set(fam[(fam["model"] == model) & (fam["band"] == FULL)]["seed"]) & set(
                        fam[(fam["model"] == model) & (fam["band"] == BAND)]["seed"]
                    )
                    sel = sel[sel["seed"].isin(seeds)]
                    mean, low, high, _ = seed_interval(sel[col].tolist(), name, model, band, col)
                    parts.append(fmt(mean, low, high))
                    records.append(
                        {
                            "protocol": name,
                            "model": model,
                            "band": band,
                            "metric": col,
                            "mean": mean,
                            "low": low,
                            "high": high,
                            "seeds": len(seeds),
                        }
                    )
                cells.append(" / ".join(parts))
            lines.append(f"| {name} | `{model}` | " + " | ".join(cells) + " |")
        # pooled over models: band-limited minus full band, one unit per (model, seed)
        full = fam[fam["band"] == FULL]
        band = fam[fam["band"] == BAND]
        for col, label in metrics[:2]:
            tests.append(paired(band, full, col, ["model", "seed"], f"{name}: {label}"))
    with_holm(tests)
    test_lines = comparison_md(
        tests, "0-4 kHz - full band", "higher at 0-4 kHz", "lower at 0-4 kHz", "pairs (model, seed)"
    )
    return lines, test_lines, records


def adabn_tests(study: Study) -> list[Comparison]:
    """AdaBN minus plain scoring of the same clean-trained networks (one unit per run)."""
    runs = study.runs[study.runs["protocol"] == "clean_train"]
    out = []
    for band in (FULL, BAND):
        sel = runs[runs["band"] == band]
        if sel.empty:
            continue
        a, p = sel[sel["variant"] == ADABN], sel[sel["variant"] == PLAIN]
        for col, label in (("grid", "grid mean"), ("clean", "clean")):
            out.append(paired(a, p, col, ["run_id"], f"{band}: {label}"))
    return with_holm(out)


def to_normal_table(study: Study) -> list[str]:
    """Share of fault windows sent to the healthy class, by kind (grid mean), clean-train runs."""
    runs = study.runs[study.runs["protocol"] == "clean_train"]
    lines = [
        "| band | scoring | model | " + " | ".join(KINDS) + " |",
        "|---|---|---|" + "---|" * len(KINDS),
    ]
    for band in (FULL, BAND):
        for variant, vname in ((PLAIN, "plain"), (ADABN, "AdaBN")):
            for model in ordered_models(runs["model"].unique()):
                sel = runs[
                    (runs["band"] == band) & (runs["variant"] == variant) & (runs["model"] == model)
                ]
                if sel.empty:
                    continue
                cells = []
                for kind in KINDS:
                    mean, low, high, _ = seed_interval(
                        sel[f"to_normal_{kind}"].tolist(), "tonormal", band, variant, model, kind
                    )
                    cells.append(fmt(mean, low, high))
                lines.append(f"| {band} | {vname} | `{model}` | " + " | ".join(cells) + " |")
    return lines


def matched_table(study: Study) -> tuple[list[str], list[Comparison]]:
    """Matched specialists against the mixed model at their training condition."""
    m = study.runs[(study.runs["protocol"] == "matched") & (study.runs["variant"] == PLAIN)]
    if m.empty:
        return [], []
    rows = study.rows[(study.rows["variant"] == PLAIN) & (study.rows["band"] == FULL)]
    lines = [
        "| model | condition | seeds | matched | mixed (same seeds) | matched - mixed (points) [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]
    pooled_tests = []
    for (kind, snr), grp in m.groupby(["noise", "snr_db"]):
        cond = rows[(rows["test_noise"] == kind) & (rows["test_snr_db"] == snr)]
        matched = cond[(cond["protocol"] == "matched") & (cond["snr_db"] == snr)]
        mixed = cond[cond["protocol"] == "mixed"]
        for model in ordered_models(grp["model"].unique()):
            a = matched[matched["model"] == model][["seed", "bal_acc"]]
            b = mixed[mixed["model"] == model][["seed", "bal_acc"]]
            seeds = sorted(set(a["seed"]) & set(b["seed"]))
            a, b = a[a["seed"].isin(seeds)], b[b["seed"].isin(seeds)]
            c = paired(a, b, "bal_acc", ["seed"], f"`{model}` {kind} {snr:g} dB")
            ma = seed_interval(a["bal_acc"].tolist(), "matched", model, kind, snr)
            mb = seed_interval(b["bal_acc"].tolist(), "mixed-at", model, kind, snr)
            lines.append(
                f"| `{model}` | {kind} {snr:g} dB | {len(seeds)} | {fmt(*ma[:3])} | "
                f"{fmt(*mb[:3])} | {fmt_diff(c.mean, c.low, c.high)} |"
            )
        # pooled over models: one unit per (model, seed)
        pooled_a = matched[["model", "seed", "bal_acc"]]
        pooled_b = mixed[mixed["model"].isin(grp["model"].unique())][["model", "seed", "bal_acc"]]
        pooled_tests.append(
            paired(
                pooled_a, pooled_b, "bal_acc", ["model", "seed"], f"all models, {kind} {snr:g} dB"
            )
        )
    return lines, with_holm(pooled_tests)


def convergence(study: Study) -> tuple[list[str], dict[str, Any]]:
    """Validation loss per epoch (median over seeds), mixed full band; the epoch selected."""
    from fault_diag.tracking import get_client

    client = get_client(study.selection.tracking_uri)
    runs = study.runs[
        (study.runs["protocol"] == "mixed")
        & (study.runs["band"] == FULL)
        & (study.runs["variant"] == PLAIN)
    ]
    curves: dict[str, list[list[float]]] = {}
    best: dict[str, list[int]] = {}
    for _, r in runs.iterrows():
        hist = client.get_metric_history(r["run_id"], "val/loss")
        values = [h.value for h in sorted(hist, key=lambda h: h.step)]
        curves.setdefault(r["model"], []).append(values)
        best[r["model"]] = best.get(r["model"], []) + [int(np.argmin(values)) + 1]
    n_epochs = max(len(v) for c in curves.values() for v in c)
    show = sorted({1, 3, n_epochs // 2, n_epochs // 2 + 1, n_epochs - 2, n_epochs})
    lines = [
        "| model | "
        + " | ".join(f"epoch {e}" for e in show)
        + " | last 3 epochs: max change | epoch selected (median, range) |",
        "|---|" + "---|" * (len(show) + 2),
    ]
    summary: dict[str, Any] = {}
    for model in ordered_models(curves):
        arr = np.array([c for c in curves[model] if len(c) == n_epochs])
        med = np.median(arr, axis=0)
        tail = med[-3:]
        change = float((tail.max() - tail.min()) / max(tail.mean(), 1e-12))
        b = best[model]
        summary[model] = {"median_val_loss": med.tolist(), "best_epoch": b}
        lines.append(
            f"| `{model}` | "
            + " | ".join(f"{med[e - 1]:.3f}" for e in show)
            + f" | {100 * change:.0f} % | {int(np.median(b))} ({min(b)}-{max(b)}) |"
        )
    return lines, {"curves": curves, "summary": summary, "n_epochs": n_epochs}


# --------------------------------------------------------------------------------- figures


def plot_validation(conv: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    # fixed ids in the SVG (matplotlib salts them at random): a regenerated figure is byte-identical
    matplotlib.rcParams["svg.hashsalt"] = "fault-diag"
    import matplotlib.pyplot as plt

    curves = conv["curves"]
    models = ordered_models(curves)
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    # the colours of fd-report's accuracy figures: tab10 over the sorted model names
    colours = {m: cmap(i % 10) for i, m in enumerate(sorted(models))}
    for model in models:
        colour = colours[model]
        for c in curves[model]:
            ax.plot(range(1, len(c) + 1), c, color=colour, alpha=0.15, lw=0.8)
        arr = np.array([c for c in curves[model] if len(c) == conv["n_epochs"]])
        ax.plot(
            range(1, conv["n_epochs"] + 1),
            np.median(arr, axis=0),
            color=colour,
            lw=2,
            label=f"{model} (n={len(arr)})",
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (cross-entropy, log scale)")
    ax.set_title(
        "Mixed protocol, full band: validation loss per epoch\n(thick: median over seeds; thin: each seed)",
        fontsize=10,
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=200)
    fig.savefig(path.with_suffix(".svg"), metadata={"Date": None})
    plt.close(fig)


def recall_heatmap(study: Study, path: Path, snr_db: float = -4.0) -> list[str]:
    """Per-class recall at ``snr_db`` (mean over seeds), mixed protocol, full band, one panel per
    noise kind; from each run's test_conditions.csv artifact."""
    import matplotlib

    matplotlib.use("Agg")
    # fixed ids in the SVG (matplotlib salts them at random): a regenerated figure is byte-identical
    matplotlib.rcParams["svg.hashsalt"] = "fault-diag"
    import matplotlib.pyplot as plt
    import mlflow.artifacts

    runs = study.runs[
        (study.runs["protocol"] == "mixed")
        & (study.runs["band"] == FULL)
        & (study.runs["variant"] == PLAIN)
    ]
    frames = []
    art = {r.info.run_id: r.info.artifact_uri for r in study.selection.runs}
    for _, r in runs.iterrows():
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{art[r['run_id']].rstrip('/')}/test_conditions.csv"
        )
        t = pd.read_csv(local)
        t = t[(t["snr_db"] == snr_db) & (~t["adabn"].astype(bool))]
        t = t.assign(model=r["model"], seed=r["seed"])
        frames.append(t)
    data = pd.concat(frames)
    classes = [c.split("/", 1)[1] for c in data.columns if c.startswith("recall/")]
    models = ordered_models(data["model"].unique())
    fig, axes = plt.subplots(1, len(KINDS), figsize=(5.2 * len(KINDS), 0.42 * len(models) + 2.2))
    lines = ["| model | kind | " + " | ".join(classes) + " |", "|---|---|" + "---|" * len(classes)]
    for ax, kind in zip(axes, KINDS, strict=True):
        sub = data[data["noise"] == kind]
        mat = np.array(
            [[sub[sub["model"] == m][f"recall/{c}"].mean() for c in classes] for m in models]
        )
        im = ax.imshow(100 * mat, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
        # model names on the first panel only: the panels share their rows
        ax.set_yticks(range(len(models)), models if ax is axes[0] else [], fontsize=8)
        ax.set_title(f"{kind} noise, {snr_db:g} dB", fontsize=10)
        for i in range(len(models)):
            for j in range(len(classes)):
                ax.text(
                    j,
                    i,
                    f"{100 * mat[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="white" if mat[i, j] < 0.6 else "black",
                )
        for i, m in enumerate(models):
            lines.append(
                f"| `{m}` | {kind} | " + " | ".join(f"{100 * v:.0f}" for v in mat[i]) + " |"
            )
    fig.subplots_adjust(wspace=0.08)
    fig.colorbar(im, ax=list(axes), label="recall (%), mean over seeds", shrink=0.9)
    fig.suptitle(
        f"Mixed protocol, full band: per-class recall at {snr_db:g} dB (3 noise draws per window)",
        fontsize=10,
    )
    fig.savefig(path.with_suffix(".png"), dpi=200, bbox_inches="tight")
    fig.savefig(path.with_suffix(".svg"), metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return lines


def curve_figures(study: Study, img: Path) -> dict[str, Any]:
    """Accuracy vs SNR with interval bands: the mixed protocol (every model), and the confound
    panels (the models that ran on both bands)."""
    rows = study.rows
    out: dict[str, Any] = {}
    mixed = rows[(rows["protocol"] == "mixed") & (rows["band"] == FULL)]
    s = summary_table(mixed.drop(columns="band"), study.windows, n_boot=N_BOOT, seed=0)
    out["mixed"] = plot_accuracy_vs_snr(
        s, img / "study_mixed_vs_snr.png", "Mixed protocol, cwru10 full band"
    )
    both = set(rows[rows["band"] == BAND]["model"])
    conf = rows[rows["protocol"].isin(["mixed", "clean_train"]) & rows["model"].isin(both)]
    # the same seeds on both bands
    seeds = set(rows[(rows["band"] == BAND)]["seed"])
    conf = conf[conf["seed"].isin(seeds)]
    s2 = summary_table(conf.drop(columns="band"), study.windows, n_boot=N_BOOT, seed=0)
    out["confound"] = plot_accuracy_vs_snr(
        s2, img / "study_confound_vs_snr.png", "Full band vs 0-4 kHz"
    )
    return out


# ------------------------------------------------------------------------------------ page


def replace_block(path: Path, name: str, body: str) -> None:
    text = path.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: markers {begin} / {end} not found")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{body.strip()}\n{end}{tail}")


def build(args: argparse.Namespace) -> int:
    study = load_study(args.experiment, args.tracking_uri)
    out = Path(args.out)
    img = Path(args.img)
    out.mkdir(parents=True, exist_ok=True)
    img.mkdir(parents=True, exist_ok=True)
    if not args.skip_report:
        write_report(study.selection, out, baseline="resnet1d", n_boot=N_BOOT, seed=0)

    counts = (
        study.runs[study.runs["variant"] == PLAIN]
        .groupby(["protocol", "band", "model"])["seed"]
        .nunique()
        .reset_index()
    )
    md: list[str] = []
    add: Callable[..., None] = lambda *xs: md.extend(xs)  # noqa: E731

    add(
        "### Runs",
        "",
        f"{len(study.selection.runs)} finished runs of experiment "
        f"`{args.experiment}` ({len(study.windows)} with per-window scores).",
        "",
    )
    add("| protocol | data | models (seeds) |", "|---|---|---|")
    for (protocol, band), g in counts.groupby(["protocol", "band"], sort=False):
        models = ", ".join(f"`{m}` ({n})" for m, n in zip(g["model"], g["seed"], strict=True))
        add(f"| {protocol} | {band} | {models} |")

    head_lines, head_records = headline_table(study)
    add(
        "",
        "### Mixed protocol, full band: balanced accuracy (%)",
        "",
        "Mean over seeds [95 % bootstrap interval over seeds]. *mean over the grid*: the 33 test "
        "conditions (3 kinds x -10..+10 dB) averaged per run; *-10..-6 dB*: the 9 hardest; a kind's "
        "column: its 11 SNRs.",
        "",
        *head_lines,
    )

    comps: dict[str, list[Comparison]] = {}
    for baseline in ("resnet1d", "wdcnn"):
        c = against(study, baseline)
        comps[baseline] = c
        add(
            "",
            f"### Every model against `{baseline}` (mixed, full band, mean over the grid)",
            "",
            f"Paired by seed; Holm's correction over the {len(c)} models of the table.",
            "",
            *comparison_md(c, "model - baseline", "higher", "lower", "seeds"),
        )

    regions = drsn_regions(study)
    add(
        "",
        "### Where DRSN-CW and ResNet differ (mixed, full band)",
        "",
        "`drsn_cw` - `resnet1d`, paired by seed, per noise kind and SNR region and on the clean "
        f"test set; Holm's correction over the {len(regions)} rows.",
        "",
        *comparison_md(regions, "test condition", "DRSN-CW higher", "DRSN-CW lower", "seeds"),
    )

    conf_lines, conf_tests, conf_records = confound_tables(study)
    add(
        "",
        "### The confound: full band against 0-4 kHz",
        "",
        "Balanced accuracy (%) on each setup (same seeds), and *to normal*: the share of fault "
        "windows classified as `normal`, mean over the grid. Mean [95 % interval over seeds].",
        "",
        *conf_lines,
        "",
        "Pooled over the models (one unit per model and seed); Holm over the rows:",
        "",
        *conf_tests,
    )

    ada = adabn_tests(study)
    if ada:
        add(
            "",
            "### AdaBN on clean-trained networks",
            "",
            "AdaBN - plain scoring of the same networks (one unit per run); Holm over the rows.",
            "",
            *comparison_md(ada, "setup: metric", "AdaBN higher", "AdaBN lower", "runs"),
        )
        add(
            "",
            "### Clean-train: share of fault windows sent to `normal` (%), mean over the grid",
            "",
            *to_normal_table(study),
        )

    m_lines, m_tests = matched_table(study)
    if m_lines:
        add(
            "",
            "### Matched specialists against the mixed model at their training condition",
            "",
            "Balanced accuracy (%), the same seeds; the pooled test has one unit per model and seed.",
            "",
            *m_lines,
            "",
            *comparison_md(
                m_tests, "pooled", "matched higher", "mixed higher", "pairs (model, seed)"
            ),
        )

    conv_lines, conv = convergence(study)
    plot_validation(conv, img / "study_validation_loss")
    add("", "### Validation loss per epoch (mixed, full band; median over seeds)", "", *conv_lines)

    heat_lines = recall_heatmap(study, img / "study_recall_m4db")
    figures = curve_figures(study, img)
    add("", "### Per-class recall at -4 dB (%, mixed, full band, mean over seeds)", "", *heat_lines)

    body = "\n".join(md) + "\n"
    (out / "study.md").write_text(body)
    payload = {
        "experiment": args.experiment,
        "runs": len(study.selection.runs),
        "headline": head_records,
        "comparisons": {k: [c.__dict__ for c in v] for k, v in comps.items()},
        "drsn_regions": [c.__dict__ for c in regions],
        "confound": conf_records,
        "adabn": [c.__dict__ for c in ada],
        "matched": [c.__dict__ for c in m_tests],
        "convergence": conv["summary"],
        "figures": figures,
    }
    (out / "study.json").write_text(json.dumps(payload, indent=1, default=float) + "\n")
    if args.update_docs:
        replace_block(Path(args.update_docs), "study", body)
    if args.update_readme:
        readme = [
            "| model | seeds | clean | mean over the grid | -10..-6 dB |",
            "|---|---|---|---|---|",
        ]
        for r in head_records:
            readme.append(
                f"| `{r['model']}` | {r['seeds']} | {fmt(*r['clean'])} | {fmt(*r['grid'])} | "
                f"{fmt(*r['region -10..-6 dB'])} |"
            )
        replace_block(Path(args.update_readme), "study-summary", "\n".join(readme))
    print(body)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", default="study_cpu")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--out", default="docs/results/study")
    p.add_argument("--img", default="docs/img")
    p.add_argument("--update-docs", default=None, help="results page to paste the tables into")
    p.add_argument("--update-readme", default=None, help="README to paste the headline table into")
    p.add_argument("--skip-report", action="store_true", help="do not write the fd-report folder")
    return build(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
