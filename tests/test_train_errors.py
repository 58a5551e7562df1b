"""fd-train refuses bad input before any training starts, with a message naming the culprit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from fault_diag.config import register_configs
from fault_diag.data import DataError
from fault_diag.tracking import TrackingError
from fault_diag.training.engine import DeviceError
from fault_diag.training.run import run_job

CONF = Path(__file__).resolve().parents[1] / "conf"
register_configs()


def _cfg(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "config",
            overrides=[
                f"paths.output_dir={tmp_path / 'run'}",
                "trainer.progress=false",
                *overrides,
            ],
        )


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_gpu_fails_before_training(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAULT_DIAG_ROOT", str(tmp_path))
    with pytest.raises(DeviceError, match=r"trainer.device='cuda'.*no CUDA device"):
        run_job(_cfg(tmp_path, "trainer.device=cuda", "tracking=none"))
    assert not (tmp_path / "run").exists()


def test_unwritable_store_fails_before_training(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAULT_DIAG_ROOT", str(tmp_path))
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the store's folder should be")
    uri = f"sqlite:///{blocker / 'mlflow.db'}"
    with pytest.raises(TrackingError, match="not_a_folder"):
        run_job(_cfg(tmp_path, f"tracking.tracking_uri={uri}"))
    assert not (tmp_path / "run").exists()


def test_data_folder_without_files_fails_before_training(tmp_path: Path, monkeypatch) -> None:
    empty = tmp_path / "empty_data"
    empty.mkdir()
    monkeypatch.setenv("FAULT_DIAG_ROOT", str(tmp_path))
    monkeypatch.setenv("FAULT_DIAG_DATA_DIR", str(empty))
    monkeypatch.setenv("FAULT_DIAG_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="empty_data"):
        run_job(_cfg(tmp_path))
    assert not (tmp_path / "run").exists()
    # No MLflow run was opened for a job that could not start.
    db = tmp_path / "mlflow.db"
    if db.exists():
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        exps = client.search_experiments()
        assert not client.search_runs([e.experiment_id for e in exps])


# ------------------------------------------------- the command line: one line, no empty run folder


def _fd_train(root: Path, *overrides: str, env: dict[str, str] | None = None):
    """``fd-train`` as a user runs it, in a throwaway project root."""
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "fault_diag.cli.train", *overrides],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "FAULT_DIAG_ROOT": str(root), **(env or {})},
    )


def _runs(root: Path) -> list[str]:
    runs = root / "outputs" / "runs"
    return sorted(str(p.relative_to(runs)) for p in runs.rglob("*")) if runs.exists() else []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epochs=-1", "fd-train: error: trainer.epochs=-1 must be >= 1"),
        (
            "noise.kind=brown",
            "fd-train: error: noise.kind='brown' is not a known noise kind; expected one of:",
        ),
        (
            "trainer.epochs=abc",  # refused by Hydra while composing: no run folder at all
            "fd-train: error: Error merging override trainer.epochs=abc; Value 'abc' of type 'str' "
            "could not be converted to Integer; full_key: trainer.epochs",
        ),
    ],
)
def test_value_errors_are_one_line_and_leave_no_run_folder(
    tmp_path: Path, override: str, message: str
) -> None:
    proc = _fd_train(tmp_path, override, "tracking=none")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stdout == ""
    assert _runs(tmp_path) == [], "an empty outputs/runs/<date>/<time>_... folder was left"


def test_debug_prints_the_traceback_too(tmp_path: Path) -> None:
    proc = _fd_train(tmp_path, "trainer.epochs=-1", "tracking=none", "--debug")
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr and "ConfigError" in proc.stderr
    assert (
        proc.stderr.rstrip().splitlines()[-1] == "fd-train: error: trainer.epochs=-1 must be >= 1"
    )
    proc = _fd_train(tmp_path, "trainer.epochs=-1", "tracking=none", env={"FAULT_DIAG_DEBUG": "1"})
    assert "Traceback (most recent call last)" in proc.stderr


def test_a_failed_rerun_keeps_a_run_folder_with_results(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "artifacts").mkdir(parents=True)
    (run / "artifacts" / "model_card.json").write_text("{}")
    (run / "train.log").write_text("the earlier run's log\n")
    proc = _fd_train(tmp_path, "trainer.epochs=-1", "tracking=none", f"hydra.run.dir={run}")
    assert proc.returncode == 2
    assert (run / "artifacts" / "model_card.json").read_text() == "{}"
    assert (run / "train.log").read_text().startswith("the earlier run's log")


def test_remove_if_only_bookkeeping(tmp_path: Path) -> None:
    from fault_diag.cli.train import remove_if_only_bookkeeping

    def shell(path: Path, *extra: str) -> Path:
        (path / ".hydra").mkdir(parents=True)
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            (path / ".hydra" / name).write_text("x")
        (path / "train.log").write_text("")
        for name in extra:
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x")
        return path

    day = tmp_path / "outputs" / "runs" / "2026-01-01"
    empty = shell(day / "12-00-00_wdcnn_none")
    assert remove_if_only_bookkeeping(empty)
    assert not day.exists() and (tmp_path / "outputs" / "runs").is_dir()  # the emptied day too
    for extra in ("checkpoints/last.pt", "artifacts/model_card.json", ".hydra/notes.txt", "x.csv"):
        kept = shell(tmp_path / extra.replace("/", "_"), extra)
        assert not remove_if_only_bookkeeping(kept)
        assert (kept / extra).exists() and (kept / ".hydra" / "config.yaml").exists()


@pytest.mark.integration
def test_a_garbage_sqlite_store_is_one_line(
    tmp_path: Path, cwru_dir: Path, tmp_path_factory
) -> None:
    import os

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    proc = _fd_train(
        tmp_path,
        "model=wdcnn",
        "trainer.epochs=1",
        "data.loads=[0]",
        "data.train_hop=2048",
        "trainer.progress=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        env={
            "MLFLOW_TRACKING_URI": f"sqlite:///{garbage}",
            "FAULT_DIAG_DATA_DIR": str(cwru_dir),
            "FAULT_DIAG_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "fd-dataset-cache"),
        },
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("fd-train: error: ")]
    assert len(lines) == 1 and "garbage.db" in lines[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
