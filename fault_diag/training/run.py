"""One ``fd-train`` job end to end: checks, dataset, tracking, training, artifacts, summary.

The Hydra entry point (``fault_diag.cli.train``) only composes the config and calls :func:`run_job`,
which turns it into the typed :class:`~fault_diag.config.Config` once; everything below takes typed
pieces. Tracking goes through :mod:`fault_diag.tracker` (any backend, never asked which); the phases
after training (:func:`finish_job`: card, artifacts, tracker) are shared with ``fd-sweep``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from fault_diag.bundle.card import model_card
from fault_diag.config import Config, as_config, validate_config
from fault_diag.data import WindowedDataset, build_dataset
from fault_diag.lifecycle import (
    git_commit,
    run_folder_lock,
    stop_signals_raise,
    tracked_run,
)
from fault_diag.metric_names import (
    CONDITION_METRICS,
    WINDOW_SCORES_ARTIFACT,
    metric_name,
    recall_metric_name,
)
from fault_diag.tracker import Tracker, TrackerBackend, flatten_params, get_backend, run_name
from fault_diag.training.engine import configure_threads, resolve_device
from fault_diag.training.evaluation import ConditionResult
from fault_diag.training.loop import (
    TrainResult,
    check_resumable,
    config_fingerprint,
    read_checkpoint_extra,
    train,
)

log = logging.getLogger(__name__)


def _condition_label(result: TrainResult) -> str:
    p = result.protocol
    if p["noise_protocol"] == "mixed":
        return "mixed noise"
    if p["train_snr_db"] is None:
        return "clean"
    return f"{p['train_noise']} {p['train_snr_db']:g} dB"


def write_artifacts(
    folder: Path, config: Config, result: TrainResult, card: dict[str, Any], overrides: list[str]
) -> list[Path]:
    """Write the run's artifacts into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(config)))
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    files += [folder / "config.yaml", folder / "overrides.yaml"]
    from fault_diag.viz import plot_confusion_matrix, plot_snr_curves, save_figure

    fig = plot_confusion_matrix(
        result.confusion,
        result.class_names,
        f"{config.model.name}, test at the training condition "
        f"({_condition_label(result)}): accuracy {result.test_metrics['test/acc']:.3f}",
    )
    save_figure(fig, folder / "confusion_matrix.png", dpi=100)
    files.append(folder / "confusion_matrix.png")
    curves = {
        f"{kind}" + (" (AdaBN)" if adabn else ""): points
        for (metric, kind, adabn), points in grid_curves(result).items()
        if metric == "bal_acc"
    }
    if curves:
        fig = plot_snr_curves(
            curves,
            f"{run_name(config)}: balanced accuracy on the test grid",
            chance=1.0 / len(result.class_names),
        )
        save_figure(fig, folder / "accuracy_vs_snr.png", dpi=100)
        files.append(folder / "accuracy_vs_snr.png")
    result.per_class.to_csv(folder / "per_class_metrics.csv", index=False)
    files.append(folder / "per_class_metrics.csv")
    rows = [{"noise": k, "snr_db": s, "test_acc": a} for (k, s), a in result.grid_accuracy.items()]
    (folder / "test_grid.json").write_text(json.dumps(rows, indent=2))
    files.append(folder / "test_grid.json")
    ev = result.evaluation
    if ev.conditions:
        table = []
        for c in ev.conditions:
            row: dict[str, Any] = {
                "condition": c.name,
                "noise": c.kind,
                "snr_db": c.snr_db,
                "adabn": c.adabn,
                **{k: c.metrics[k] for k in CONDITION_METRICS},
            }
            row.update(
                {f"recall/{n}": float(r) for n, r in zip(ev.class_names, c.recall, strict=True)}
            )
            table.append(row)
        import pandas as pd

        pd.DataFrame(table).to_csv(folder / "test_conditions.csv", index=False)
        files.append(folder / "test_conditions.csv")
        scores: dict[str, Any] = ev.window_scores()
        np.savez_compressed(folder / WINDOW_SCORES_ARTIFACT, **scores)  # type: ignore[arg-type]
        files.append(folder / WINDOW_SCORES_ARTIFACT)
    if result.thresholds is not None:
        (folder / "thresholds_summary.json").write_text(json.dumps(result.thresholds, indent=2))
        files.append(folder / "thresholds_summary.json")
    (folder / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
    files.append(folder / "model_card.json")
    (folder / "history.json").write_text(json.dumps(result.history, indent=2))
    files.append(folder / "history.json")
    # Weights as a plain state dict: rebuilt from the card's model spec and loaded with
    # weights_only=True by fd-export, so nothing is unpickled.
    torch.save(result.model.state_dict(), folder / "classifier_state.pt")
    files.append(folder / "classifier_state.pt")
    return files


def run_tags(config: Config, dataset: WindowedDataset) -> dict[str, str]:
    """The tags of a training run (model, noise, snr_db, protocol, split, data_setup, seed, commit)."""
    tags = {
        "model": config.model.name,
        "noise": config.noise.kind,
        "snr_db": str(config.noise.snr_db),
        "protocol": config.noise.protocol,
        "split": str(dataset.protocol.get("split", config.data.split)),
        "data_setup": config.data.setup,
        "seed": str(config.trainer.seed),
        "git_commit": git_commit(),
        "test_draws": str(config.noise.test_draws),
        "select": str(config.trainer.select),
        "band_hz": str(config.data.band_hz),
        "healthy_class": str(getattr(dataset, "healthy_class", None) or ""),
    }
    tags.update({str(k): str(v) for k, v in (config.tracking.tags or {}).items()})
    return tags


def _hydra_context() -> tuple[list[str], Path | None, int | None]:
    """(task overrides, sweep dir when in a multirun, launcher n_jobs when known)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except ValueError:
        return [], None, None
    overrides = list(hc.overrides.task)
    if hc.mode != RunMode.MULTIRUN:
        return overrides, None, None
    n_jobs = OmegaConf.select(hc.launcher, "n_jobs", default=None)
    return overrides, Path(hc.sweep.dir), n_jobs


def log_final(
    tracker: Tracker,
    config: Config,
    dataset: WindowedDataset,
    result: TrainResult,
    card: dict[str, Any],
    files: list[Path],
) -> None:
    """Log a finished training to its run and close it: test metrics (the grid as
    ``test/acc/<kind>/<snr>dB``), accuracy against SNR as curves, thresholds, the artifact
    ``files``, the model (named after the run) if ``tracking.log_model``."""
    from fault_diag.metric_names import curve_metric_name, threshold_metric_name

    # MLflow forbids '@' in metric names: test/acc@clean is logged as test/acc/clean.
    metrics = {k.replace("@", "/"): v for k, v in result.test_metrics.items()}
    metrics["best_val_acc"] = result.best_val_acc
    metrics["best_epoch"] = result.best_epoch
    metrics["train_seconds"] = result.seconds
    for (kind, snr), acc in result.grid_accuracy.items():
        metrics[metric_name("acc", kind, snr)] = acc
    train_cond = result.evaluation.get("train")
    if train_cond is not None:
        for name, recall in zip(result.class_names, train_cond.recall, strict=True):
            metrics[recall_metric_name(name)] = float(recall)
    metrics = {k: v for k, v in metrics.items() if v is not None and np.isfinite(v)}
    if result.thresholds:
        for unit, value in result.thresholds.items():
            metrics[threshold_metric_name(unit)] = value
    tracker.log_metrics(metrics)
    tracker.log_dataset(*dataset_identity(config, dataset))
    # The grid once more as curves (x = SNR in dB), one per noise kind and metric: the dashboard
    # draws accuracy against SNR instead of one bar per grid point.
    for (metric, kind, adabn), points in grid_curves(result).items():
        tracker.log_curve(curve_metric_name(metric, kind, adabn=adabn), points)
    if result.evaluation.adabn_skipped:
        tracker.set_tags({"adabn": f"skipped: {result.evaluation.adabn_skipped}"})
    for path in files:
        tracker.log_file(path)
    if config.tracking.log_model:
        x_test, _ = dataset.split("test")
        tracker.log_model(
            result.model, np.ascontiguousarray(x_test[:2]), card, name=model_name(config)
        )
    tracker.finish()


def dataset_identity(
    config: Config, dataset: WindowedDataset
) -> tuple[str, str, str, dict[str, Any]]:
    """``(name, digest, source, profile)`` of the dataset a run used: the data setup, a SHA-256
    over its windows and labels, the recordings folder, and its size per split."""
    import hashlib

    from fault_diag import paths

    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(dataset.labels).tobytes())
    digest.update(np.ascontiguousarray(dataset.windows).tobytes())
    splits = dataset.meta["split"].value_counts().to_dict() if "split" in dataset.meta else {}
    profile = {
        "windows": len(dataset),
        **{f"{k}_windows": int(v) for k, v in splits.items()},
        "classes": list(dataset.class_names),
        "fs_hz": int(dataset.fs_hz),
        "window_length": int(dataset.window_length),
        "split": dataset.protocol.get("split", config.data.split),
        "band_hz": config.data.band_hz,
    }
    source = config.data.root or str(paths.recordings_dir())
    return config.data.setup, digest.hexdigest(), source, profile


def model_name(config: Config) -> str:
    """The name a run's logged model gets: ``<model>-<protocol or condition>-s<seed>``
    (``drsn_cw-mixed-s0``, ``wdcnn-gaussianm4dB-s1``), characters MLflow accepts in a name."""
    nz = config.noise
    if nz.protocol == "mixed":
        cond = "mixed"
    elif nz.protocol == "clean_train" or nz.kind == "none" or nz.snr_db is None:
        cond = "clean"
    else:
        cond = f"{nz.kind}{float(nz.snr_db):g}dB".replace("-", "m").replace(".", "p")
    return f"{config.model.name}-{cond}-s{config.trainer.seed}"


def grid_curves(result: TrainResult) -> dict[tuple[str, str, bool], list[tuple[float, float]]]:
    """``(metric, kind, adabn) -> [(snr_db, value), ...]`` sorted by SNR: the test grid as curves."""
    out: dict[tuple[str, str, bool], list[tuple[float, float]]] = {}
    for c in result.evaluation.conditions:
        if c.snr_db is None or c.name.startswith("train"):
            continue
        for metric in ("bal_acc", "acc"):
            value = c.metrics[metric]
            if np.isfinite(value):
                out.setdefault((metric, c.kind, c.adabn), []).append((float(c.snr_db), value))
    return {k: sorted(v) for k, v in out.items()}


def finish_job(
    tracker: Tracker,
    config: Config,
    dataset: WindowedDataset,
    result: TrainResult,
    output_dir: Path,
    overrides: list[str],
) -> dict[str, Any]:
    """After training: the model card, the artifacts in ``<output_dir>/artifacts``, everything
    logged to the tracker and the run closed. Returns the card."""
    card = model_card(dataset, result, tracker.run_id)
    files = write_artifacts(output_dir / "artifacts", config, result, card, overrides)
    log_final(tracker, config, dataset, result, card, files)
    return card


def start_tracker(
    backend: TrackerBackend,
    config: Config,
    dataset: WindowedDataset,
    output_dir: Path,
    sweep_dir: Path | None,
    *,
    extra_tags: dict[str, str] | None = None,
) -> Tracker:
    """Open the job's run: continued when the run folder records one of this store and
    configuration; recorded in the run folder as soon as it exists, so that a job killed before
    its first checkpoint is resumed in this run too."""
    location = backend.location(config.tracking)
    fingerprint = config_fingerprint(config)

    def record(run_id: str) -> None:
        if location is not None:
            write_run_record(output_dir, run_id, location, fingerprint)

    return backend.start_run(
        config.tracking,
        run_name=run_name(config),
        params=flatten_params(config),
        tags={**run_tags(config, dataset), **(extra_tags or {})},
        resume_run_id=previous_run_id(config, output_dir, location) if location else None,
        sweep_dir=sweep_dir,
        on_open=record,
    )


RUN_RECORD = "mlflow_run.json"


def write_run_record(output_dir: Path, run_id: str, uri: str, fingerprint: str) -> None:
    """Record in the run folder which MLflow run it trains (atomically), as soon as the run exists.

    The checkpoint records it too, but only after the first epoch: a job killed before that would
    otherwise start a second run on its resume.
    """
    from fault_diag.io import atomic_write_json

    atomic_write_json(
        output_dir / RUN_RECORD,
        {"run_id": run_id, "tracking_uri": uri, "fingerprint": fingerprint},
        indent=2,
    )


def previous_run_id(cfg: Config | DictConfig, output_dir: Path, uri: str) -> str | None:
    """The MLflow run a job in ``output_dir`` continues, or None for a new run.

    The run folder's record (:func:`write_run_record`) when it names this store and this
    configuration, else the checkpoint's (written by versions before the record). None with
    ``trainer.resume=false``: that job trains from scratch, so it is a new run.
    """
    config = as_config(cfg)
    if not config.trainer.resume:
        return None
    path = output_dir / RUN_RECORD
    if path.exists():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = {}
        if (
            record.get("tracking_uri") == uri
            and record.get("fingerprint") == config_fingerprint(config)
            and record.get("run_id")
        ):
            return str(record["run_id"])
        return None
    found = read_checkpoint_extra(output_dir).get("mlflow_run_id")
    return str(found) if found else None


def backfill_epochs(tracker: Tracker, output_dir: Path) -> list[int]:
    """Log the checkpointed epochs that a resumed run is missing; returns their numbers.

    An epoch is checkpointed, then logged: a job stopped between the two (killed, or its store
    full) resumes after that epoch, which would otherwise never reach the run's history.
    """
    from fault_diag.training.checkpoint import CheckpointError, load_checkpoint

    path = output_dir / "checkpoints" / "last.pt"
    if not path.exists():
        return []
    try:
        history = list(load_checkpoint(path).get("history", []))
    except CheckpointError:
        return []  # train() reports a damaged checkpoint
    if not history:
        return []
    logged = tracker.logged_epochs()
    missing = [epoch for epoch in range(1, len(history) + 1) if epoch not in logged]
    for epoch in missing:
        tracker.log_epoch(epoch, history[epoch - 1])
    if missing:
        log.info("run %s: logged checkpointed epochs %s", tracker.run_id, missing)
    return missing


def run_job(cfg: Config | DictConfig) -> float:
    """Validate, build data, train, log. Returns the test accuracy (what a sweeper optimises).

    Lifecycle: the tracking run is closed FINISHED, FAILED (any exception, a full disk included)
    or KILLED (Ctrl-C, SIGTERM, SIGHUP); a job killed outright (SIGKILL) is continued in the same
    run by rerunning it into the same run folder, or (MLflow) closed KILLED by the next run
    started in its experiment on this host (:func:`fault_diag.tracking.close_stale_runs`).
    """
    git_commit()  # fixed now, for this process: the code it imported (see git_commit)
    overrides, sweep_dir, n_jobs = _hydra_context()
    # Every check that can fail happens before the dataset is built or a run is opened.
    validate_config(cfg)
    config = as_config(cfg)  # typed from here down
    resolve_device(config.trainer.device)
    if config.trainer.num_threads is None and n_jobs:
        config.trainer.num_threads = max(1, (os.cpu_count() or 1) // int(n_jobs))
    configure_threads(config.trainer.num_threads)
    output_dir = Path(config.paths.output_dir)
    backend = get_backend(config.tracking.backend)
    timing: dict[str, float] = {}
    t_job = time.perf_counter()

    restore = stop_signals_raise()  # before the store is opened: it may be created now
    try:
        backend.check(config.tracking)  # a garbage file, a half-migrated store, no server
        with run_folder_lock(output_dir):
            # A rerun into a folder holding another configuration's checkpoint is refused here,
            # before the earlier job's tracking run is reopened (it would otherwise be set
            # RUNNING, then FAILED).
            check_resumable(config, output_dir)
            t0 = time.perf_counter()
            _phase(config, "building the dataset (cached after the first run)")
            dataset = build_dataset(config.data)
            timing["data_s"] = time.perf_counter() - t0

            def open_tracker() -> Tracker:
                return start_tracker(backend, config, dataset, output_dir, sweep_dir)

            with tracked_run(open_tracker, defer=True) as tracker:
                if tracker.run_id:
                    log.info("tracking run %s", tracker.run_id)
                if tracker.resumed:
                    backfill_epochs(tracker, output_dir)
                result = train(
                    config,
                    dataset,
                    output_dir,
                    on_epoch_end=tracker.log_epoch,
                    checkpoint_extra={"mlflow_run_id": tracker.run_id} if tracker.run_id else None,
                )
                t0 = time.perf_counter()
                _phase(config, "writing the artifacts and logging the run (and its model)")
                finish_job(tracker, config, dataset, result, output_dir, overrides)
                timing["logging_s"] = time.perf_counter() - t0
    finally:
        restore()
    timing.update(result.timing)
    timing["total_s"] = time.perf_counter() - t_job
    result.timing = timing

    print_summary(config, result, tracker)
    return float(result.test_metrics["test/acc"])


def _phase(config: Config, what: str) -> None:
    """One line on stderr when a long phase starts (with ``trainer.progress``)."""
    if config.trainer.progress:
        print(f"fd-train: {what} ...", file=sys.stderr, flush=True)


def timing_line(timing: dict[str, float]) -> str:
    """``wall time 124 s: data 3 s, epochs 37 s, test grid 40 s, artifacts and logging 44 s``."""
    parts = [
        (label, timing[key])
        for key, label in (
            ("data_s", "data"),
            ("epochs_s", "epochs"),
            ("test_s", "test grid"),
            ("logging_s", "artifacts and logging"),
        )
        if key in timing
    ]
    total = timing.get("total_s", sum(sec for _, sec in parts))
    rest = total - sum(sec for _, sec in parts)
    if rest >= 0.5:
        parts.append(("setup, checks and the tracking run", rest))
    body = ", ".join(f"{label} {sec:.0f} s" for label, sec in parts)
    return f"wall time {total:.0f} s: {body}"


def summary_lines(result: TrainResult) -> list[str]:
    """The test printout: each condition's balanced accuracy, accuracy and share sent to the
    healthy class, plain and (when run) with AdaBN, as a kinds x SNR grid."""
    ev = result.evaluation
    healthy = ev.healthy_class
    lines = []

    def cell(c: ConditionResult | None, metric: str) -> str:
        if c is None or not np.isfinite(c.metrics[metric]):
            return f"{'':>6}"
        return f"{c.metrics[metric]:6.3f}"

    for adabn in (False, True):
        conds = [c for c in ev.conditions if c.adabn == adabn]
        if not conds:
            continue
        tag = (
            " after AdaBN (BatchNorm statistics re-estimated on each condition's unlabelled test windows)"
            if adabn
            else ""
        )
        suffix = "/adabn" if adabn else ""
        train, clean = ev.get("train" + suffix), ev.get("clean" + suffix)
        lines.append("")
        lines.append(f"test{tag}, {ev.test_draws} noise draw(s) per window:")
        for label, c in (("training condition", train), ("clean", clean)):
            if c is None:
                continue
            lines.append(
                f"  {label:<19} balanced acc {cell(c, 'bal_acc')}   acc {cell(c, 'acc')}   "
                f"macro-F1 {cell(c, 'macro_f1')}"
                + (
                    f"   fault windows sent to {healthy}: {cell(c, 'healthy_share')}"
                    if healthy
                    else ""
                )
            )
        grid = [c for c in conds if c.snr_db is not None and not c.name.startswith("train")]
        if not grid:
            continue
        kinds = list(dict.fromkeys(c.kind for c in grid))
        snrs = sorted({float(c.snr_db) for c in grid if c.snr_db is not None})
        by = {(c.kind, float(c.snr_db)): c for c in grid if c.snr_db is not None}
        metrics = [("bal_acc", "balanced accuracy")]
        if healthy:
            metrics.append(("healthy_share", f"share of fault windows sent to {healthy}"))
        for metric, title in metrics:
            lines.append(f"  {title} by noise and SNR (dB):")
            lines.append(f"    {'':<12}" + " ".join(f"{s:>6g}" for s in snrs))
            for kind in kinds:
                lines.append(
                    f"    {kind:<12}" + " ".join(cell(by.get((kind, s)), metric) for s in snrs)
                )
    if ev.adabn_skipped:
        lines.append(f"AdaBN skipped: {ev.adabn_skipped}")
    return lines


def print_summary(config: Config, result: TrainResult, tracker: Tracker) -> None:
    """The job's closing printout: what was trained, the test grid, where the run is."""
    p = result.protocol
    if p["noise_protocol"] == "mixed":
        d = p.get("train_distribution", {})
        cond = (
            f"mixed: SNR uniform in {d.get('snr_db_range')} dB, kinds {d.get('kinds')}, "
            f"{d.get('clean_fraction', 0):.0%} clean"
        )
    elif p["train_noise"] == "none":
        cond = "clean"
    else:
        cond = f"{p['train_noise']} noise at {p['train_snr_db']:g} dB"
    band = config.data.band_hz
    setup = config.data.setup + (f" band-limited to {band[0]:g}-{band[1]:g} Hz" if band else "")
    lines = [
        "",
        f"{config.model.name} on {setup} ({p['noise_protocol']} protocol, trained {cond}), "
        f"best epoch {result.best_epoch} by {p.get('select', 'val_acc')} "
        f"(val acc {result.best_val_acc:.4f})",
    ]
    if result.timing:
        lines.append(timing_line(result.timing))
    lines += summary_lines(result)
    where = tracker.describe()
    if where:
        lines.append(where)
    print("\n".join(lines), file=sys.stdout, flush=True)


__all__ = [
    "finish_job",
    "log_final",
    "model_card",
    "print_summary",
    "run_job",
    "run_tags",
    "start_tracker",
    "write_artifacts",
]
