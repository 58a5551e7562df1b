"""One ``fd-train`` job end to end: checks, dataset, tracking, training, artifacts, summary.

The Hydra entry point (``fault_diag.cli.train``) only composes the config and calls :func:`run_job`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from fault_diag.config import validate_config
from fault_diag.data import WindowedDataset, build_dataset
from fault_diag.metric_names import (
    CONDITION_METRICS,
    WINDOW_SCORES_ARTIFACT,
    metric_name,
    recall_metric_name,
)
from fault_diag.training.evaluation import ConditionResult
from fault_diag.training.loop import (
    TrainResult,
    check_resumable,
    config_fingerprint,
    configure_threads,
    read_checkpoint_extra,
    resolve_device,
    train,
)

log = logging.getLogger(__name__)


def grid_metric_name(kind: str, snr_db: float) -> str:
    """MLflow name of a test-grid accuracy. MLflow forbids '@' in names, so ``test/acc/<kind>/<snr>dB``."""
    return metric_name("acc", kind, snr_db)


def _card_summary(result: TrainResult) -> dict[str, Any]:
    """Headline numbers of the card: each metric at the training condition and on clean windows,
    and the mean balanced accuracy over the grid, plain and with AdaBN."""
    ev = result.evaluation
    out: dict[str, Any] = {}
    for variant in (False, True):
        suffix = "/adabn" if variant else ""
        for name in ("train", "clean"):
            c = ev.get(name + suffix)
            if c is not None:
                out[name + suffix] = {k: c.metrics[k] for k in CONDITION_METRICS}
        grid = [
            c.metrics["bal_acc"]
            for c in ev.conditions
            if c.adabn == variant and c.snr_db is not None and not c.name.startswith("train")
        ]
        if grid:
            out["grid_mean_bal_acc" + suffix] = float(np.mean(grid))
    return out


def model_card(
    cfg: DictConfig, dataset: WindowedDataset, result: TrainResult, run_id: str | None
) -> dict[str, Any]:
    """What a user of the trained classifier needs to feed it and to judge it (DESIGN.md section 6)."""
    import platform

    from fault_diag.models import get_model_spec
    from fault_diag.tracking import git_commit

    spec = get_model_spec(result.model.network)
    return {
        "model": spec,
        "labels": list(dataset.class_names),
        "sampling_rate_hz": int(dataset.fs_hz),
        "window_length": int(dataset.window_length),
        "channel": dataset.channel,
        "input_layout": "(batch, 1, window_length) float32, raw signal in the recording's units (g)",
        "normalisation": "per-window standardisation (zero mean, unit variance) inside the model",
        "split_protocol": dataset.protocol,
        "noise_protocol": {k: v for k, v in result.protocol.items() if k != "split"},
        "training_snr_db": result.protocol["train_snr_db"],
        "envelope": training_envelope(cfg, result),
        "band_hz": dataset.protocol.get("band_hz"),
        "healthy_class": result.evaluation.healthy_class,
        "model_selection": result.protocol.get("model_selection"),
        "metrics": {**result.test_metrics, "best_val_acc": result.best_val_acc},
        "summary": _card_summary(result),
        "best_epoch": result.best_epoch,
        "mlflow_run_id": run_id,
        "git_commit": git_commit(),
        "versions": {
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "numpy": np.__version__,
        },
    }


def training_envelope(cfg: DictConfig, result: TrainResult) -> dict[str, Any]:
    """The conditions the model was trained on, for ``fd-predict``'s warnings: protocol, the
    training SNR range in dB (None when trained clean), kinds, clean share, rate and band."""
    p = result.protocol
    dist = p.get("train_distribution")
    if dist is not None:
        snr_range = list(dist["snr_db_range"])
        kinds, clean_fraction = list(dist["kinds"]), float(dist["clean_fraction"])
    elif p["train_snr_db"] is not None:
        snr_range = [p["train_snr_db"], p["train_snr_db"]]
        kinds, clean_fraction = [p["train_noise"]], 0.0
    else:
        snr_range, kinds, clean_fraction = None, [], 1.0
    return {
        "protocol": p["noise_protocol"],
        "train_snr_db_range": snr_range,
        "train_kinds": kinds,
        "clean_fraction": clean_fraction,
        "sampling_rate_hz": int(cfg.data.fs_hz),
        "band_hz": p.get("split", {}).get("band_hz") if isinstance(p.get("split"), dict) else None,
        "noise_band_hz": p.get("noise_band_hz"),
    }


def _confusion_figure(cm: np.ndarray, class_names: list[str], title: str) -> Any:
    # A bare Figure (no pyplot): leaves the caller's matplotlib backend alone, e.g. in a notebook.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 5.5), dpi=100)
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    peak = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if cm[i, j] > peak / 2 else "black",
                )
    fig.tight_layout()
    return fig


def write_artifacts(
    folder: Path, cfg: DictConfig, result: TrainResult, card: dict[str, Any], overrides: list[str]
) -> list[Path]:
    """Write the run's artifacts into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    files += [folder / "config.yaml", folder / "overrides.yaml"]
    fig = _confusion_figure(
        result.confusion,
        result.class_names,
        f"{cfg.model.name}, test at {result.protocol['train_noise']} "
        f"{result.protocol['train_snr_db']} dB: acc {result.test_metrics['test/acc']:.3f}",
    )
    fig.savefig(folder / "confusion_matrix.png")
    files.append(folder / "confusion_matrix.png")
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


