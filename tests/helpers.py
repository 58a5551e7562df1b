"""Helpers shared by the end-to-end tests (imported by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path


def project_env(root: Path, cwru_dir: Path, cache: Path) -> dict[str, str]:
    """Environment for running the project's commands in a throwaway project root.

    The MLflow store, Hydra outputs and artifacts land under ``root``; the recordings are read from
    ``cwru_dir``; built datasets are cached in ``cache`` (shared between tests to save rebuilds).
    """
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        FAULT_DIAG_ROOT=str(root),
        FAULT_DIAG_DATA_DIR=str(cwru_dir),
        FAULT_DIAG_CACHE_DIR=str(cache),
        MPLBACKEND="Agg",
        PYTHONUNBUFFERED="1",
    )
    return env


def hit_sm_dir() -> Path:
    """The real HIT-SM recordings: $FAULT_DIAG_HIT_SM_DIR, else a ``hit_sm`` folder beside the
    CWRU folder ($FAULT_DIAG_DATA_DIR/../hit_sm); skips, saying so, when neither holds them."""
    import pytest

    env = os.environ.get("FAULT_DIAG_HIT_SM_DIR")
    cwru = os.environ.get("FAULT_DIAG_DATA_DIR")
    folder = Path(env) if env else (Path(cwru).parent / "hit_sm" if cwru else None)
    if folder is None or not (folder / "MANIFEST.csv").is_file():
        pytest.skip(
            "HIT-SM recordings not found (set FAULT_DIAG_HIT_SM_DIR to the folder with "
            f"MANIFEST.csv; looked in {folder}): real single-variable .mat test skipped"
        )
    return folder
