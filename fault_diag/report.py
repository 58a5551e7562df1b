"""Results reports from the MLflow store: a tidy table, an accuracy-vs-SNR summary, plots.

Runs are selected by sweep (the ``sweep_id`` tag every job of a multirun carries, or the sweep folder
holding ``mlflow_parent_run.json``) or by experiment plus an MLflow filter string. Every finished
training run gives one row at its own test condition:

- ``matched`` protocol (DRSN paper): tested at the training noise and SNR (``test/acc``,
  ``test/macro_f1``);
- ``clean_train`` protocol (WDCNN): a ``test_noise = none`` row (clean test set) plus one row per
  point of its test grid (``test/acc/<kind>/<snr>dB``; macro-F1 is not logged there).

The accuracy-vs-SNR figure has one panel per noise type and one line per model (per protocol when
several are mixed), mean +/- std over seeds; the x axis is the test SNR (for matched runs the
training SNR, which is the same). For DRSN models a second figure shows the learned soft threshold
(mean over the units of each stage, measured on the test windows at the training condition) against
the training SNR. Files: ``runs.csv`` (tidy), ``summary.csv`` (mean/std/n over seeds),
``report.md``, ``accuracy_vs_snr.png``, ``thresholds_vs_snr.png``; logged under ``report/`` of the
sweep's parent run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

GRID_METRIC = re.compile(r"^test/acc/(?P<kind>[^/]+)/(?P<snr>-?\d+(?:\.\d+)?)dB$")
THRESHOLD_METRIC = re.compile(r"^threshold/(?P<unit>.+)$")
STAGE = re.compile(r"(stage\d+)")
TIDY_COLUMNS = [
    "run_id",
    "model",
    "protocol",
    "noise",
    "snr_db",
    "seed",
    "test_noise",
    "test_snr_db",
    "test_acc",
    "macro_f1",
    "row",
    "data_setup",
    "split",
    "sweep_id",
]
GROUP_KEYS = ["model", "protocol", "noise", "snr_db", "test_noise", "test_snr_db", "row"]
NOISE_ORDER = ["gaussian", "laplacian", "pink"]


class ReportError(ValueError):
    """The runs to report on cannot be found or hold nothing to report."""


# ------------------------------------------------------------------------------- selection


@dataclass
class RunSelection:
    """The runs of a report, with where they came from."""

    runs: list[Any]
    title: str
    tracking_uri: str
    parent_run_id: str | None = None
    sweep_id: str | None = None
    skipped: list[str] = field(default_factory=list)  # "run_id (status)" of unfinished runs


def _all_experiment_ids(client: Any) -> list[str]:
    return [e.experiment_id for e in client.search_experiments(max_results=1000)]


def _search(client: Any, exp_ids: list[str], filter_string: str | None) -> list[Any]:
    from mlflow.exceptions import MlflowException

    runs: list[Any] = []
    token = None
    while True:
        try:
            page = client.search_runs(
                exp_ids, filter_string=filter_string or "", max_results=1000, page_token=token
            )
        except MlflowException as exc:
            raise ReportError(
                f"MLflow search with filter {filter_string!r} failed: {exc.message}"
            ) from exc
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def select_runs(
    *,
    sweep: str | None = None,
    experiment: str | None = None,
    filter_string: str | None = None,
    tracking_uri: str | None = None,
    include_unfinished: bool = False,
) -> RunSelection:
    """Find the training runs of a sweep (id, folder, or ``latest``) or of an experiment (+ filter)."""
    from fault_diag.tracking import get_client, read_parent_run, resolve_tracking_uri

    if (sweep is None) == (experiment is None):
        raise ReportError("give exactly one of a sweep (--sweep) or an experiment (--experiment)")
    uri = resolve_tracking_uri(tracking_uri)
    parent_id: str | None = None
    sweep_id: str | None = None
    if sweep is not None and Path(sweep).expanduser().is_dir():
        record = read_parent_run(Path(sweep).expanduser())
        if record is None:
            raise ReportError(
                f"{sweep}: no mlflow_parent_run.json; not a sweep folder of fd-train -m with MLflow"
            )
        if tracking_uri is None:
            uri = record["tracking_uri"]
        parent_id, sweep_id = record["run_id"], record["sweep_id"]
    client = get_client(uri)
    if sweep is not None:
        exp_ids = _all_experiment_ids(client)
        if sweep == "latest":
            parents = _search(client, exp_ids, "tags.`fd.role` = 'sweep'")
            if not parents:
                raise ReportError(f"no sweep in {uri}")
            latest = max(parents, key=lambda r: r.info.start_time)
            parent_id, sweep_id = latest.info.run_id, latest.data.tags["sweep_id"]
        elif sweep_id is None:
            sweep_id = sweep
        found = _search(client, exp_ids, f"tags.sweep_id = '{sweep_id}'")
        if filter_string:
            keep = {r.info.run_id for r in _search(client, exp_ids, filter_string)}
            found = [
                r for r in found if r.info.run_id in keep or r.data.tags.get("fd.role") == "sweep"
            ]
        parents = [r for r in found if r.data.tags.get("fd.role") == "sweep"]
        if parents and parent_id is None:
            parent_id = parents[0].info.run_id
        runs = [r for r in found if r.data.tags.get("fd.role") != "sweep"]
        if not found:
            known = sorted(
                {
                    r.data.tags.get("sweep_id", "")
                    for r in _search(client, exp_ids, "tags.`fd.role` = 'sweep'")
                }
            )
            raise ReportError(
                f"sweep {sweep_id!r} not found in {uri}; sweeps there: {known or 'none'}"
            )
        title = f"sweep {sweep_id}"
    else:
        assert experiment is not None  # exactly one of sweep / experiment, checked above
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            names = [e.name for e in client.search_experiments(max_results=1000)]
            raise ReportError(f"experiment {experiment!r} not found in {uri}; experiments: {names}")
        found = _search(client, [exp.experiment_id], filter_string)
        runs = [r for r in found if r.data.tags.get("fd.role") != "sweep"]
        sweeps = {r.data.tags.get("sweep_id") for r in runs}
        if len(sweeps) == 1 and None not in sweeps:
            sweep_id = sweeps.pop()
            parents = _search(
                client,
                [exp.experiment_id],
                f"tags.`fd.role` = 'sweep' and tags.sweep_id = '{sweep_id}'",
            )
            parent_id = parents[0].info.run_id if parents else None
        title = f"experiment {experiment}" + (f" ({filter_string})" if filter_string else "")
    skipped = [f"{r.info.run_id} ({r.info.status})" for r in runs if r.info.status != "FINISHED"]
    if not include_unfinished:
        runs = [r for r in runs if r.info.status == "FINISHED"]
    runs = [r for r in runs if "test/acc" in r.data.metrics]
    if not runs:
        raise ReportError(f"{title}: no finished training run with a test/acc metric in {uri}")
    return RunSelection(runs, title, uri, parent_id, sweep_id, skipped)


# ---------------------------------------------------------------------------------- tables


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _int_or_nan(text: Any) -> float:
    value = _float(text)
    return value if math.isnan(value) else int(value)


def tidy_table(runs: list[Any]) -> pd.DataFrame:
    """One row per (run, test condition); columns :data:`TIDY_COLUMNS`."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        protocol = tags.get("protocol", "matched")
        base = {
            "run_id": run.info.run_id,
            "model": tags.get("model", "?"),
            "protocol": protocol,
            "noise": tags.get("noise", "?"),
            "snr_db": _float(tags.get("snr_db")),
            "seed": _int_or_nan(tags.get("seed")),
            "data_setup": tags.get("data_setup", ""),
            "split": tags.get("split", ""),
            "sweep_id": tags.get("sweep_id", ""),
        }
        if protocol == "clean_train":
            base["noise"] = "none"  # the training noise; the tag holds the (unused) noise kind
            base["snr_db"] = math.nan
            rows.append(
                {
                    **base,
                    "test_noise": "none",
                    "test_snr_db": math.nan,
                    "test_acc": metrics["test/acc"],
                    "macro_f1": metrics.get("test/macro_f1", math.nan),
                    "row": "test",
                }
            )
            for name, value in metrics.items():
                m = GRID_METRIC.match(name)
                if m:
                    rows.append(
                        {
                            **base,
                            "test_noise": m["kind"],
                            "test_snr_db": float(m["snr"]),
                            "test_acc": value,
                            "macro_f1": math.nan,
                            "row": "grid",
                        }
                    )
        else:
            rows.append(
                {
                    **base,
                    "test_noise": base["noise"],
                    "test_snr_db": base["snr_db"],
                    "test_acc": metrics["test/acc"],
                    "macro_f1": metrics.get("test/macro_f1", math.nan),
                    "row": "test",
                }
            )
    table = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    return table.sort_values(
        ["protocol", "model", "test_noise", "test_snr_db", "seed", "run_id"], na_position="first"
    ).reset_index(drop=True)


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1; NaN for one seed) and count over seeds of accuracy and macro-F1."""
    grouped = table.groupby(GROUP_KEYS, dropna=False, sort=True)
    out = grouped.agg(
        acc_mean=("test_acc", "mean"),
        acc_std=("test_acc", "std"),
        macro_f1_mean=("macro_f1", "mean"),
        macro_f1_std=("macro_f1", "std"),
        n_seeds=("seed", "nunique"),
        n_runs=("run_id", "nunique"),
    )
    return out.reset_index()


def threshold_table(runs: list[Any]) -> pd.DataFrame:
    """Learned thresholds of DRSN runs, per stage (mean over its units): one row per (run, stage)."""
    rows = []
    for run in runs:
        per_stage: dict[str, list[float]] = {}
        for name, value in run.data.metrics.items():
            m = THRESHOLD_METRIC.match(name)
            if m:
                s = STAGE.search(m["unit"])
                per_stage.setdefault(s.group(1) if s else m["unit"], []).append(value)
        tags = run.data.tags
        for stage, values in per_stage.items():
            rows.append(
                {
                    "run_id": run.info.run_id,
                    "model": tags.get("model", "?"),
                    "protocol": tags.get("protocol", "matched"),
                    "noise": tags.get("noise", "?")
                    if tags.get("protocol") != "clean_train"
                    else "none",
                    "snr_db": _float(tags.get("snr_db")),
                    "seed": _int_or_nan(tags.get("seed")),
                    "stage": stage,
                    "threshold": float(np.mean(values)),
                    "n_units": len(values),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "model",
            "protocol",
            "noise",
            "snr_db",
            "seed",
            "stage",
            "threshold",
            "n_units",
        ],
    )


def curve_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows on an accuracy-vs-SNR curve: matched runs at their SNR, clean-train runs' grid points.

    Works on the tidy table and on the summary (both have ``protocol``, ``row``, ``test_snr_db``)."""
    matched = (
        (table["protocol"] != "clean_train")
        & (table["row"] == "test")
        & table["test_snr_db"].notna()
    )
    grid = (table["protocol"] == "clean_train") & (table["row"] == "grid")
    return table[matched | grid]


