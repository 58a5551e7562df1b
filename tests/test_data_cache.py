"""The built-dataset cache without the CWRU files: deterministic bytes, atomic writes, damage handling."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fault_diag.data import DataConfig, build_dataset
from fault_diag.data.cache import (
    CacheWarning,
    entry_paths,
    load_entry,
    record_digest,
    save_entry,
)


def _rig(folder: Path) -> Path:
    rng = np.random.default_rng(2)
    folder.mkdir()
    rows = []
    for i, label in enumerate(["a", "a", "b", "b"]):
        np.save(folder / f"r{i}.npy", rng.standard_normal(20_000))
        rows.append(f"r{i}.npy,{label},12000")
    (folder / "manifest.csv").write_text("file,label,fs_hz\n" + "\n".join(rows) + "\n")
    return folder / "manifest.csv"


def test_entries_are_deterministic_and_complete(tmp_path: Path) -> None:
    arrays = {"windows": np.ones((3, 1, 4), np.float32), "labels": np.arange(3)}
    meta = pd.DataFrame({"split": ["train", "val", "test"], "start": [0, 10, 20]})
    save_entry("k" * 64, "x", arrays, meta, {"a": 1}, folder=tmp_path / "one")
    save_entry("k" * 64, "x", arrays, meta, {"a": 1}, folder=tmp_path / "two")
    one = sorted((tmp_path / "one").iterdir())
    two = sorted((tmp_path / "two").iterdir())
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 2  # no temp files
    for a, b in zip(one, two, strict=True):
        assert a.read_bytes() == b.read_bytes()  # parallel jobs writing the same entry agree
    with zipfile.ZipFile(one[1]) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    got = load_entry("k" * 64, "x", folder=tmp_path / "one")
    assert got is not None
    np.testing.assert_array_equal(got[0]["windows"], arrays["windows"])
    assert got[1].equals(meta) and got[2] == {"a": 1}
    # an entry whose metadata file never got written is incomplete: warned about, not used
    npz, js = entry_paths("k" * 64, "x", tmp_path / "one")
    js.unlink()
    with pytest.warns(CacheWarning, match="missing"):
        assert load_entry("k" * 64, "x", folder=tmp_path / "one") is None


def test_unwritable_cache_only_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file"  # root ignores permissions: use a file where a folder must be
        blocker.write_text("")
        monkeypatch.setenv("FAULT_DIAG_CACHE_DIR", str(blocker))
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        monkeypatch.setenv("FAULT_DIAG_CACHE_DIR", str(ro))
    ds = build_dataset(
        DataConfig(setup="generic", manifest=str(_rig(tmp_path / "rig")), window_length=512)
    )
    assert len(ds) > 0 and ds.audit.passed
    assert "could not write the dataset cache" in caplog.text


def test_editing_a_recording_invalidates_the_entry(tmp_path: Path, isolated_cache: Path) -> None:
    manifest = _rig(tmp_path / "rig")
    cfg = DataConfig(setup="generic", manifest=str(manifest), window_length=512)
    first = build_dataset(cfg)
    assert build_dataset(cfg).from_cache
    np.save(tmp_path / "rig" / "r0.npy", np.zeros(20_000))
    again = build_dataset(cfg)
    assert not again.from_cache
    assert not np.array_equal(first.windows, again.windows)
    assert np.all(again.windows[again.meta["file"] == "r0.npy"] == 0)


def test_an_entry_from_before_healthy_class_still_loads(
    tmp_path: Path, isolated_cache: Path
) -> None:
    """Entries written before healthy_class / band_hz / distinct-sample counts existed load with the
    setup's healthy class, no filter, and the counts recomputed from the window provenance."""
    manifest = _rig(tmp_path / "rig")
    manifest.write_text(manifest.read_text().replace(",a,", ",normal,"))
    cfg = DataConfig(setup="generic", manifest=str(manifest), window_length=512)
    fresh = build_dataset(cfg)
    assert fresh.healthy_class == "normal" and fresh.protocol["band_hz"] is None
    (js,) = (isolated_cache / "cache" / "datasets").glob("generic-*.json")
    record = json.loads(js.read_text())
    info = record["info"]
    del info["healthy_class"]
    for key in ("healthy_class", "band_hz", "band_filter", "eval_windows_overlap"):
        del info["protocol"][key]
    del info["audit"]["n_val_samples_distinct"], info["audit"]["n_test_samples_distinct"]
    # Sealed as an intact entry of that shape: an entry edited after it was written (digest
    # mismatch) is never used, see test_edited_metadata_is_detected_and_rebuilt.
    record["sha256"] = record_digest(record)
    js.write_text(json.dumps(record))
    old = build_dataset(cfg)
    assert old.from_cache
    assert old.healthy_class == "normal" and old.protocol["healthy_class"] == "normal"
    assert old.protocol["band_hz"] is None and old.protocol["band_filter"] is None
    assert old.audit.n_test_samples_distinct == fresh.audit.n_test_samples_distinct > 0
    assert old.audit.n_val_samples_distinct == fresh.audit.n_val_samples_distinct > 0
    # the key of a config without the new fields is the key such an entry was written under
    from fault_diag.data.dataset import _config_for_key

    assert {"band_hz", "healthy_class", "band_filter_sha256"}.isdisjoint(_config_for_key(cfg))
    # a config that sets healthy_class is another entry (its value is checked, then stored)
    assert not build_dataset(DataConfig(**{**cfg.to_dict(), "healthy_class": "b"})).from_cache


