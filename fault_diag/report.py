"""Results reports from the MLflow store: tidy tables, intervals, paired comparisons, figures.

Runs are selected by sweep (the ``sweep_id`` tag every job of a multirun carries, or the sweep folder
holding ``mlflow_parent_run.json``) or by experiment plus an MLflow filter string. Every finished
training run gives one row per evaluated condition and variant (metric names:
:mod:`fault_diag.metric_names`):

- ``matched`` protocol (DRSN paper): its curve point is the training condition (``row = test``,
  tested at the training noise and SNR); a clean row (``row = clean``) and grid rows
  (``row = grid``) when it logged them;
- ``clean_train`` protocol (WDCNN) and ``mixed`` (trained on a mixture of SNRs/kinds): the clean test
  set (``row = test``, ``test_noise = none``) plus one row per point of the test grid; a mixed run's
  own training mixture is ``row = train``;
- ``variant``: ``plain``, or ``adabn`` (BatchNorm statistics re-estimated on the test windows of the
  condition, a different method: never pooled with plain rows).

The headline metric is balanced accuracy (``bal_acc``); runs logged before it existed report plain
accuracy instead, and the report says so. Each cell (protocol, model, variant, test condition) gets
the mean over seeds and a 95 % bootstrap interval (:mod:`fault_diag.stats`): two-level (seeds, then
windows within class) when every run of the cell logged ``window_scores.npz``, seeds only otherwise.
Every model is compared with a baseline (default ``resnet1d`` when present) on paired cells:
Wilcoxon signed-rank over independent units, Holm's correction per protocol/variant family.

Files: ``runs.csv`` (tidy), ``summary.csv`` (per cell), ``comparisons.csv``, ``report.md``,
``accuracy_vs_snr.png``/``.svg``, ``thresholds_vs_snr.png``; logged under ``report/`` of the
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
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fault_diag.metric_names import (
    ADABN,
    CONDITION_METRICS,
    HEADLINE_METRIC,
    PLAIN,
    WINDOW_SCORES_ARTIFACT,
    condition_suffix,
    parse_metric_name,
    parse_threshold_metric_name,
    stage_of,
)
from fault_diag.stats import (
    DEFAULT_N_BOOT,
    WindowSample,
    cell_interval,
    holm,
    paired_comparison,
    window_sample,
)

log = logging.getLogger(__name__)

TIDY_COLUMNS = [
    "run_id",
    "model",
    "protocol",
    "noise",
    "snr_db",
    "seed",
    "variant",
    "row",
    "condition",
    "test_noise",
    "test_snr_db",
    *CONDITION_METRICS,  # acc, bal_acc, macro_f1, healthy_share
    "test_draws",
    "healthy_class",
    "window_scores",
    "data_setup",
    "split",
    "sweep_id",
]
#: One cell of the summary: the runs (seeds) that share all of these.
GROUP_KEYS = [
    "protocol",
    "model",
    "variant",
    "data_setup",
    "noise",
    "snr_db",
    "row",
    "test_noise",
    "test_snr_db",
]
#: What pairs a model's row with the baseline's (the training condition too: two matched runs of
#: one seed at different training SNRs share their grid rows' test condition).
PAIR_KEYS = ["data_setup", "noise", "snr_db", "test_noise", "test_snr_db", "seed"]
#: Rows of one unit come from one pair of training runs (same seed and training condition).
UNIT_KEYS = ["data_setup", "noise", "snr_db", "seed"]
NOISE_ORDER = ["gaussian", "laplacian", "pink"]
PROTOCOL_ORDER = ["matched", "clean_train", "mixed"]
#: Protocols whose curve is the test grid (+ the clean test set), not the training condition.
GRID_PROTOCOLS = ("clean_train", "mixed")
DEFAULT_BASELINE = "resnet1d"
ALPHA = 0.05
#: Above this many rows report.md points to runs.csv instead of repeating it.
MAX_MD_ROWS = 400
METRIC_LABELS = {"bal_acc": "balanced accuracy", "acc": "accuracy"}
#: Width (inches) of the legend margin right of a figure's panels.
LEGEND_WIDTH_IN = 2.4


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


def require_store(uri: str) -> None:
    """Refuse a local sqlite store that does not exist: opening it would create an empty
    ``mlflow.db`` (and its folder) and then report "experiment not found", as if runs had been lost.
    A report reads a store; only training creates one."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return  # a server or another backend: it says itself what it has
    path = Path(uri[len(prefix) :])
    if not path.is_file():
        raise ReportError(
            f"there is no MLflow store at {uri} (no file {path}): train first (fd-train logs "
            "there), or point --tracking-uri / MLFLOW_TRACKING_URI at the store of your runs"
        )


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
    require_store(uri)
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


# ---------------------------------------------------------------------------- window scores


@dataclass(frozen=True)
class WindowScores:
    """A run's ``window_scores.npz`` (see :data:`fault_diag.metric_names.WINDOW_SCORES_ARTIFACT`).

    ``correct[i, w]`` / ``healthy[i, w]``: fraction of the ``draws`` test-noise draws in which window
    ``w`` was classified correctly / predicted healthy under condition ``conditions[i]``.
    """

    labels: np.ndarray
    class_names: list[str]
    healthy_label: int | None
    conditions: list[str]
    correct: np.ndarray
    healthy: np.ndarray
    draws: int | None

    def sample(self, condition: str, metric: str) -> WindowSample | None:
        """The :class:`~fault_diag.stats.WindowSample` of ``metric`` under ``condition``, or None
        when the condition is not in the file or the metric is undefined (no healthy class)."""
        if condition not in self.conditions:
            return None
        i = self.conditions.index(condition)
        scores = self.healthy[i] if metric == "healthy_share" else self.correct[i]
        return window_sample(scores, self.labels, metric, self.healthy_label, self.draws)


