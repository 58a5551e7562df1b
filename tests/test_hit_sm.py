"""HIT-SM as a built-in source, on the real recordings (tests/helpers.py hit_sm_dir(): skipped, saying
why, when they are absent): catalogue against the files, the reader, the setups, the time, speed and
rig splits with their audit, the level audit, and the download from a loopback server."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import hit_sm_dir

from fault_diag.data.config import DataConfig
from fault_diag.data.dataset import build_dataset
from fault_diag.data.errors import MissingClassesError
from fault_diag.data.sources import get_source
from fault_diag.data.sources.hit_sm import CLASSES, read_single_variable
from fault_diag.io import file_sha256 as sha256_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hit_dir() -> Path:
    return hit_sm_dir()


def _cfg(hit_dir: Path, **kw: object) -> DataConfig:
    base: dict[str, object] = {
        "setup": "hit_mfs7",
        "channel": "single-variable",
        "fs_hz": 25600,
        "train_hop": 2048,
        "root": str(hit_dir),
    }
    base.update(kw)
    return DataConfig.from_any(base).validate()


def test_catalogue_matches_the_manifest_and_the_files(hit_dir: Path) -> None:
    import pandas as pd

    cat = get_source("hit_sm").catalogue()
    manifest = pd.read_csv(hit_dir / "MANIFEST.csv")
    assert len(cat) == 42 == len(manifest)
    assert dict(zip(cat["file"], cat["sha256"], strict=True)) == dict(
        zip(manifest["file"], manifest["sha256"], strict=True)
    )
    some = cat.iloc[[0, 20, 41]]
    for key, sha in zip(some["file"], some["sha256"], strict=True):
        assert sha256_of(hit_dir / key) == sha


def test_reader_takes_the_only_variable_whatever_its_name(hit_dir: Path) -> None:
    sig = read_single_variable(hit_dir / "MFS" / "Normal_1200.mat", "VarName5")
    assert sig.variable == "VarName5" and sig.single_variable and sig.data.shape == (262144,)
    sig = read_single_variable(hit_dir / "SelfBuilt" / "IR2_600.mat", "wrong_name")
    assert sig.variable == "inside2d_600_1" and "catalogue lists 'wrong_name'" in sig.notes[0]


def test_time_split_of_each_rig(hit_dir: Path, isolated_cache: Path) -> None:
    for setup in ("hit_mfs7", "hit_selfbuilt7"):
        ds = build_dataset(_cfg(hit_dir, setup=setup), use_cache=False)
        assert ds.class_names == list(CLASSES) and ds.healthy_class == "Normal"
        assert ds.audit.passed and ds.channel == "single-variable"
        counts = ds.summary()
        assert (counts.loc[list(CLASSES), ["train", "val", "test"]] > 0).all().all()
        assert set(ds.meta["speed_rpm"]) == {600, 900, 1200}
        assert ds.protocol["source"] == "hit_sm" and "HIT-SM" in ds.protocol["note"]


def test_leave_one_speed_out_tests_only_the_held_out_speed(
    hit_dir: Path, isolated_cache: Path
) -> None:
    cfg = _cfg(
        hit_dir,
        split="condition",
        condition="speed",
        train_conditions=[600, 900],
        test_conditions=[1200],
        split_fractions=[0.85, 0.15, 0.0],
    )
    ds = build_dataset(cfg, use_cache=False)
    meta = ds.meta
    assert set(meta.loc[meta["split"] == "test", "speed_rpm"]) == {1200}
    assert set(meta.loc[meta["split"] != "test", "speed_rpm"]) == {600, 900}
    train_files = set(meta.loc[meta["split"] == "train", "file"])
    assert not train_files & set(meta.loc[meta["split"] == "test", "file"])
    assert ds.audit.passed and ds.protocol["test_conditions"] == [1200]
    roles = {r["file"]: r["role"] for r in ds.protocol["recordings"]}
    assert roles["MFS/IR2_1200.mat"] == "load_test" and roles["MFS/IR2_600.mat"] == "load_train"


def test_cross_rig_trains_on_one_rig_and_tests_on_the_other(
    hit_dir: Path, isolated_cache: Path
) -> None:
    cfg = _cfg(
        hit_dir,
        setup="hit_sm7",
        split="condition",
        condition="rig",
        train_conditions=["MFS"],
        test_conditions=["SelfBuilt"],
        split_fractions=[0.85, 0.15, 0.0],
    )
    ds = build_dataset(cfg, use_cache=False)
    meta = ds.meta
    assert set(meta.loc[meta["split"] == "test", "rig"]) == {"SelfBuilt"}
    assert set(meta.loc[meta["split"] != "test", "rig"]) == {"MFS"}
    assert ds.class_names == list(CLASSES) and ds.audit.passed


def test_a_condition_leaving_a_class_without_data_names_both(hit_dir: Path, tmp_path: Path) -> None:
    # a copy of the MFS folder without IR5 at 600 and 900 rpm: IR5 has no training recording
    root = tmp_path / "hit"
    shutil.copytree(hit_dir / "MFS", root / "MFS")
    for rpm in (600, 900):
        (root / "MFS" / f"IR5_{rpm}.mat").unlink()
    cfg = _cfg(
        hit_dir,
        root=str(root),
        split="condition",
        condition="speed",
        train_conditions=[600, 900],
        test_conditions=[1200],
        split_fractions=[0.85, 0.15, 0.0],
    )
    with pytest.raises(
        MissingClassesError, match=r"IR5 has no recording at train speeds \[600, 900\]"
    ):
        build_dataset(cfg, use_cache=False)


def test_level_audit_finds_the_gain_signature(hit_dir: Path, isolated_cache: Path) -> None:
    from fault_diag.data.levels import level_report

    ds = build_dataset(_cfg(hit_dir), use_cache=False)
    x, y = ds.split("train")
    rep = level_report(x, y, ds.class_names)
    # README: MFS Normal rms ~0.0004 against 0.017-0.11 for the faults
    assert "Normal" in rep["separated_by_level"]
    assert rep["classes"]["Normal"]["rms_median"] < 0.001 < rep["classes"]["IR5"]["rms_median"]


def test_cli_summary_of_the_speed_split(
    hit_dir: Path,
    isolated_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fault_diag.cli.data import run

    monkeypatch.setenv("FAULT_DIAG_HIT_SM_DIR", str(hit_dir))
    conf = Path(__file__).resolve().parents[1] / "conf" / "data" / "hit_mfs7_speed_split.yaml"
    assert (
        run(["summary", "--source", "hit_sm", "--config", str(conf), "--set", "train_hop=4096"])
        == 0
    )
    out = capsys.readouterr().out
    assert "condition split on speed: train [600, 900], test [1200]" in out
    assert "leak audit: PASSED" in out and "level audit" in out
    assert run(["verify", "--source", "hit_sm", "--setup", "hit_mfs7"]) == 0
    assert "'ok': 21" in capsys.readouterr().out


class _Server:
    def __init__(self, root: Path) -> None:
        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/raw"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(hit_dir: Path, tmp_path: Path) -> Iterator[_Server]:
    """The authors' layout (``SpectraQuest MFS dataset/IR2_600.mat``, a space in the folder name);
    IR2_900.mat corrupted (one byte changed)."""
    folder = tmp_path / "www" / "raw" / "SpectraQuest MFS dataset"
    folder.mkdir(parents=True)
    shutil.copy(hit_dir / "MFS" / "IR2_600.mat", folder / "IR2_600.mat")
    data = bytearray((hit_dir / "MFS" / "IR2_900.mat").read_bytes())
    data[4000] ^= 0xFF
    (folder / "IR2_900.mat").write_bytes(bytes(data))
    srv = _Server(tmp_path / "www")
    yield srv
    srv.close()


def test_download_from_a_loopback_mirror(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAULT_DIAG_DATA_DIR", raising=False)
    monkeypatch.delenv("FAULT_DIAG_HIT_SM_DIR", raising=False)
    monkeypatch.setenv("FAULT_DIAG_DOWNLOAD_DIR", str(tmp_path / "dl" / "cwru"))
    source = get_source("hit_sm")
    assert source.download_dir() == tmp_path / "dl" / "hit_sm"
    assert source.url("MFS/IR2_600.mat").startswith(
        "https://github.com/hitwzc/Bearing-datasets/raw/12e46cd1b4a40f396c2bd6e245be5bafe18b1989/"
        "SpectraQuest%20MFS%20dataset/IR2_600.mat"
    )
    report = source.fetch(
        ["MFS/IR2_600.mat", "MFS/IR2_900.mat"], base_url=server.url, progress=False
    )
    path = report.paths["MFS/IR2_600.mat"]
    assert path == tmp_path / "dl" / "hit_sm" / "MFS" / "IR2_600.mat"
    assert sha256_of(path) == source.expected_sha256("MFS/IR2_600.mat")
    assert "does not match the catalogue SHA-256" in report.errors["MFS/IR2_900.mat"]
    assert not (tmp_path / "dl" / "hit_sm" / "MFS" / "IR2_900.mat").exists()
    assert np.isfinite(read_single_variable(path).data).all()
