"""One ``fd-train`` job end to end: checks, dataset, tracking, training, artifacts, summary.

The Hydra entry point (``fault_diag.cli.train``) only composes the config and calls :func:`run_job`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from fault_diag.config import validate_config
from fault_diag.data import WindowedDataset, build_dataset
from fault_diag.training.loop import (
    TrainResult,
    configure_threads,
    read_checkpoint_extra,
    resolve_device,
    train,
)

log = logging.getLogger(__name__)


def grid_metric_name(kind: str, snr_db: float) -> str:
    """MLflow name of a test-grid accuracy. MLflow forbids '@' in names, so ``test/acc/<kind>/<snr>dB``."""
    return f"test/acc/{kind}/{snr_db:g}dB"


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
        "metrics": {**result.test_metrics, "best_val_acc": result.best_val_acc},
        "best_epoch": result.best_epoch,
        "mlflow_run_id": run_id,
        "git_commit": git_commit(),
        "versions": {
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "numpy": np.__version__,
        },
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
    if result.thresholds:
        for unit, value in result.thresholds.items():
            metrics[f"threshold/{unit}"] = value
    tracker.log_metrics(metrics)
    for path in files:
        tracker.log_file(path)
    if cfg.tracking.log_model:
        x_test, _ = dataset.split("test")
        tracker.log_model(result.model, np.ascontiguousarray(x_test[:2]), card)
    tracker.finish()


def run_job(cfg: DictConfig) -> float:
    """Validate, build data, train, log. Returns the test accuracy (what a sweeper optimises)."""
    from fault_diag.tracking import (
        MlflowRun,
        NullRun,
        check_store_writable,
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
        import os

        cfg.trainer.num_threads = max(1, (os.cpu_count() or 1) // int(n_jobs))
    configure_threads(cfg.trainer.num_threads)
    uri = None
    if cfg.tracking.backend == "mlflow":
        uri = resolve_tracking_uri(cfg.tracking.tracking_uri)
        check_store_writable(uri)
    output_dir = Path(cfg.paths.output_dir)

    data_cfg = OmegaConf.to_object(cfg.data)
    dataset = build_dataset(data_cfg)  # type: ignore[arg-type]

    tracker: Any = NullRun()
    if cfg.tracking.backend == "mlflow":
        previous = read_checkpoint_extra(output_dir).get("mlflow_run_id")
        parent = read_parent_run(sweep_dir) if sweep_dir is not None else None
        tracker = MlflowRun(cfg, tags=run_tags(cfg, dataset), resume_run_id=previous, parent=parent)
        log.info("MLflow run %s in %s", tracker.run_id, uri)

    try:
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
    except BaseException:
        tracker.fail()
        raise

    _print_summary(cfg, result, tracker.run_id, uri)
    return float(result.test_metrics["test/acc"])


def _print_summary(
    cfg: DictConfig, result: TrainResult, run_id: str | None, uri: str | None
) -> None:
    p = result.protocol
    cond = (
        "clean"
        if p["train_noise"] == "none"
        else f"{p['train_noise']} noise at {p['train_snr_db']:g} dB"
    )
    lines = [
        "",
        f"{cfg.model.name} on {cfg.data.setup} ({p['noise_protocol']} protocol), "
        f"best epoch {result.best_epoch} (val acc {result.best_val_acc:.4f}), {result.seconds:.0f} s",
        f"test accuracy ({cond}): {result.test_metrics['test/acc']:.4f}   "
        f"macro-F1: {result.test_metrics['test/macro_f1']:.4f}",
    ]
    if result.grid_accuracy:
        kinds = sorted({k for k, _ in result.grid_accuracy})
        snrs = sorted({s for _, s in result.grid_accuracy})
        lines.append("test accuracy by noise and SNR (dB): " + " ".join(f"{s:>6g}" for s in snrs))
        for kind in kinds:
            lines.append(
                f"  {kind:<34}  "
                + " ".join(f"{result.grid_accuracy[(kind, s)]:6.3f}" for s in snrs)
            )
    if run_id:
        lines.append(f"MLflow run {run_id} in {uri}")
        lines.append(
            "dashboard: make ui   (or: mlflow server --backend-store-uri "
            f"{uri} --host 127.0.0.1 --port 5000)"
        )
    print("\n".join(lines), file=sys.stdout, flush=True)


__all__ = ["grid_metric_name", "log_final", "model_card", "run_job", "run_tags", "write_artifacts"]