def run_tags(cfg: DictConfig, dataset: WindowedDataset) -> dict[str, str]:
    """The tags of a training run (model, noise, snr_db, protocol, split, data_setup, seed, commit)."""
    from fault_diag.tracking import git_commit

    tags = {
        "model": cfg.model.name,
        "noise": cfg.noise.kind,
        "snr_db": str(cfg.noise.snr_db),
        "protocol": cfg.noise.protocol,
        "split": str(dataset.protocol.get("split", cfg.data.split)),
        "data_setup": cfg.data.setup,
        "seed": str(cfg.trainer.seed),
        "git_commit": git_commit(),
        "test_draws": str(cfg.noise.get("test_draws", 1)),
        "select": str(cfg.trainer.get("select", "val_acc")),
        "band_hz": str(cfg.data.get("band_hz")),
        "healthy_class": str(getattr(dataset, "healthy_class", None) or ""),
    }
    tags.update({str(k): str(v) for k, v in (cfg.tracking.tags or {}).items()})
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
    tracker: Any,
    cfg: DictConfig,
    dataset: WindowedDataset,
    result: TrainResult,
    card: dict[str, Any],
    files: list[Path],
) -> None:
    """Log a finished training to its MLflow run and close it: test metrics (the grid as
    ``test/acc/<kind>/<snr>dB``), thresholds, the artifact ``files``, the model if
    ``tracking.log_model``."""
    # MLflow forbids '@' in metric names: test/acc@clean is logged as test/acc/clean.
    metrics = {k.replace("@", "/"): v for k, v in result.test_metrics.items()}
    metrics["best_val_acc"] = result.best_val_acc
    metrics["best_epoch"] = result.best_epoch
    metrics["train_seconds"] = result.seconds
    for (kind, snr), acc in result.grid_accuracy.items():
        metrics[grid_metric_name(kind, snr)] = acc
    train = result.evaluation.get("train")
    if train is not None:
        for name, recall in zip(result.class_names, train.recall, strict=True):
            metrics[recall_metric_name(name)] = float(recall)
    metrics = {k: v for k, v in metrics.items() if v is not None and np.isfinite(v)}
    if result.thresholds:
        for unit, value in result.thresholds.items():
            metrics[f"threshold/{unit}"] = value
    tracker.log_metrics(metrics)
    if result.evaluation.adabn_skipped:
        tracker.set_tags({"adabn": f"skipped: {result.evaluation.adabn_skipped}"})
    for path in files:
        tracker.log_file(path)
    if cfg.tracking.log_model:
        x_test, _ = dataset.split("test")
        tracker.log_model(result.model, np.ascontiguousarray(x_test[:2]), card)
    tracker.finish()


RUN_RECORD = "mlflow_run.json"


class Terminated(BaseException):
    """SIGTERM or SIGHUP (what SLURM, containers, ``kill`` and a closed terminal send) arrived
    while a job ran. A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on
    the way swallows it."""


class RunFolderBusy(ValueError):
    """Another process is running a job in the same run folder (a ValueError: the folder given
    cannot be used as given, like any other bad input)."""


def _stop_signals(*names: str) -> list[Any]:
    """The signals of ``names`` this platform has (Windows has no SIGHUP)."""
    import signal

    return [getattr(signal, name) for name in names if hasattr(signal, name)]