# ---------------------------------------------------------------------------------- output


def _fmt_pct(mean: float, std: float, n: int) -> str:
    if math.isnan(mean):
        return ""
    if n > 1 and not math.isnan(std):
        return f"{100 * mean:.1f} ± {100 * std:.1f}"
    return f"{100 * mean:.1f}"


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append("" if math.isnan(v) else f"{v:g}")
            else:
                cells.append(str(v).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pivot_markdown(summary: pd.DataFrame) -> str:
    """Accuracy (%) mean ± std over seeds: rows model/protocol/test noise, columns test SNR."""
    curves = curve_rows(summary)
    if curves.empty:
        return "_no accuracy-vs-SNR points_"
    snrs = sorted(curves["test_snr_db"].unique())
    # Clean-train runs also have a clean test accuracy: its own last column, not an SNR column.
    clean = summary[(summary["protocol"] == "clean_train") & (summary["row"] == "test")]
    clean_cells = {
        (r.protocol, r.model): _fmt_pct(r.acc_mean, r.acc_std, r.n_seeds)
        for r in clean.itertuples(index=False)
    }
    header = ["protocol", "model", "test noise"] + [f"{s:g} dB" for s in snrs]
    if clean_cells:
        header.append("clean")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for (protocol, model, noise), group in curves.groupby(
        ["protocol", "model", "test_noise"], sort=True
    ):
        cells = {}
        for r in group.itertuples(index=False):
            cells[r.test_snr_db] = _fmt_pct(r.acc_mean, r.acc_std, r.n_seeds)
        row = [protocol, model, noise] + [cells.get(s, "") for s in snrs]
        if clean_cells:
            row.append(clean_cells.get((protocol, model), ""))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _ordered_noises(values: Any) -> list[str]:
    present = [str(v) for v in pd.unique(values)]
    return [n for n in NOISE_ORDER if n in present] + sorted(
        n for n in present if n not in NOISE_ORDER
    )


PROTOCOL_ORDER = ["matched", "clean_train"]


def plot_accuracy_vs_snr(table: pd.DataFrame, path: Path, title: str) -> dict[str, list[str]]:
    """Accuracy vs test SNR: one row of panels per protocol, one panel per test noise type, one
    line per model (one colour per model throughout), mean ± std over seeds as error bars.

    Returns ``{noise type: [line labels, sorted]}`` (empty when there is nothing to plot); labels
    carry the protocol when several are present.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = curve_rows(table)
    panels: dict[str, list[str]] = {}
    if curves.empty:
        return panels
    noises = _ordered_noises(curves["test_noise"])
    present = [str(p) for p in pd.unique(curves["protocol"])]
    protocols = [p for p in PROTOCOL_ORDER if p in present] + sorted(
        p for p in present if p not in PROTOCOL_ORDER
    )
    several_protocols = len(protocols) > 1
    models = sorted(str(m) for m in pd.unique(curves["model"]))
    # tab10 gives 10 distinct colours; beyond that tab20 (the registry has 9 models today).
    cmap = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    colours = {m: cmap(i % cmap.N) for i, m in enumerate(models)}
    fig, axes = plt.subplots(
        len(protocols),
        len(noises),
        figsize=(max(5.5, 4.2 * len(noises)), 3.3 * len(protocols) + 0.9),
        dpi=90,
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    handles: dict[str, Any] = {}
    dodge_db = 0.25  # horizontal offset between models where a panel has only a few SNRs
    for row, protocol in zip(axes, protocols, strict=True):
        for ax, noise in zip(row, noises, strict=True):
            sub = curves[(curves["test_noise"] == noise) & (curves["protocol"] == protocol)]
            # A matched sweep often has 1-4 training SNRs: dodge the models so points stay legible.
            dodge = sub["test_snr_db"].nunique() <= 4
            for model, group in sub.groupby("model", sort=True):
                stats = (
                    group.groupby("test_snr_db")["test_acc"]
                    .agg(["mean", "std", "count"])
                    .sort_index()
                )
                x = stats.index.to_numpy(float)
                if dodge:
                    x = x + dodge_db * (models.index(str(model)) - (len(models) - 1) / 2)
                mean = 100 * stats["mean"].to_numpy()
                std = 100 * stats["std"].fillna(0.0).to_numpy()
                n = int(group["seed"].nunique())
                label = f"{model} ({protocol})" if several_protocols else str(model)
                panels.setdefault(noise, []).append(f"{label}, n={n}")
                bars = ax.errorbar(
                    x,
                    mean,
                    yerr=std if n > 1 else None,
                    color=colours[str(model)],
                    marker="o",
                    ms=3.5,
                    lw=1.2,
                    elinewidth=0.8,
                    capsize=2,
                    alpha=0.9,
                )
                handles.setdefault(str(model), bars)
            name = protocol.replace("_", "-")
            ax.set_title(
                (f"{name}: {noise} noise" if several_protocols else f"{noise} noise")
                + (" (models dodged)" if dodge else "")
            )
            ax.title.set_fontsize(10)
            ax.set_xlabel("test SNR (dB)")
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
        row[0].set_ylabel("test accuracy (%)")
    n_seeds = sorted({int(s) for s in curves["seed"].dropna().unique()})
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="lower center",
        ncol=min(len(handles), 5),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(f"{title}: accuracy vs SNR (mean ± std over {len(n_seeds)} seed(s))", fontsize=10)
    legend_rows = math.ceil(len(handles) / 5)
    fig.tight_layout(rect=(0, 0.04 + 0.035 * legend_rows, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return {noise: sorted(panels[noise]) for noise in noises if noise in panels}


def plot_thresholds_vs_snr(
    thresholds: pd.DataFrame, path: Path, title: str
) -> dict[str, list[str]]:
    """DRSN models: mean learned threshold per stage vs training SNR, one panel per noise type.

    Only matched runs (a clean-train model has one condition). Returns ``{noise: [line labels]}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = thresholds[(thresholds["protocol"] != "clean_train") & thresholds["snr_db"].notna()]
    panels: dict[str, list[str]] = {}
    if data.empty:
        return panels
    noises = _ordered_noises(data["noise"])
    fig, axes = plt.subplots(
        1, len(noises), figsize=(max(5.5, 4.2 * len(noises)), 3.8), dpi=90, squeeze=False
    )
    styles = ["-", "--", ":", "-."]
    models = sorted(data["model"].unique())
    stages = sorted(data["stage"].unique())
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, noise in zip(axes[0], noises, strict=True):
        sub = data[data["noise"] == noise]
        for mi, model in enumerate(models):
            for si, stage in enumerate(stages):
                group = sub[(sub["model"] == model) & (sub["stage"] == stage)]
                if group.empty:
                    continue
                stats = group.groupby("snr_db")["threshold"].agg(["mean", "std"]).sort_index()
                x = stats.index.to_numpy(float)
                mean, std = stats["mean"].to_numpy(), stats["std"].fillna(0.0).to_numpy()
                color = colors[si % len(colors)]
                ax.plot(
                    x,
                    mean,
                    styles[mi % len(styles)],
                    marker="o",
                    ms=3,
                    color=color,
                    label=f"{model} {stage}",
                )
                panels.setdefault(noise, []).append(f"{model} {stage}")
                ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15, lw=0)
        ax.set_title(f"{noise} noise", fontsize=10)
        ax.set_xlabel("training SNR (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean learned soft threshold τ")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{title}: learned DRSN thresholds on the test windows", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return panels


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    out_dir: Path
    files: list[Path]
    table: pd.DataFrame
    summary: pd.DataFrame
    thresholds: pd.DataFrame
    selection: RunSelection
    figures: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # file -> panel -> lines
    logged_to: str | None = None


