"""The data-source seam (issue 16) without real recordings: lookup by name, bad input (unknown source,
a setup of another source, a condition split that cannot be honoured, a file whose single variable is
missing or not 1-D), a third source in a few lines, and the import weight of the light modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fault_diag.cli.data import run
from fault_diag.data.config import DataConfig
from fault_diag.data.dataset import _config_for_key, build_dataset
from fault_diag.data.errors import (
    ConfigError,
    NoUsableVariableError,
    RecordingReadError,
    UnknownSourceError,
)
from fault_diag.data.setups import ClassSpec, RecordingSpec, Setup
from fault_diag.data.sources import get_source, list_sources, register_source, source_for_setup
from fault_diag.data.sources.base import DataSource
from fault_diag.data.sources.hit_sm import read_single_variable


def test_sources_are_looked_up_by_name() -> None:
    assert {"cwru", "hit_sm", "manifest"} <= set(list_sources())
    assert source_for_setup("cwru10").name == "cwru"
    assert source_for_setup("hit_selfbuilt7").name == "hit_sm"
    assert source_for_setup("generic").name == "manifest"
    with pytest.raises(
        UnknownSourceError, match=r"unknown data source 'cwru2'; known sources: cwru, hit_sm"
    ):
        get_source("cwru2")


def test_cli_refuses_an_unknown_source_and_a_setup_of_another_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["summary", "--source", "nasa"]) == 2
    err = capsys.readouterr().err
    assert "unknown data source 'nasa'; known sources: cwru, hit_sm, manifest" in err
    assert run(["summary", "--source", "hit_sm", "--setup", "cwru10"]) == 2
    err = capsys.readouterr().err
    assert "--setup cwru10: not a setup of source 'hit_sm' (its setups: hit_mfs7" in err
    assert run(["download", "--source", "hit_sm", "--files", "105.mat"]) == 2
    assert "not a file of the HIT-SM catalogue" in capsys.readouterr().err


def test_condition_split_settings_are_checked() -> None:
    hit = {"setup": "hit_mfs7", "channel": "single-variable", "split": "condition"}
    with pytest.raises(ConfigError, match="data.condition=None"):
        DataConfig.from_any(hit).validate()
    with pytest.raises(
        ConfigError, match=r"not a condition of source 'hit_sm' \(its conditions: speed, rig\)"
    ):
        DataConfig.from_any(
            {**hit, "condition": "load", "train_conditions": [0], "test_conditions": [1]}
        ).validate()
    with pytest.raises(ConfigError, match="disjoint"):
        DataConfig.from_any(
            {**hit, "condition": "speed", "train_conditions": [600], "test_conditions": [600]}
        ).validate()
    with pytest.raises(ConfigError, match="expected 'single-variable' for HIT-SM"):
        DataConfig(setup="hit_mfs7").validate()
    with pytest.raises(ConfigError, match=r"one of \['DE', 'FE', 'BA'\] for CWRU setups"):
        DataConfig(channel="single-variable").validate()


def test_a_condition_value_that_does_not_exist_is_named(tmp_path: Path) -> None:
    cfg = DataConfig.from_any(
        {
            "setup": "hit_mfs7",
            "channel": "single-variable",
            "split": "condition",
            "condition": "speed",
            "train_conditions": [600, 900],
            "test_conditions": [1500],
            "root": str(tmp_path),
        }
    )
    with pytest.raises(
        ConfigError,
        match=r"\[1500\] are not speeds of setup 'hit_mfs7' \(its speeds: \[600, 900, 1200\]\)",
    ):
        build_dataset(cfg, use_cache=False)


def test_cwru_cache_key_fields_unchanged() -> None:
    # the new condition-split fields are left out while unset: cwru10 entries stay valid
    key = _config_for_key(DataConfig())
    assert not {"condition", "train_conditions", "test_conditions"} & set(key)


def test_single_variable_reader_refuses_bad_files(tmp_path: Path) -> None:
    import scipy.io

    two = tmp_path / "two.mat"
    scipy.io.savemat(two, {"a": np.zeros(100), "b": np.zeros(100)})
    with pytest.raises(NoUsableVariableError, match=r"exactly one variable.*holds 2: 'a'"):
        read_single_variable(two)
    none = tmp_path / "none.mat"
    scipy.io.savemat(none, {})
    with pytest.raises(NoUsableVariableError, match="holds 0: none"):
        read_single_variable(none)
    matrix = tmp_path / "matrix.mat"
    scipy.io.savemat(matrix, {"z10_1": np.zeros((4, 100))})
    with pytest.raises(RecordingReadError, match=r"'z10_1' \(4 x 100 double\) is not a 1-D signal"):
        read_single_variable(matrix)
    ok = tmp_path / "ok.mat"
    scipy.io.savemat(ok, {"VarName5": np.arange(50.0)[:, None]})
    sig = read_single_variable(ok)
    assert sig.variable == "VarName5" and sig.data.shape == (50,)


class ToySource(DataSource):
    """A third source in a few lines (docs/own-data.md): .npy files listed in a table."""

    name = "toy"
    title = "toy"
    conditions = ()
    rows = pd.DataFrame(
        {
            "file": ["a0.npy", "a1.npy", "b0.npy", "b1.npy"],
            "label": ["a", "a", "b", "b"],
            "sampling_rate_hz": [1000] * 4,
            "sha256": [""] * 4,
        }
    )

    def catalogue(self) -> pd.DataFrame:
        return self.rows.copy()

    def setups(self) -> dict[str, Setup]:
        return {
            "toy2": Setup(
                "toy2",
                "two classes",
                (ClassSpec("a", {"label": ("a",)}), ClassSpec("b", {"label": ("b",)})),
            )
        }

    def spec_for(self, row: pd.Series, root: Path, cfg: DataConfig) -> RecordingSpec:
        return RecordingSpec(
            str(row["file"]),
            root / str(row["file"]),
            str(row["class_name"]),
            1000,
            None,
            cfg.channel,
        )


def test_a_third_source_in_a_few_lines(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fault_diag.data.sources as sources

    monkeypatch.setattr(sources, "_LOADED", dict(sources._LOADED))  # unregistered afterwards
    rng = np.random.default_rng(0)
    for f in ToySource.rows["file"]:
        np.save(tmp_path / f, rng.normal(size=4000))
    register_source(ToySource())
    ds = build_dataset(
        DataConfig(setup="toy2", fs_hz=1000, window_length=100, train_hop=50, root=str(tmp_path))
    )
    assert ds.class_names == ["a", "b"] and ds.audit.passed and ds.protocol["source"] == "toy"


def test_light_modules_import_no_pandas_scipy_or_torch() -> None:
    code = (
        "import sys, fault_diag.data.config, fault_diag.data.sources, fault_diag.data; "
        "print(sorted(m for m in ('pandas', 'scipy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