def read_window_scores(path: str | Path) -> WindowScores:
    """Read and check a ``window_scores.npz``; ``ValueError`` says what is wrong with it."""
    with np.load(path, allow_pickle=False) as npz:
        missing = {"labels", "class_names", "conditions", "correct", "healthy"} - set(npz.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        labels = np.asarray(npz["labels"]).astype(np.int64)
        class_names = [str(c) for c in npz["class_names"]]
        conditions = [str(c) for c in npz["conditions"]]
        correct = np.asarray(npz["correct"], dtype=np.float64)
        healthy = np.asarray(npz["healthy"], dtype=np.float64)
        healthy_class = str(npz["healthy_class"]) if "healthy_class" in npz.files else ""
        draws = int(npz["test_draws"]) if "test_draws" in npz.files else None
    shape = (len(conditions), labels.size)
    if labels.ndim != 1 or correct.shape != shape or healthy.shape != shape:
        raise ValueError(
            f"{path}: correct {correct.shape} / healthy {healthy.shape} should be "
            f"(conditions, windows) = {shape}"
        )
    if len(set(conditions)) != len(conditions):
        raise ValueError(f"{path}: repeated conditions {conditions}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"{path}: labels outside 0..{len(class_names) - 1}")
    if healthy_class and healthy_class not in class_names:
        raise ValueError(f"{path}: healthy class {healthy_class!r} not in {class_names}")
    healthy_label = class_names.index(healthy_class) if healthy_class else None
    return WindowScores(labels, class_names, healthy_label, conditions, correct, healthy, draws)


def _local_artifact_path(artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts when the store keeps them on this machine (a plain path or
    a ``file:`` URI), else None (a server's ``mlflow-artifacts:``, ``s3:``, ...)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and artifact_uri.startswith("/"):
        return Path(artifact_uri)
    return None


def load_window_scores(selection: RunSelection) -> dict[str, WindowScores]:
    """``window_scores.npz`` of every selected run that logged one, by run id.

    A run without it (logged before it existed, or by a tracker that did not log it) is simply
    absent: its cells fall back to seed-only intervals, and the report says how many runs had one.
    A file that is there but cannot be used is logged as a warning. Artifacts on this machine are
    read in place; others are downloaded (importing ``mlflow.artifacts`` only then: it alone costs
    most of a second).
    """
    from mlflow.exceptions import MlflowException

    found: dict[str, WindowScores] = {}
    remote = []
    for run in selection.runs:
        folder = _local_artifact_path(run.info.artifact_uri)
        if folder is None:
            remote.append(run)
            continue
        path = folder / WINDOW_SCORES_ARTIFACT
        if not path.is_file():
            log.debug("run %s: no %s", run.info.run_id, path)
            continue
        try:
            found[run.info.run_id] = read_window_scores(path)
        except (ValueError, OSError, KeyError) as exc:
            log.warning("run %s: %s not used: %s", run.info.run_id, WINDOW_SCORES_ARTIFACT, exc)
    if not remote:
        return found
    import mlflow.artifacts

    # MLflow draws a progress bar per download: 200 of them would bury the report's own output
    quiet = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(quiet)
    os.environ[quiet] = "false"
    try:
        with tempfile.TemporaryDirectory(prefix="fd-report-") as tmp:
            for run in remote:
                rid = run.info.run_id
                # from the run's artifact URI: no tracking-server round trip per run
                uri = f"{run.info.artifact_uri.rstrip('/')}/{WINDOW_SCORES_ARTIFACT}"
                try:
                    local = mlflow.artifacts.download_artifacts(
                        artifact_uri=uri, dst_path=str(Path(tmp) / rid)
                    )
                except (MlflowException, OSError) as exc:
                    log.debug("run %s: no %s (%s)", rid, WINDOW_SCORES_ARTIFACT, exc)
                    continue
                try:
                    found[rid] = read_window_scores(local)
                except (ValueError, OSError, KeyError) as exc:
                    log.warning("run %s: %s not used: %s", rid, WINDOW_SCORES_ARTIFACT, exc)
    finally:
        if before is None:
            os.environ.pop(quiet, None)
        else:
            os.environ[quiet] = before
    return found


# ---------------------------------------------------------------------------------- tables


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _int_or_nan(text: Any) -> float:
    value = _float(text)
    return value if math.isnan(value) else int(value)


def _conditions(metrics: Mapping[str, float]) -> dict[tuple[Any, ...], dict[str, float]]:
    """Per-condition metrics of a run: ``{(scope, kind, snr_db, variant): {metric: value}}``."""
    out: dict[tuple[Any, ...], dict[str, float]] = {}
    for name, value in metrics.items():
        key = parse_metric_name(name)
        if key is not None:
            slot = out.setdefault((key.scope, key.kind, key.snr_db, key.variant), {})
            slot[key.metric] = value
    return out


def _condition_text(scope: str, kind: str | None, snr_db: float | None, variant: str) -> str:
    """The condition as ``window_scores.npz`` names it: ``train``, ``clean``, ``<kind>/<snr>dB``,
    with ``/adabn`` for the AdaBN variant."""
    text = "train" if scope == "train" else condition_suffix(kind, snr_db, clean=scope == "clean")
    return text + (f"/{ADABN}" if variant == ADABN else "")


def setup_label(tags: dict[str, str]) -> str:
    """The data setup of a run, with its band when band-limited (``cwru10 0-4000 Hz``): runs of the
    same setup name at different bands are different experiments and are never pooled."""
    setup = tags.get("data_setup", "")
    band = tags.get("band_hz", "None")
    if band in ("None", "", "null"):
        return setup
    try:
        low, high = (float(v) for v in band.strip("[]").split(","))
    except ValueError:
        return f"{setup} {band}"
    return f"{setup} {low:g}-{high:g} Hz"


def tidy_table(runs: list[Any], windows: Mapping[str, WindowScores] | None = None) -> pd.DataFrame:
    """One row per (run, test condition, variant); columns :data:`TIDY_COLUMNS`.

    ``windows`` (run id -> its window scores) only fills the ``window_scores`` column: whether the
    run's file has this row's condition. Metrics a run did not log are NaN.
    """
    windows = windows or {}
    rows: list[dict[str, Any]] = []
    for run in runs:
        tags = run.data.tags
        protocol = tags.get("protocol", "matched")
        base: dict[str, Any] = {
            "run_id": run.info.run_id,
            "model": tags.get("model", "?"),
            "protocol": protocol,
            "noise": tags.get("noise", "?"),
            "snr_db": _float(tags.get("snr_db")),
            "seed": _int_or_nan(tags.get("seed")),
            "test_draws": _int_or_nan(tags.get("test_draws")),
            "healthy_class": tags.get("healthy_class", ""),
            "data_setup": setup_label(tags),
            "split": tags.get("split", ""),
            "sweep_id": tags.get("sweep_id", ""),
        }
        if protocol == "clean_train":
            base["noise"] = "none"  # the training noise; the tag holds the (unused) noise kind
            base["snr_db"] = math.nan
        scores = windows.get(run.info.run_id)
        conditions = _conditions(run.data.metrics)

        def add(
            values: dict[str, float],
            row: str,
            test_noise: str,
            test_snr_db: float,
            condition: str,
            base: dict[str, Any] = base,
            scores: WindowScores | None = scores,
        ) -> None:
            rows.append(
                {
                    **base,
                    **{m: values.get(m, math.nan) for m in CONDITION_METRICS},
                    "variant": ADABN if condition.endswith(f"/{ADABN}") else PLAIN,
                    "row": row,
                    "condition": condition,
                    "test_noise": test_noise,
                    "test_snr_db": test_snr_db,
                    "window_scores": scores is not None and condition in scores.conditions,
                }
            )

        for variant in (PLAIN, ADABN):
            train = conditions.get(("train", None, None, variant))
            clean = conditions.get(("clean", None, None, variant))
            if protocol == "clean_train":
                # trained clean: the training condition is the clean test set (old runs logged
                # macro-F1 only there, new ones everything under /clean too)
                if train is not None or clean is not None:
                    scope = "clean" if clean is not None else "train"
                    merged = {**(train or {}), **(clean or {})}
                    add(
                        merged,
                        "test",
                        "none",
                        math.nan,
                        _condition_text(scope, None, None, variant),
                    )
            elif protocol == "mixed":
                if clean is not None:
                    add(
                        clean,
                        "test",
                        "none",
                        math.nan,
                        _condition_text("clean", None, None, variant),
                    )
                if train is not None:
                    add(
                        train,
                        "train",
                        "mixture",
                        math.nan,
                        _condition_text("train", None, None, variant),
                    )
            else:
                if train is not None:
                    condition = _condition_text("train", None, None, variant)
                    add(train, "test", base["noise"], base["snr_db"], condition)
                if clean is not None:
                    add(
                        clean,
                        "clean",
                        "none",
                        math.nan,
                        _condition_text("clean", None, None, variant),
                    )
            grid = sorted(
                (k for k in conditions if k[0] == "grid" and k[3] == variant),
                key=lambda k: (str(k[1]), float(k[2])),
            )
            for key in grid:
                _, kind, snr, _ = key
                add(conditions[key], "grid", kind, snr, _condition_text("grid", kind, snr, variant))
    table = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    table["window_scores"] = table["window_scores"].astype(bool)
    return table.sort_values(
        ["protocol", "model", "variant", "row", "test_noise", "test_snr_db", "seed", "run_id"],
        na_position="first",
    ).reset_index(drop=True)


def _cell_rng(seed: int, key: tuple[Any, ...], metric: str) -> np.random.Generator:
    """A generator per (cell, metric): a cell's interval does not depend on which other cells the
    report holds or on their order, so reports of overlapping selections agree. The key is hashed
    as text (``str`` of each part: the same for numpy and Python numbers)."""
    text = "|".join(str(k) for k in (*key, metric))
    return np.random.default_rng([seed, zlib.crc32(text.encode())])


def _window_samples(
    run_ids: np.ndarray,
    conditions: np.ndarray,
    logged: np.ndarray,
    metric: str,
    windows: Mapping[str, WindowScores],
    notes: list[str],
) -> list[WindowSample] | None:
    """The window samples of the runs of a cell (``run_ids[i]`` under ``conditions[i]``), or None
    unless every run has one that agrees with its ``logged`` metric (a disagreement would make the
    interval describe other numbers than the table)."""
    samples = []
    for rid, condition, value in zip(run_ids, conditions, logged, strict=True):
        scores = windows.get(rid)
        if scores is None:
            return None
        try:
            sample = scores.sample(condition, metric)
        except ValueError as exc:
            notes.append(f"run {rid}, {condition}: window scores not used ({exc}).")
            return None
        if sample is None:
            return None
        if not math.isclose(sample.metric, value, rel_tol=0, abs_tol=1e-6):
            notes.append(
                f"run {rid}, {condition}: {metric} from the window scores "
                f"{sample.metric:.6f} != logged {value:.6f}; seed-only interval."
            )
            return None
        samples.append(sample)
    return samples


SUMMARY_COLUMNS = [
    *GROUP_KEYS,
    "n_seeds",
    "n_runs",
    *(f"{m}_{s}" for m in CONDITION_METRICS for s in ("mean", "std")),
    "score_metric",
    "score_mean",
    "score_low",
    "score_high",
    "healthy_share_low",
    "healthy_share_high",
    "interval",
    "test_draws",
]


def summary_table(
    table: pd.DataFrame,
    windows: Mapping[str, WindowScores] | None = None,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """One row per cell (:data:`GROUP_KEYS`): mean, std (ddof 1; NaN for one seed) and count over
    seeds of each metric; the headline ``score`` (``bal_acc``, or ``acc`` where a run of the cell
    lacks it) and ``healthy_share`` (over the runs that logged it) with a 95 % bootstrap interval
    (``interval``: how it was drawn). Columns :data:`SUMMARY_COLUMNS`.

    ``windows``: run id -> window scores, for the two-level bootstrap; ``seed``: the bootstrap seed
    (fixed, so a report regenerates exactly); ``notes`` collects what the report should mention.
    """
    windows = windows or {}
    notes = notes if notes is not None else []
    if table.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    table = table.sort_values(["seed", "run_id"], kind="stable").reset_index(drop=True)
    groups = table.groupby(GROUP_KEYS, dropna=False, sort=True)
    agg = {"n_seeds": ("seed", "nunique"), "n_runs": ("run_id", "nunique")}
    for m in CONDITION_METRICS:
        agg[f"{m}_mean"] = (m, "mean")
        agg[f"{m}_std"] = (m, "std")
    summary = groups.agg(**agg)
    # The intervals, one cell at a time on plain arrays (pandas per cell costs more than the
    # bootstrap itself on a few hundred runs).
    # rows of each cell, in the order of summary's index (ngroup numbers the sorted groups;
    # groups.indices cannot be looked up by keys holding NaN)
    codes = groups.ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(summary) + 1))
    run_ids = table["run_id"].to_numpy(object)
    conditions = table["condition"].to_numpy(object)
    has_windows = table["window_scores"].to_numpy(bool)
    values = {m: table[m].to_numpy(float) for m in ("acc", HEADLINE_METRIC, "healthy_share")}
    draws = table["test_draws"].to_numpy(float)
    extra: dict[str, list[Any]] = {c: [] for c in SUMMARY_COLUMNS[len(GROUP_KEYS) + 2 + 8 :]}
    for cell, key in enumerate(summary.index):
        idx = order[bounds[cell] : bounds[cell + 1]]
        score = HEADLINE_METRIC if not np.isnan(values[HEADLINE_METRIC][idx]).any() else "acc"
        iv = cell_interval(
            values[score][idx],
            _window_samples(
                run_ids[idx], conditions[idx], values[score][idx], score, windows, notes
            )
            if windows and has_windows[idx].all()
            else None,
            n_boot=n_boot,
            rng=_cell_rng(seed, key, score),
        )
        healthy = idx[~np.isnan(values["healthy_share"][idx])]  # old runs did not log it
        hv = cell_interval(
            values["healthy_share"][healthy],
            _window_samples(
                run_ids[healthy],
                conditions[healthy],
                values["healthy_share"][healthy],
                "healthy_share",
                windows,
                notes,
            )
            if windows and healthy.size and has_windows[healthy].all()
            else None,
            n_boot=n_boot,
            rng=_cell_rng(seed, key, "healthy_share"),
        )
        cell_draws = np.unique(draws[idx][~np.isnan(draws[idx])])
        extra["score_metric"].append(score)
        extra["score_mean"].append(iv.mean)
        extra["score_low"].append(iv.low)
        extra["score_high"].append(iv.high)
        extra["healthy_share_low"].append(hv.low)
        extra["healthy_share_high"].append(hv.high)
        extra["interval"].append(iv.method)
        extra["test_draws"].append(int(cell_draws[0]) if cell_draws.size == 1 else math.nan)
    for column, column_values in extra.items():
        summary[column] = column_values
    return summary.reset_index()[SUMMARY_COLUMNS]


def threshold_table(runs: list[Any]) -> pd.DataFrame:
    """Learned thresholds of DRSN runs, per stage (mean over its units): one row per (run, stage)."""
    rows = []
    for run in runs:
        per_stage: dict[str, list[float]] = {}
        for name, value in run.data.metrics.items():
            unit = parse_threshold_metric_name(name)
            if unit is not None:
                per_stage.setdefault(stage_of(unit) or unit, []).append(value)
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
    return (
        pd.DataFrame(
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
        .sort_values(  # a fixed order: the store returns runs in no fixed order
            ["model", "protocol", "noise", "snr_db", "seed", "stage", "run_id"], kind="stable"
        )
        .reset_index(drop=True)
    )


def curve_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows on an accuracy-vs-SNR curve: matched runs at their own (noisy) condition,
    clean-train and mixed runs on their test grid. Works on the tidy and the summary tables (both
    have ``protocol``, ``row``, ``test_snr_db``)."""
    grid_protocol = table["protocol"].isin(GRID_PROTOCOLS)
    matched = ~grid_protocol & (table["row"] == "test") & table["test_snr_db"].notna()
    return table[matched | (grid_protocol & (table["row"] == "grid"))]


def headline_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows a protocol is judged on: the curve plus the clean test set of clean-train and mixed
    runs (a matched run's clean and grid rows test it off its training condition)."""
    grid_protocol = table["protocol"].isin(GRID_PROTOCOLS)
    matched = ~grid_protocol & (table["row"] == "test")
    return table[matched | (grid_protocol & table["row"].isin(["test", "grid"]))]


def matched_grid_rows(table: pd.DataFrame) -> pd.DataFrame:
    """A matched run's test grid: the model trained at one condition, tested at every grid point
    (its own condition among them). Data the accuracy-vs-SNR curve does not show (it takes each
    matched run at its training condition only)."""
    return table[(table["protocol"] == "matched") & (table["row"] == "grid")]


def grid_pivot_markdown(summary: pd.DataFrame, variant: str = PLAIN) -> str:
    """Matched runs on their test grid: a ``mean [low, high]`` (%) row per model, training
    condition and test noise, a column per test SNR; the training condition itself in bold.
    Empty when no matched run logged a grid."""
    rows = matched_grid_rows(summary[summary["variant"] == variant])
    if rows.empty:
        return ""
    mixed_metrics = rows["score_metric"].nunique() > 1
    several_setups = rows["data_setup"].nunique() > 1
    snrs = sorted(rows["test_snr_db"].unique())
    header = (["data"] if several_setups else []) + ["model", "trained on", "test noise"]
    header += [f"{s:g} dB" for s in snrs]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    keys = ["data_setup", "model", "noise", "snr_db", "test_noise"]
    for (setup, model, noise, snr, test_noise), group in rows.groupby(keys, sort=True):
        cells = {}
        for r in group.itertuples():
            mark = " †" if mixed_metrics and r.score_metric == "acc" else ""
            text = _fmt_interval(r.score_mean, r.score_low, r.score_high, mark)
            own = r.test_noise == noise and r.test_snr_db == snr
            cells[r.test_snr_db] = f"**{text}**" if own and text else text
        line = ([str(setup)] if several_setups else []) + [
            str(model),
            f"{noise} {snr:g} dB",
            str(test_noise),
        ]
        lines.append("| " + " | ".join(line + [cells.get(s, "") for s in snrs]) + " |")
    return "\n".join(lines)


def resolve_baseline(table: pd.DataFrame, baseline: str | None) -> str | None:
    """``"auto"``: :data:`DEFAULT_BASELINE` when the selection has it, else no comparison;
    ``None``/``"none"``: no comparison; any other name must be a model of the selection."""
    models = sorted(str(m) for m in table["model"].unique())
    if baseline is None or baseline == "none":
        return None
    if baseline == "auto":
        return DEFAULT_BASELINE if DEFAULT_BASELINE in models else None
    if baseline not in models:
        raise ReportError(
            f"baseline {baseline!r} is not a model of this selection; models present: {models}"
        )
    return baseline


COMPARISON_COLUMNS = [
    "protocol",
    "variant",
    "model",
    "baseline",
    "metric",
    "n_pairs",
    "n_units",
    "mean_diff",
    "diff_low",
    "diff_high",
    "wilcoxon_p",
    "p_holm",
    "claim",
]


def _claim(metric: str, baseline: str, mean: float, p_holm: float, n_pairs: int) -> str:
    """The sentence a comparison allows: a direction only when Holm's p is below :data:`ALPHA`."""
    if n_pairs == 0:
        return f"no cell in common with {baseline}"
    if not math.isnan(p_holm) and p_holm < ALPHA and mean != 0:
        return f"{'higher' if mean > 0 else 'lower'} {METRIC_LABELS[metric]} than {baseline}"
    return f"no difference detected (p_holm = {p_holm:.2g})"


def comparison_table(
    table: pd.DataFrame, baseline: str, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0
) -> pd.DataFrame:
    """Every other model against ``baseline``, per (protocol, variant) family, on paired rows.

    Pairs: the headline rows (:func:`headline_rows`) of the model and the baseline with equal
    :data:`PAIR_KEYS` (same data, training condition, test condition and seed). Differences are in
    points (100 x metric; balanced accuracy, or accuracy when a pair lacks it). Rows of one pair of
    training runs (:data:`UNIT_KEYS`, e.g. the whole test grid of a clean-trained seed) are averaged
    into one unit first, since they measure the same two networks again; the interval (bootstrap
    over units) and the Wilcoxon signed-rank test see the units. Holm's correction runs over the
    models of a family. Columns :data:`COMPARISON_COLUMNS`.
    """
    rows = headline_rows(table)
    out = []
    for (protocol, variant), family in rows.groupby(["protocol", "variant"], sort=True):
        base = family[family["model"] == baseline]
        if base.empty:
            continue
        found = []
        for model in sorted(str(m) for m in family["model"].unique() if m != baseline):
            other = family[family["model"] == model]
            # mean over duplicate runs of one key (a rerun), so every key is one pair
            cols = [*PAIR_KEYS, "acc", HEADLINE_METRIC]
            pairs = pd.merge(
                other[cols].groupby(PAIR_KEYS, dropna=False).mean().reset_index(),
                base[cols].groupby(PAIR_KEYS, dropna=False).mean().reset_index(),
                on=PAIR_KEYS,
                suffixes=("", "_base"),
            )
            both = pairs[HEADLINE_METRIC].notna() & pairs[f"{HEADLINE_METRIC}_base"].notna()
            metric = HEADLINE_METRIC if both.all() else "acc"
            pairs = pairs[pairs[metric].notna() & pairs[f"{metric}_base"].notna()]
            diff = 100.0 * (pairs[metric] - pairs[f"{metric}_base"]).to_numpy(float)
            units = [tuple(u) for u in pairs[UNIT_KEYS].astype(str).itertuples(index=False)]
            rng = _cell_rng(seed, (protocol, variant), model)
            res = paired_comparison(diff, units, n_boot=n_boot, rng=rng)
            found.append(
                {
                    "protocol": protocol,
                    "variant": variant,
                    "model": model,
                    "baseline": baseline,
                    "metric": metric,
                    "n_pairs": res.n_pairs,
                    "n_units": res.n_units,
                    "mean_diff": res.mean,
                    "diff_low": res.low,
                    "diff_high": res.high,
                    "wilcoxon_p": res.p,
                }
            )
        adjusted = holm([r["wilcoxon_p"] for r in found])
        for r, p_holm in zip(found, adjusted, strict=True):
            r["p_holm"] = p_holm
            r["claim"] = _claim(r["metric"], baseline, r["mean_diff"], p_holm, r["n_pairs"])
        out.extend(found)
    return pd.DataFrame(out, columns=COMPARISON_COLUMNS)


# ---------------------------------------------------------------------------------- output


def _fmt_interval(mean: float, low: float, high: float, mark: str = "") -> str:
    """``mean [low, high]`` in %, or the mean alone without an interval."""
    if math.isnan(mean):
        return ""
    text = f"{100 * mean:.1f}"
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{100 * low:.1f}, {100 * high:.1f}]"
    return text + mark


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


def score_label(summary: pd.DataFrame) -> str:
    """What the headline numbers are: balanced accuracy, accuracy (old runs only), or both."""
    metrics = set(summary["score_metric"])
    if metrics == {"acc"}:
        return "accuracy"
    if "acc" in metrics:
        return "balanced accuracy (accuracy where marked †)"
    return "balanced accuracy"


def pivot_markdown(summary: pd.DataFrame, metric: str = "score", variant: str = PLAIN) -> str:
    """A ``mean [low, high]`` (%) pivot of one variant: rows protocol / model / test noise, columns
    test SNR, plus a clean column for clean-train and mixed runs.

    ``metric``: ``score`` (the headline: balanced accuracy; cells that fell back to accuracy are
    marked † when the table mixes both) or ``healthy_share`` (share of the fault windows predicted
    as the healthy class).
    """
    rows = summary[summary["variant"] == variant]
    if metric == "healthy_share":
        rows = rows[rows["healthy_share_mean"].notna()]
    curves = curve_rows(rows)
    if curves.empty:
        return "_no points_"
    mixed_metrics = metric == "score" and rows["score_metric"].nunique() > 1
    several_setups = rows["data_setup"].nunique() > 1

    def cell(r: Any) -> str:
        if metric == "healthy_share":
            return _fmt_interval(r.healthy_share_mean, r.healthy_share_low, r.healthy_share_high)
        mark = " †" if mixed_metrics and r.score_metric == "acc" else ""
        return _fmt_interval(r.score_mean, r.score_low, r.score_high, mark)

    snrs = sorted(curves["test_snr_db"].unique())
    clean = rows[rows["protocol"].isin(GRID_PROTOCOLS) & (rows["row"] == "test")]
    clean_cells = {(r.data_setup, r.protocol, r.model): cell(r) for r in clean.itertuples()}
    header = (["data"] if several_setups else []) + ["protocol", "model", "test noise"]
    header += [f"{s:g} dB" for s in snrs] + (["clean"] if clean_cells else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for (setup, protocol, model, noise), group in curves.groupby(
        ["data_setup", "protocol", "model", "test_noise"], sort=True
    ):
        cells = {r.test_snr_db: cell(r) for r in group.itertuples()}
        line = ([str(setup)] if several_setups else []) + [protocol, model, noise]
        line += [cells.get(s, "") for s in snrs]
        if clean_cells:
            line.append(clean_cells.get((setup, protocol, model), ""))
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def comparisons_markdown(comparisons: pd.DataFrame, baseline: str | None) -> str:
    """The paired-comparison section's table and the sentences it allows."""
    if baseline is None:
        return "_no baseline (`--baseline`): no comparison_"
    if comparisons.empty:
        return f"_no family has both {baseline} and another model_"
    show = comparisons.copy()
    show["mean_diff"] = [
        f"{m:+.2f}" + ("" if math.isnan(lo) else f" [{lo:+.2f}, {hi:+.2f}]")
        for m, lo, hi in zip(show["mean_diff"], show["diff_low"], show["diff_high"], strict=True)
    ]
    show = show.rename(columns={"mean_diff": "difference (points) [95 % interval]"})
    show = show.drop(columns=["baseline", "diff_low", "diff_high"])
    for col in ("wilcoxon_p", "p_holm"):
        show[col] = show[col].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
    return _md_table(show)


def _ordered(values: Any, order: list[str]) -> list[str]:
    present = [str(v) for v in pd.unique(values)]
    return [n for n in order if n in present] + sorted(n for n in present if n not in order)


def _ordered_noises(values: Any) -> list[str]:
    return _ordered(values, NOISE_ORDER)


def _panel_name(protocol: str, variant: str) -> str:
    return protocol.replace("_", "-") + (" + AdaBN" if variant == ADABN else "")


def plot_accuracy_vs_snr(summary: pd.DataFrame, path: Path, title: str) -> dict[str, list[str]]:
    """Headline metric vs test SNR from :func:`summary_table`: a row of panels per protocol (and
    variant), a panel per test noise type, one colour per model throughout; line = mean over seeds,
    band = 95 % bootstrap interval (a single SNR gets an error bar).

    Writes ``path`` (PNG, 200 dpi) and the same figure as SVG next to it. Returns
    ``{panel title: [line labels, sorted]}`` (empty when there is nothing to plot).
    """
    import matplotlib

    # fixed ids in the SVG (matplotlib salts them at random): a regenerated figure is byte-identical
    matplotlib.rcParams["svg.hashsalt"] = "fault-diag"

    curves = curve_rows(summary)
    panels: dict[str, list[str]] = {}
    if curves.empty:
        return panels
    noises = _ordered_noises(curves["test_noise"])
    pairs = curves[["protocol", "variant"]].drop_duplicates()
    rows = sorted((str(p), str(v)) for p, v in pairs.itertuples(index=False))
    protocol_rank = {p: i for i, p in enumerate(_ordered(curves["protocol"], PROTOCOL_ORDER))}
    rows.sort(key=lambda pv: (protocol_rank[pv[0]], pv[1] != PLAIN))
    models = sorted(str(m) for m in pd.unique(curves["model"]))
    several_setups = curves["data_setup"].nunique() > 1
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]
    setup_styles = {
        str(name): styles[i % len(styles)]
        for i, name in enumerate(sorted(str(v) for v in pd.unique(curves["data_setup"])))
    }
    # tab10 gives 10 distinct colours; beyond that tab20 (the registry has 9 models today).
    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    colours = {m: cmap(i % cmap.N) for i, m in enumerate(models)}
    fig, axes = _subplots(
        len(rows),
        len(noises),
        figsize=(max(6.0, 4.4 * len(noises)), 3.4 * len(rows) + 1.0),
        # an x range per row: matched runs at -8..0 dB are not squeezed into the grid's -10..+10
        sharex="row",
        sharey=True,
        squeeze=False,
    )
    handles: dict[str, Any] = {}
    for ax_row, (protocol, variant) in zip(axes, rows, strict=True):
        for ax, noise in zip(ax_row, noises, strict=True):
            name = f"{_panel_name(protocol, variant)}: {noise} noise"
            sub = curves[
                (curves["protocol"] == protocol)
                & (curves["variant"] == variant)
                & (curves["test_noise"] == noise)
            ]
            for (setup, model), group in sub.groupby(["data_setup", "model"], sort=True):
                group = group.sort_values("test_snr_db")
                x = group["test_snr_db"].to_numpy(float)
                mean = 100 * group["score_mean"].to_numpy(float)
                low = 100 * group["score_low"].to_numpy(float)
                high = 100 * group["score_high"].to_numpy(float)
                colour = colours[str(model)]
                label = f"{model} [{setup}]" if several_setups else str(model)
                # One colour per model; a line style and marker per data setup, so that two setups
                # of one model stay apart.
                style = setup_styles[str(setup)]
                (line,) = ax.plot(
                    x, mean, color=colour, ls=style[0], marker=style[1], ms=3.5, lw=1.4
                )
                has_band = ~(np.isnan(low) | np.isnan(high))
                if len(x) > 1 and has_band.any():
                    ax.fill_between(
                        x[has_band], low[has_band], high[has_band], color=colour, alpha=0.18, lw=0
                    )
                elif has_band.any():
                    ax.errorbar(
                        x[has_band],
                        mean[has_band],
                        yerr=[mean[has_band] - low[has_band], high[has_band] - mean[has_band]],
                        color=colour,
                        capsize=3,
                        lw=1,
                    )
                n = int(group["n_seeds"].max())
                panels.setdefault(name, []).append(f"{label}, n={n}")
                handles.setdefault(label, line)
            if sub.empty:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(name, fontsize=10)
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
            # every panel keeps its own tick labels and SNR label, so that a panel read (or cut
            # out) on its own is still readable although the axes are shared
            ax.tick_params(labelsize=9, labelbottom=True, labelleft=True)
            ax.set_xlabel("test SNR (dB)", fontsize=9)
        ax_row[0].set_ylabel(f"{score_label(summary).split(' (')[0]} (%)", fontsize=9)
    legend_rows = math.ceil(len(handles) / 5)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="lower center",
        ncol=min(len(handles), 5),
        fontsize=9,
        frameon=False,
    )
    fig.suptitle(
        f"{title}: {score_label(summary)} vs SNR\n"
        "(line: mean over seeds; band: 95 % bootstrap interval)",
        fontsize=10,
    )
    # room for the legend, in inches whatever the number of panel rows
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, (0.15 + 0.25 * legend_rows) / height, 1, 1))
    fig.savefig(path, dpi=200)
    # no creation date in the SVG: a regenerated report is byte-identical
    fig.savefig(path.with_suffix(".svg"), metadata={"Date": None})
    return {name: sorted(labels) for name, labels in panels.items()}