def _entry(isolated_cache: Path) -> tuple[Path, dict]:
    (js,) = (isolated_cache / "cache" / "datasets").glob("generic-*.json")
    return js, json.loads(js.read_text())


def test_edited_metadata_is_detected_and_rebuilt(tmp_path: Path, isolated_cache: Path) -> None:
    """Moving test windows into training by editing the cached split column must not go unseen:
    the entry's one digest covers its metadata as well as its arrays."""
    cfg = DataConfig(setup="generic", manifest=str(_rig(tmp_path / "rig")), window_length=512)
    fresh = build_dataset(cfg)
    assert build_dataset(cfg).from_cache
    js, record = _entry(isolated_cache)
    split = record["meta"]["columns"]["split"]
    moved = [i for i, s in enumerate(split) if s == "test"]
    for i in moved:
        split[i] = "train"
    js.write_text(json.dumps(record))
    with pytest.warns(CacheWarning, match=rf"{js.name} not used: .*modified after it was written"):
        again = build_dataset(cfg)
    assert not again.from_cache  # rebuilt, never used
    assert again.meta.equals(fresh.meta) and (again.meta["split"] == "test").sum() == len(moved)
    assert build_dataset(cfg).from_cache  # the rebuilt entry is sound again
    # an entry without a digest (an older version's, or the field removed) cannot be trusted
    js, record = _entry(isolated_cache)
    del record["sha256"]
    js.write_text(json.dumps(record))
    with pytest.warns(CacheWarning, match="carries no checksum of its metadata"):
        assert not build_dataset(cfg).from_cache


def test_the_leak_audit_runs_on_every_load(tmp_path: Path, isolated_cache: Path) -> None:
    """A cache hit reports a fresh audit of the windows it holds, never the stored verdict; an entry
    whose windows fail it (sealed with a valid digest, e.g. written by a buggy build) is not used."""
    cfg = DataConfig(setup="generic", manifest=str(_rig(tmp_path / "rig")), window_length=512)
    fresh = build_dataset(cfg)
    js, record = _entry(isolated_cache)
    stored = record["info"]["audit"]
    stored.update(n_test_windows=12345, n_train_windows=1, min_gap_samples=999_999)
    record["sha256"] = record_digest(record)
    js.write_text(json.dumps(record))
    hit = build_dataset(cfg)
    assert hit.from_cache and hit.audit == fresh.audit  # the counts of the windows, not 12345
    # a training window moved onto a test window: the fresh audit fails, the entry is rebuilt
    cols = record["meta"]["columns"]
    test = cols["split"].index("test")
    train = cols["split"].index("train")
    cols["start"][train], cols["stop"][train] = cols["start"][test], cols["stop"][test]
    record["sha256"] = record_digest(record)
    js.write_text(json.dumps(record))
    with pytest.warns(CacheWarning, match=rf"{js.name} fails the leak audit on load"):
        again = build_dataset(cfg)
    assert not again.from_cache and again.audit.passed and again.meta.equals(fresh.meta)


def test_cache_files_are_written_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails half-way leaves the previous entry (or none) and no temporary file."""
    import fault_diag.data.cache as cache

    arrays = {"windows": np.ones((3, 1, 4), np.float32), "labels": np.arange(3)}
    meta = pd.DataFrame({"split": ["train", "val", "test"], "start": [0, 10, 20]})
    save_entry("k" * 64, "x", arrays, meta, {"a": 1}, folder=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(record: dict, fh) -> None:  # the disk fills up after a few bytes
        fh.write('{"key": ')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.json, "dump", broken)
    with pytest.raises(OSError, match="No space"):
        save_entry("k" * 64, "x", arrays, meta, {"a": 2}, folder=tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()
    assert load_entry("k" * 64, "x", folder=tmp_path)[2] == {"a": 1}