def write_report(selection: RunSelection, out_dir: str | Path) -> ReportResult:
    """Write the tables, Markdown and figures for ``selection`` into ``out_dir`` (atomically)."""
    table = tidy_table(selection.runs)
    summary = summary_table(table)
    thresholds = threshold_table(selection.runs)
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        table.to_csv(tmp / "runs.csv", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
        figures: dict[str, dict[str, list[str]]] = {}
        panels = plot_accuracy_vs_snr(table, tmp / "accuracy_vs_snr.png", selection.title)
        if panels:
            figures["accuracy_vs_snr.png"] = panels
        if not thresholds.empty:
            thresholds.to_csv(tmp / "thresholds.csv", index=False)
            panels = plot_thresholds_vs_snr(
                thresholds, tmp / "thresholds_vs_snr.png", selection.title
            )
            if panels:
                figures["thresholds_vs_snr.png"] = panels
        (tmp / "report.md").write_text(_markdown(selection, table, summary, list(figures)))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = sorted(out_dir.iterdir())
    return ReportResult(out_dir, files, table, summary, thresholds, selection, figures)


def _markdown(
    selection: RunSelection, table: pd.DataFrame, summary: pd.DataFrame, figures: list[str]
) -> str:
    n_runs = table["run_id"].nunique()
    parts = [
        f"# Results: {selection.title}",
        "",
        f"{n_runs} finished training runs"
        + (
            f" ({len(selection.skipped)} unfinished runs left out: {', '.join(selection.skipped)})"
            if selection.skipped
            else ""
        )
        + f"; store `{selection.tracking_uri}`.",
        "Matched runs are tested at their training noise and SNR; clean-train runs on the clean test set "
        "and on their test grid. Accuracy in %, mean ± std over seeds (std shown when there are 2+ seeds).",
        "",
        "## Accuracy vs SNR",
        "",
        pivot_markdown(summary),
        "",
    ]
    for fig in figures:
        parts += [f"![{fig}]({fig})", ""]
    show = table.drop(columns=["sweep_id", "data_setup", "split"]).copy()
    show["run_id"] = show["run_id"].str[:8]
    for col in ("test_acc", "macro_f1"):
        show[col] = show[col].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    parts += ["## All runs (tidy)", "", _md_table(show), ""]
    return "\n".join(parts)


def log_report(result: ReportResult, run_id: str) -> None:
    """Upload the report files under ``report/`` of the run ``run_id`` (the sweep's parent)."""
    from fault_diag.tracking import get_client

    client = get_client(result.selection.tracking_uri)
    for path in result.files:
        client.log_artifact(run_id, str(path), "report")
    result.logged_to = run_id


def default_out_dir(selection: RunSelection) -> Path:
    """``<project root>/outputs/reports/<sweep id or experiment>``."""
    from fault_diag.paths import project_root

    name = selection.sweep_id or re.sub(r"[^A-Za-z0-9_.-]+", "_", selection.title)
    return project_root() / "outputs" / "reports" / name


def build_report(
    *,
    sweep: str | None = None,
    experiment: str | None = None,
    filter_string: str | None = None,
    tracking_uri: str | None = None,
    out_dir: str | Path | None = None,
    log_to_parent: bool = True,
    include_unfinished: bool = False,
) -> ReportResult:
    """``fd-report``: select runs, write the report folder, log it to the sweep's parent run."""
    selection = select_runs(
        sweep=sweep,
        experiment=experiment,
        filter_string=filter_string,
        tracking_uri=tracking_uri,
        include_unfinished=include_unfinished,
    )
    result = write_report(selection, out_dir or default_out_dir(selection))
    if log_to_parent and selection.parent_run_id:
        log_report(result, selection.parent_run_id)
    return result


def result_json(result: ReportResult) -> dict[str, Any]:
    """A JSON summary for ``fd-report --json``."""
    return {
        "out_dir": str(result.out_dir),
        "files": [p.name for p in result.files],
        "n_runs": int(result.table["run_id"].nunique()),
        "skipped": result.selection.skipped,
        "parent_run_id": result.selection.parent_run_id,
        "logged_to": result.logged_to,
        "figures": result.figures,
        "summary": json.loads(result.summary.to_json(orient="records")),
    }


__all__ = [
    "ReportError",
    "ReportResult",
    "RunSelection",
    "build_report",
    "curve_rows",
    "default_out_dir",
    "log_report",
    "pivot_markdown",
    "plot_accuracy_vs_snr",
    "plot_thresholds_vs_snr",
    "result_json",
    "select_runs",
    "summary_table",
    "threshold_table",
    "tidy_table",
    "write_report",
]