def plot_thresholds_vs_snr(
    thresholds: pd.DataFrame, path: Path, title: str
) -> dict[str, list[str]]:
    """DRSN models: mean learned threshold per stage vs training SNR, one panel per noise type.

    Only matched runs (a clean-train model has one condition). Returns ``{noise: [line labels]}``.
    """
    import matplotlib

    # fixed ids in the SVG (matplotlib salts them at random): a regenerated figure is byte-identical
    matplotlib.rcParams["svg.hashsalt"] = "fault-diag"

    data = thresholds[~thresholds["protocol"].isin(GRID_PROTOCOLS) & thresholds["snr_db"].notna()]
    panels: dict[str, list[str]] = {}
    if data.empty:
        return panels
    noises = _ordered_noises(data["noise"])
    fig, axes = _subplots(
        1,
        len(noises),
        figsize=(max(5.5, 4.2 * len(noises)) + LEGEND_WIDTH_IN, 3.8),
        squeeze=False,
    )
    styles = ["-", "--", ":", "-."]
    models = sorted(data["model"].unique())
    stages = sorted(data["stage"].unique())
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
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
        ax.set_xlabel("training SNR (dB)", fontsize=9)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean learned soft threshold τ", fontsize=9)
    # outside the data: to the right of the last panel, one entry per model and stage
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    right = 1.0 - LEGEND_WIDTH_IN / fig.get_figwidth()
    fig.legend(
        handles,
        labels,
        loc="center left",
        bbox_to_anchor=(right, 0.5),
        fontsize=8,
        frameon=False,
        title="model, stage\n(band: ±1 std over seeds)",
        title_fontsize=8,
    )
    fig.suptitle(f"{title}: learned DRSN thresholds on the test windows", fontsize=10)
    fig.tight_layout(rect=(0, 0, right, 1))
    _save_figure(fig, path)
    return panels