def _terminate_as_interrupt() -> Callable[[], None]:
    """While a job runs, turn SIGTERM and SIGHUP into :class:`Terminated` and SIGINT into
    KeyboardInterrupt, raised outside writes to a local store
    (:func:`fault_diag.tracking.deferred_signals`), so that its tracking run is closed as KILLED
    instead of being left RUNNING; returns the function that restores the old handlers.

    Only the first signal raises: a second one (SLURM repeats SIGTERM before its SIGKILL) would
    otherwise interrupt the closing of the run. A signal that was ignored (``nohup``) stays
    ignored. Outside the main thread (where signals cannot be handled) it does nothing.
    """
    import signal

    from fault_diag.tracking import on_stop_signal

    received: list[int] = []

    def stop(signum: int) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(f"{signal.Signals(signum).name} received")

    def handler(signum: int, frame: Any) -> None:
        if received:
            log.warning("signal %d ignored: the job is already stopping", signum)
            return
        received.append(signum)
        on_stop_signal(lambda: stop(signum))

    previous: dict[int, Any] = {}
    try:
        for sig in _stop_signals("SIGTERM", "SIGHUP", "SIGINT"):
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread
        return lambda: None

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP ignored for a short block (closing a run after an error): a
    second Ctrl-C or TERM would leave the run half-closed. Outside the main thread, no change."""
    import signal

    try:
        saved = {
            sig: signal.signal(sig, signal.SIG_IGN)
            for sig in _stop_signals("SIGINT", "SIGTERM", "SIGHUP")
        }
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def tracked_run(open_tracker: Callable[[], Any], *, defer: bool = False) -> Iterator[Any]:
    """Open a tracker (``open_tracker()``) and close its run when the block raises: KILLED for
    Ctrl-C (KeyboardInterrupt) and :class:`Terminated`, FAILED for anything else (a full disk
    included), then re-raise.

    The opening holds the stop signals (``defer``: a local store, see
    :func:`fault_diag.tracking.deferred_signals`): one arriving while the run is opened takes
    effect once the tracker is here to be closed, so no window leaves an open run unclosed.
    """
    from fault_diag.tracking import deferred_signals

    tracker = None
    try:
        with deferred_signals(defer):
            tracker = open_tracker()
        yield tracker
    except (KeyboardInterrupt, Terminated):
        if tracker is not None:
            with _signals_held():
                tracker.fail("KILLED")
        raise
    except BaseException:
        if tracker is not None:
            with _signals_held():
                tracker.fail("FAILED")
        raise


@contextlib.contextmanager
def run_folder_lock(output_dir: Path) -> Iterator[None]:
    """Hold a lock on ``output_dir`` while a job runs there; raise :class:`RunFolderBusy` at once
    when another process holds it.

    Two jobs in one folder (two runs started in the same second with the default folder name,
    or a resume started while the first job still runs) would overwrite each other's checkpoint
    and both log into the run recorded there. The lock is ``flock`` on the folder itself: it
    adds no file (a job refused by its checks leaves its folder as empty as before) and goes
    with its process however that ends, so a killed job never leaves its folder locked. Where
    the file system cannot lock a folder (some network mounts) the job runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no flock
        yield
        return
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(output_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusy(
                f"run folder {output_dir} is in use by another fd-train process; "
                "give this job its own hydra.run.dir"
            ) from None
        except OSError as exc:
            log.debug("run folder %s cannot be locked (%s): running unlocked", output_dir, exc)
        yield
    finally:
        os.close(fd)  # releases the lock
        if created:
            # a job refused before it wrote anything (bad data, a bad store) leaves no empty
            # folder behind; rmdir fails, harmlessly, on a folder that holds anything
            with contextlib.suppress(OSError):
                output_dir.rmdir()


def write_run_record(output_dir: Path, run_id: str, uri: str, fingerprint: str) -> None:
    """Record in the run folder which MLflow run it trains (atomically), as soon as the run exists.

    The checkpoint records it too, but only after the first epoch: a job killed before that would
    otherwise start a second run on its resume.
    """
    path = output_dir / RUN_RECORD
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps({"run_id": run_id, "tracking_uri": uri, "fingerprint": fingerprint}, indent=2)
    )
    os.replace(tmp, path)


def previous_run_id(cfg: DictConfig, output_dir: Path, uri: str) -> str | None:
    """The MLflow run a job in ``output_dir`` continues, or None for a new run.

    The run folder's record (:func:`write_run_record`) when it names this store and this
    configuration, else the checkpoint's (written by versions before the record). None with
    ``trainer.resume=false``: that job trains from scratch, so it is a new run.
    """
    if not cfg.trainer.resume:
        return None
    path = output_dir / RUN_RECORD
    if path.exists():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = {}
        if (
            record.get("tracking_uri") == uri
            and record.get("fingerprint") == config_fingerprint(cfg)
            and record.get("run_id")
        ):
            return str(record["run_id"])
        return None
    found = read_checkpoint_extra(output_dir).get("mlflow_run_id")
    return str(found) if found else None


def backfill_epochs(tracker: Any, output_dir: Path) -> list[int]:
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
    logged = {m.step for m in tracker.client.get_metric_history(tracker.run_id, "val/loss")}
    missing = [epoch for epoch in range(1, len(history) + 1) if epoch not in logged]
    for epoch in missing:
        tracker.log_epoch(epoch, history[epoch - 1])
    if missing:
        log.info("MLflow run %s: logged checkpointed epochs %s", tracker.run_id, missing)
    return missing


