"""fd-data: download / verify / summary / catalogue, text and --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fault_diag.cli.data import run


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_module_entry_point_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fault_diag.cli.data", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    for cmd in ("download", "verify", "summary"):
        assert cmd in out.stdout


def test_catalogue_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["catalogue", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 161
    assert run(["catalogue", "--group", "normal"]) == 0
    out = capsys.readouterr().out
    assert "97.mat" in out and "100.mat" in out and "105.mat" not in out


def test_unknown_setup_and_missing_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAULT_DIAG_DATA_DIR", str(tmp_path))
    assert run(["summary", "--setup", "cwru3"]) == 2  # a bad argument (a missing folder: 1)
    err = capsys.readouterr().err
    assert (
        "unknown data setup 'cwru3'" in err
        and "['cwru10', 'cwru4', 'hit_mfs7', 'hit_selfbuilt7', 'hit_sm7', 'generic']" in err
    )
    assert err.startswith("fd-data summary: error: ") and err.count("\n") == 1
    monkeypatch.setenv("FAULT_DIAG_DATA_DIR", str(tmp_path / "gone"))
    assert run(["summary"]) == 1
    err = capsys.readouterr().err
    assert f"recordings folder {tmp_path / 'gone'} does not exist" in err


@pytest.mark.integration
def test_summary_on_real_data(
    cwru_dir: Path, isolated_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["summary", "--json"]) == 0
    rep = _json(capsys)
    assert rep["setup"] == "cwru10" and rep["source_rates_hz"] == [12000, 48000]
    assert rep["audit"]["passed"] is True
    assert rep["missing"]["files"] == ["98.mat", "99.mat", "100.mat"]
    assert (
        rep["windows"]["normal"]["test"] > 0
        and rep["windows"]["total"]["total"] == rep["n_windows"]
    )
    assert run(["summary"]) == 0
    text = capsys.readouterr().out
    assert "leak audit: PASSED" in text and "normal: loads [1, 2, 3] absent" in text
    assert "from cache: True" in text
    load_split = Path(__file__).resolve().parents[1] / "conf" / "data" / "cwru10_load_split.yaml"
    assert run(["summary", "--config", str(load_split)]) == 1
    assert "normal has no recording at test loads [3]" in capsys.readouterr().err
    args = ["summary", "--setup", "cwru4", "--set", "window_length=1024", "balance=undersample"]
    assert run([*args, "--json", "--no-cache"]) == 0
    rep = _json(capsys)
    assert rep["window_length"] == 1024 and rep["class_names"][1] == "inner_race"


@pytest.mark.integration
def test_verify_and_download_with_data_dir(
    cwru_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["verify", "--setup", "cwru10", "--json"]) == 0
    rep = _json(capsys)
    assert rep["counts"] == {"ok": 37, "missing": 3}
    assert run(["verify", "--setup", "cwru10", "--strict"]) == 1
    capsys.readouterr()
    (tmp_path / "105.mat").write_bytes(b"corrupt")
    assert run(["verify", "--files", "105", "--dir", str(tmp_path)]) == 1
    assert "hash_mismatch" in capsys.readouterr().out
    # FAULT_DIAG_DATA_DIR is set: nothing is downloaded; the setup stays usable without 98-100
    assert run(["download", "--setup", "cwru10", "--json", "--no-progress"]) == 0
    rep = _json(capsys)
    assert len(rep["files"]) == 37 and set(rep["errors"]) == {"98.mat", "99.mat", "100.mat"}
    assert rep["classes_without_files"] == []
    assert run(["download", "--files", "98", "--json"]) == 1
