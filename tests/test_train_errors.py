"""fd-train refuses bad input before any training starts, with a message naming the culprit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from fault_diag.config import register_configs
from fault_diag.data import DataError
from fault_diag.tracking import TrackingError
from fault_diag.training.loop import DeviceError
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