def run_job(cfg: DictConfig) -> float:
    """Validate, build data, train, log. Returns the test accuracy (what a sweeper optimises).

    Lifecycle: the tracking run is closed FINISHED, FAILED (any exception, a full disk included)
    or KILLED (Ctrl-C, SIGTERM, SIGHUP); a job killed outright (SIGKILL) is continued in the same
    MLflow run by rerunning it into the same run folder, or closed KILLED by the next run started
    in its experiment on this host (:func:`fault_diag.tracking.close_stale_runs`).
    """
    from fault_diag.tracking import (
        MlflowRun,
        NullRun,
        check_store_writable,
        get_client,
        git_commit,
        read_parent_run,
        resolve_tracking_uri,
    )

    git_commit()  # fixed now, for this process: the code it imported (see git_commit)
    overrides, sweep_dir, n_jobs = _hydra_context()
    # Every check that can fail happens before the dataset is built or a run is opened.
    validate_config(cfg)
    resolve_device(cfg.trainer.device)
    if cfg.trainer.num_threads is None and n_jobs:
        cfg.trainer.num_threads = max(1, (os.cpu_count() or 1) // int(n_jobs))
    configure_threads(cfg.trainer.num_threads)
    output_dir = Path(cfg.paths.output_dir)
    mlflow = cfg.tracking.backend == "mlflow"
    uri = resolve_tracking_uri(cfg.tracking.tracking_uri) if mlflow else None

    restore = _terminate_as_interrupt()  # before the store is opened: it may be created now
    try:
        if uri is not None:
            check_store_writable(uri)
            get_client(uri)  # a garbage file, a half-migrated store, no server: fail now
        with run_folder_lock(output_dir):
            # A rerun into a folder holding another configuration's checkpoint is refused here,
            # before the earlier job's MLflow run is reopened (it would otherwise be set RUNNING,
            # then FAILED).
            check_resumable(cfg, output_dir)

            data_cfg = OmegaConf.to_object(cfg.data)
            dataset = build_dataset(data_cfg)  # type: ignore[arg-type]

            def open_tracker() -> Any:
                if uri is None:
                    return NullRun()
                fingerprint = config_fingerprint(cfg)
                return MlflowRun(
                    cfg,
                    tags=run_tags(cfg, dataset),
                    resume_run_id=previous_run_id(cfg, output_dir, uri),
                    parent=read_parent_run(sweep_dir) if sweep_dir is not None else None,
                    # Recorded as soon as the run exists: a job killed before its first
                    # checkpoint is then resumed in this run too.
                    on_open=lambda run_id: write_run_record(output_dir, run_id, uri, fingerprint),
                )

            local = uri is not None and uri.startswith("sqlite:")
            with tracked_run(open_tracker, defer=local) as tracker:
                if tracker.run_id:
                    log.info("MLflow run %s in %s", tracker.run_id, uri)
                if getattr(tracker, "resumed", False):
                    backfill_epochs(tracker, output_dir)
                result = train(
                    cfg,
                    dataset,
                    output_dir,
                    on_epoch_end=tracker.log_epoch,
                    checkpoint_extra={"mlflow_run_id": tracker.run_id} if tracker.run_id else None,
                )
                card = model_card(cfg, dataset, result, tracker.run_id)
                artifact_dir = output_dir / "artifacts"
                files = write_artifacts(artifact_dir, cfg, result, card, overrides)
                if isinstance(tracker, MlflowRun):
                    log_final(tracker, cfg, dataset, result, card, files)
    finally:
        restore()

    _print_summary(cfg, result, tracker.run_id, uri)
    return float(result.test_metrics["test/acc"])


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


def _print_summary(
    cfg: DictConfig, result: TrainResult, run_id: str | None, uri: str | None
) -> None:
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
    band = cfg.data.get("band_hz")
    setup = cfg.data.setup + (f" band-limited to {band[0]:g}-{band[1]:g} Hz" if band else "")
    lines = [
        "",
        f"{cfg.model.name} on {setup} ({p['noise_protocol']} protocol, trained {cond}), "
        f"best epoch {result.best_epoch} by {p.get('select', 'val_acc')} "
        f"(val acc {result.best_val_acc:.4f}), {result.seconds:.0f} s",
    ]
    lines += summary_lines(result)
    if run_id:
        lines.append(f"MLflow run {run_id} in {uri}")
        lines.append(
            "dashboard: make ui   (or: mlflow server --backend-store-uri "
            f"{uri} --host 127.0.0.1 --port 5000)"
        )
    print("\n".join(lines), file=sys.stdout, flush=True)


__all__ = ["grid_metric_name", "log_final", "model_card", "run_job", "run_tags", "write_artifacts"]
