"""The CWRU catalogue: complete, consistent with the published hash list, loadable from the package."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from fault_diag.data.errors import DataError
from fault_diag.data.sources.cwru.catalogue import file_info, load_catalogue, official_url

SHA_CSV_ENV = "FAULT_DIAG_CWRU_SHA256_CSV"


def _sha_csv() -> Path:
    """The shared hash list (../shared/data/cwru_sha256.csv next to the data folder)."""
    env = os.environ.get(SHA_CSV_ENV)
    if env:
        return Path(env)
    data_dir = os.environ.get("FAULT_DIAG_DATA_DIR")
    candidates = [Path(data_dir).parent / "cwru_sha256.csv"] if data_dir else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "cwru_sha256.csv")
    for c in candidates:
        if c.is_file():
            return c
    pytest.skip("cwru_sha256.csv not found (set FAULT_DIAG_DATA_DIR or FAULT_DIAG_CWRU_SHA256_CSV)")


def test_catalogue_covers_every_published_group() -> None:
    cat = load_catalogue()
    assert cat["file_number"].is_unique
    assert cat.groupby("group").size().to_dict() == {
        "normal": 4,
        "12k_DE": 60,
        "48k_DE": 52,
        "12k_FE": 45,
    }
    # normal baseline 97-100 is 48 kHz, loads 0-3
    normal = cat[cat["fault"] == "normal"]
    assert list(normal["file_number"]) == [97, 98, 99, 100]
    assert set(normal["sampling_rate_hz"]) == {48000}
    assert list(normal["load_hp"]) == [0, 1, 2, 3]
    # outer race at the three positions, 0.028 in faults
    assert set(cat["or_position"]) == {"", "3:00", "6:00", "12:00"}
    assert set(cat.loc[cat["fault_size_in"] == 0.028, "file_number"]) == set(range(3001, 3009))
    assert set(cat["location"]) == {"DE", "FE"}


def test_catalogue_rows_and_urls() -> None:
    row = file_info(105)
    assert (row["group"], row["fault"], row["fault_size_in"], row["load_hp"]) == (
        "12k_DE",
        "inner_race",
        0.007,
        0,
    )
    assert row["url"] == "https://engineering.case.edu/sites/default/files/105.mat"
    assert official_url(3001) == "https://engineering.case.edu/sites/default/files/3001.mat"
    assert file_info(217)["group"] == "48k_DE"  # 48 kHz IR021 at 3 HP is 217, not 216
    assert file_info(313)["or_position"] == "6:00"
    with pytest.raises(DataError, match="216.mat is not in the CWRU catalogue"):
        file_info(216)


def test_cwru10_file_table_matches_design() -> None:
    from fault_diag.data.setups import setup_catalogue

    cat = setup_catalogue("cwru10")
    table = {name: sorted(grp["file_number"]) for name, grp in cat.groupby("class_name")}
    assert table == {
        "normal": [97, 98, 99, 100],
        "IR007": [105, 106, 107, 108],
        "B007": [118, 119, 120, 121],
        "OR007@6": [130, 131, 132, 133],
        "IR014": [169, 170, 171, 172],
        "B014": [185, 186, 187, 188],
        "OR014@6": [197, 198, 199, 200],
        "IR021": [209, 210, 211, 212],
        "B021": [222, 223, 224, 225],
        "OR021@6": [234, 235, 236, 237],
    }


def test_every_hashed_file_is_catalogued_with_matching_metadata() -> None:
    cat = load_catalogue().set_index("file_name")
    with _sha_csv().open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 119
    for r in rows:
        assert r["file"] in cat.index, r["file"]
        c = cat.loc[r["file"]]
        assert c["sha256"] == r["sha256"], r["file"]
        assert int(c["sampling_rate_hz"]) == int(r["sampling_rate_hz"]), r["file"]
        assert c["location"] == r["location"], r["file"]
        assert c["fault"] == r["fault"], r["file"]
        assert float(c["fault_size_in"]) == float(r["fault_size_in"]), r["file"]
        assert int(c["load_hp"]) == int(r["load_hp"]), r["file"]
        assert c["or_position"] == r["or_position"], r["file"]
    # and nothing else claims a hash
    assert (cat["sha256"] != "").sum() == 119


def test_generator_script_reproduces_the_shipped_csv(tmp_path: Path) -> None:
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_cwru_catalogue.py"
    spec = importlib.util.spec_from_file_location("make_cwru_catalogue", script)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "cat.csv"
    assert mod.main(["--sha256-csv", str(_sha_csv()), "--out", str(out)]) == 0
    shipped = Path(__file__).resolve().parents[1] / "fault_diag" / "data" / "cwru_catalogue.csv"
    assert out.read_text() == shipped.read_text()
