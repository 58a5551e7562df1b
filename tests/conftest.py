"""Shared fixtures. Integration tests read the real CWRU files named by FAULT_DIAG_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# One thread: the test models are tiny, and OpenMP threads spin badly when cores are shared.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cwru_dir() -> Path:
    """The folder with the real CWRU recordings; skips (with the reason) when the setting is absent."""
    env = os.environ.get("FAULT_DIAG_DATA_DIR")
    if not env:
        pytest.skip("FAULT_DIAG_DATA_DIR is not set: integration test on real CWRU files skipped")
    path = Path(env)
    if not path.is_dir() or not any(path.glob("*.mat")):
        pytest.skip(f"FAULT_DIAG_DATA_DIR={env} holds no .mat files: integration test skipped")
    return path


@pytest.fixture()
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the built-dataset cache and download folder at a fresh temporary folder."""
    monkeypatch.setenv("FAULT_DIAG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FAULT_DIAG_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    return tmp_path