def _subplots(nrows: int, ncols: int, *, figsize: tuple[float, float], **kwargs: Any) -> Any:
    """``(figure, axes)`` on the Agg canvas, without pyplot (no global state, no GUI backend, and
    0.4 s less to import)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save_figure(fig: Any, path: Path, **kwargs: Any) -> None:
    """``path`` as a 200 dpi PNG and the same figure as SVG next to it (no creation date in the
    SVG, fixed ids: a regenerated report is byte-identical)."""
    fig.savefig(path, dpi=200, **kwargs)
    fig.savefig(path.with_suffix(".svg"), metadata={"Date": None}, **kwargs)


def plot_matched_grid(summary: pd.DataFrame, path: Path, title: str) -> dict[str, list[str]]:
    """Matched runs on their whole test grid (plain variant): a row of panels per model, a panel
    per test noise; one line per training condition (colour: training SNR, line style: training
    noise), its own training condition marked with a black-edged point. Line = mean over seeds,
    band = 95 % bootstrap interval.

    Writes ``path`` (PNG, 200 dpi) and an SVG next to it. Returns ``{panel title: [line labels]}``
    (empty when no matched run logged a grid).
    """
    import matplotlib

    # fixed ids in the SVG (matplotlib salts them at random): a regenerated figure is byte-identical
    matplotlib.rcParams["svg.hashsalt"] = "fault-diag"

    grid = matched_grid_rows(summary[summary["variant"] == PLAIN])
    panels: dict[str, list[str]] = {}
    if grid.empty:
        return panels
    models = sorted(str(m) for m in pd.unique(grid["model"]))
    noises = _ordered_noises(grid["test_noise"])
    several_setups = grid["data_setup"].nunique() > 1
    trained = (
        grid[["noise", "snr_db"]]
        .drop_duplicates()
        .assign(rank=lambda d: d["noise"].map(lambda n: _ordered_noises(grid["noise"]).index(n)))
        .sort_values(["rank", "snr_db"])
    )
    train_snrs = sorted(float(v) for v in trained["snr_db"].unique())
    cmap = matplotlib.colormaps["viridis"]
    colour = {v: cmap(0.85 * i / max(1, len(train_snrs) - 1)) for i, v in enumerate(train_snrs)}
    styles = {
        n: ls
        for n, ls in zip(_ordered_noises(grid["noise"]), ["-", "--", ":", "-."] * 4, strict=False)
    }
    setup_markers = {
        str(name): m
        for name, m in zip(
            sorted(str(v) for v in pd.unique(grid["data_setup"])), "osD^v<>" * 4, strict=False
        )
    }
    fig, axes = _subplots(
        len(models),
        len(noises),
        figsize=(3.6 * len(noises) + LEGEND_WIDTH_IN, 2.9 * len(models) + 0.9),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    handles: dict[str, Any] = {}
    ylabel = f"{score_label(grid).split(' (')[0]} (%)"
    for ax_row, model in zip(axes, models, strict=True):
        for ax, test_noise in zip(ax_row, noises, strict=True):
            name = f"{model}: {test_noise} test noise"
            sub = grid[(grid["model"] == model) & (grid["test_noise"] == test_noise)]
            for (setup, noise, snr), group in sub.groupby(
                ["data_setup", "noise", "snr_db"], sort=True
            ):
                group = group.sort_values("test_snr_db")
                x = group["test_snr_db"].to_numpy(float)
                mean = 100 * group["score_mean"].to_numpy(float)
                low = 100 * group["score_low"].to_numpy(float)
                high = 100 * group["score_high"].to_numpy(float)
                c = colour[float(snr)]
                label = f"trained on {noise} {snr:g} dB" + (f" [{setup}]" if several_setups else "")
                (line,) = ax.plot(
                    x,
                    mean,
                    color=c,
                    ls=styles[str(noise)],
                    marker=setup_markers[str(setup)],
                    ms=3,
                    lw=1.3,
                )
                band = ~(np.isnan(low) | np.isnan(high))
                if len(x) > 1 and band.any():
                    ax.fill_between(x[band], low[band], high[band], color=c, alpha=0.15, lw=0)
                own = (x == float(snr)) & (test_noise == noise)
                if own.any():
                    ax.plot(x[own], mean[own], "o", ms=7, mfc=c, mec="black", mew=1.2)
                n = int(group["n_seeds"].max())
                panels.setdefault(name, []).append(f"{label}, n={n}")
                handles.setdefault(label, line)
            if sub.empty:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(name, fontsize=10)
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=9, labelbottom=True, labelleft=True)
            ax.set_xlabel("test SNR (dB)", fontsize=9)
        ax_row[0].set_ylabel(ylabel, fontsize=9)
    from matplotlib.lines import Line2D

    handles["its training condition"] = Line2D(
        [], [], ls="", marker="o", ms=7, mfc="white", mec="black", mew=1.2
    )
    # the legend in a margin of its own, right of the panels (never over the data); a fixed width
    # in inches rather than bbox_inches="tight", which draws every figure twice
    right = 1.0 - LEGEND_WIDTH_IN / fig.get_figwidth()
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="center left",
        bbox_to_anchor=(right, 0.5),
        fontsize=9,
        frameon=False,
    )
    fig.suptitle(
        f"{title}: matched models on the whole test grid\n"
        "(line: mean over seeds; band: 95 % bootstrap interval)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, right, 1))
    _save_figure(fig, path)
    return {name: sorted(labels) for name, labels in panels.items()}


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
    comparisons: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=COMPARISON_COLUMNS)
    )
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)


def write_report(
    selection: RunSelection,
    out_dir: str | Path,
    *,
    baseline: str | None = "auto",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    windows: Mapping[str, WindowScores] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReportResult:
    """Write the tables, Markdown and figures for ``selection`` into ``out_dir`` (atomically).

    ``baseline``: see :func:`resolve_baseline`; ``n_boot``/``seed``: bootstrap replicates and seed;
    ``windows``: the runs' window scores (default: read from the store); ``progress``: called with
    a short line at each stage (``fd-report`` prints them on stderr).
    """
    say = progress or (lambda _line: None)
    table_plain = tidy_table(selection.runs)
    base_name = resolve_baseline(table_plain, baseline)  # a bad name fails before any download
    if windows is None:
        say(f"reading the window scores of {len(selection.runs)} runs")
        windows = load_window_scores(selection)
    table = tidy_table(selection.runs, windows)
    notes: list[str] = []
    say(f"bootstrap intervals ({n_boot} replicates) and paired comparisons")
    summary = summary_table(table, windows, n_boot=n_boot, seed=seed, notes=notes)
    comparisons = (
        comparison_table(table, base_name, n_boot=n_boot, seed=seed)
        if base_name is not None
        else pd.DataFrame(columns=COMPARISON_COLUMNS)
    )
    thresholds = threshold_table(selection.runs)
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        table.to_csv(tmp / "runs.csv", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
        if base_name is not None:
            comparisons.to_csv(tmp / "comparisons.csv", index=False)
        figures: dict[str, dict[str, list[str]]] = {}
        say(f"figures and report.md in {out_dir}")
        panels = plot_accuracy_vs_snr(summary, tmp / "accuracy_vs_snr.png", selection.title)
        if panels:
            figures["accuracy_vs_snr.png"] = panels
        panels = plot_matched_grid(summary, tmp / "matched_grid_vs_snr.png", selection.title)
        if panels:
            figures["matched_grid_vs_snr.png"] = panels
        if not thresholds.empty:
            thresholds.to_csv(tmp / "thresholds.csv", index=False)
            panels = plot_thresholds_vs_snr(
                thresholds, tmp / "thresholds_vs_snr.png", selection.title
            )
            if panels:
                figures["thresholds_vs_snr.png"] = panels
        markdown = _markdown(
            selection, table, summary, comparisons, base_name, list(figures), notes, n_boot, seed
        )
        (tmp / "report.md").write_text(markdown)
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
    return ReportResult(
        out_dir,
        files,
        table,
        summary,
        thresholds,
        selection,
        figures,
        comparisons=comparisons,
        baseline=base_name,
        notes=notes,
    )


def _markdown(
    selection: RunSelection,
    table: pd.DataFrame,
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    baseline: str | None,
    figures: list[str],
    notes: list[str],
    n_boot: int,
    seed: int,
) -> str:
    n_runs = table["run_id"].nunique()
    with_windows = table.loc[table["window_scores"], "run_id"].nunique()
    label = score_label(summary)
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
        "Matched runs are tested at their training noise and SNR; clean-train and mixed runs on the "
        "clean test set and on their test grid. Headline metric: balanced accuracy (mean over classes "
        "of the per-class accuracy, so the small healthy class counts as much as any fault).",
    ]
    fallback = summary[summary["score_metric"] == "acc"]
    if not fallback.empty:
        parts.append(
            f"{len(fallback)} of {len(summary)} cells have runs without balanced accuracy (logged "
            "before it existed): they show plain accuracy"
            + (" (marked †)." if label != "accuracy" else "; so does every cell here.")
        )
    parts += [
        f"Cells: mean over seeds [95 % bootstrap interval], {n_boot} replicates, seed {seed}. "
        f"{with_windows} of {n_runs} runs logged per-window scores; a cell whose runs all did is "
        "resampled over seeds and, within each seed, over test windows within class "
        "(`interval = seeds+windows`; `windows` for one seed), otherwise over seeds only (`seeds`); "
        "one seed without window scores has no interval.",
        "",
    ]
    for variant, name in (
        (PLAIN, "plain"),
        (ADABN, "AdaBN: BatchNorm re-estimated on the test windows"),
    ):
        if not (summary["variant"] == variant).any():
            continue
        heading = score_label(summary[summary["variant"] == variant])
        parts += [
            f"## {heading[0].upper() + heading[1:]} vs SNR ({name})",
            "",
            pivot_markdown(summary, "score", variant),
            "",
        ]
    for variant, name in ((PLAIN, "plain"), (ADABN, "AdaBN")):
        grid = grid_pivot_markdown(summary, variant)
        if not grid:
            continue
        parts += [
            f"## Matched runs on their test grid ({name})",
            "",
            "Each matched job is tested on the whole grid, not only at its training condition (in "
            "bold): how a model trained at one noise level does at the others.",
            "",
            grid,
            "",
        ]
    for variant, name in ((PLAIN, "plain"), (ADABN, "AdaBN")):
        rows = summary[(summary["variant"] == variant) & summary["healthy_share_mean"].notna()]
        if rows.empty:
            continue
        parts += [
            f"## Fault windows predicted healthy, % ({name})",
            "",
            "Share of the fault windows classified as the healthy class: where noisy windows go.",
            "",
            pivot_markdown(summary, "healthy_share", variant),
            "",
        ]
    for fig in figures:
        parts += [f"![{fig}]({fig})", ""]
    if baseline is not None:
        parts += [
            f"## Paired comparisons against {baseline}",
            "",
            f"Difference model - {baseline} in points, on cells both ran (same data, training and "
            "test condition, seed, variant). The rows of one pair of training runs (same seed and "
            "training condition: one matched cell, or the whole grid of a clean-trained seed) are "
            "averaged into one unit; the interval resamples units, the Wilcoxon signed-rank test "
            "compares the units, and Holm's correction runs over the models of each protocol/variant. "
            f"A direction is claimed only when p_holm < {ALPHA:g}; fewer than 6 units can never "
            "reach it.",
            "",
            comparisons_markdown(comparisons, baseline),
            "",
        ]
    if notes:
        parts += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    show = table.drop(columns=["sweep_id", "data_setup", "split", "condition"]).copy()
    show["run_id"] = show["run_id"].str[:8]
    for col in CONDITION_METRICS:
        show[col] = show[col].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    if len(show) <= MAX_MD_ROWS:
        parts += ["## All runs (tidy)", "", _md_table(show), ""]
    else:
        parts += ["## All runs (tidy)", "", f"{len(show)} rows: see `runs.csv`.", ""]
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
    baseline: str | None = "auto",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ReportResult:
    """``fd-report``: select runs, write the report folder, log it to the sweep's parent run.
    ``progress``: called with a short line at each stage."""
    say = progress or (lambda _line: None)
    say("selecting the runs" + (f" of sweep {sweep}" if sweep else f" of {experiment}"))
    selection = select_runs(
        sweep=sweep,
        experiment=experiment,
        filter_string=filter_string,
        tracking_uri=tracking_uri,
        include_unfinished=include_unfinished,
    )
    result = write_report(
        selection,
        out_dir or default_out_dir(selection),
        baseline=baseline,
        n_boot=n_boot,
        seed=seed,
        progress=progress,
    )
    if log_to_parent and selection.parent_run_id:
        say("logging the report under report/ of the sweep's parent run")
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
        "baseline": result.baseline,
        "notes": result.notes,
        "summary": json.loads(result.summary.to_json(orient="records")),
        "comparisons": json.loads(result.comparisons.to_json(orient="records")),
    }


__all__ = [
    "COMPARISON_COLUMNS",
    "GROUP_KEYS",
    "SUMMARY_COLUMNS",
    "TIDY_COLUMNS",
    "ReportError",
    "ReportResult",
    "RunSelection",
    "WindowScores",
    "build_report",
    "comparison_table",
    "comparisons_markdown",
    "curve_rows",
    "default_out_dir",
    "grid_pivot_markdown",
    "headline_rows",
    "load_window_scores",
    "log_report",
    "matched_grid_rows",
    "pivot_markdown",
    "plot_accuracy_vs_snr",
    "plot_matched_grid",
    "plot_thresholds_vs_snr",
    "read_window_scores",
    "resolve_baseline",
    "result_json",
    "score_label",
    "select_runs",
    "setup_label",
    "summary_table",
    "threshold_table",
    "tidy_table",
    "write_report",
]
