"""Splitting, windowing, balancing and the leak audit, on synthetic recordings (no CWRU files needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

from fault_diag.data import DataConfig, audit_windows, band_limit, build_dataset
from fault_diag.data.audit import AuditReport, distinct_samples
from fault_diag.data.errors import (
    ConfigError,
    LeakageError,
    ManifestError,
    MissingClassesError,
    MissingDataFolderError,
    NonFiniteSignalError,
    RecordingTooShortError,
    UnknownSetupError,
)
from fault_diag.data.splits import Region, plan_recording, time_regions, undersample

# ------------------------------------------------------------------ regions


def test_time_regions_are_contiguous_ordered_and_gapped() -> None:
    regions = time_regions(120_000, [0.7, 0.15, 0.15], guard_gap=2048)
    assert [r.split for r in regions] == ["train", "val", "test"]
    assert regions[0].start == 0 and regions[-1].stop == 120_000
    for a, b in zip(regions, regions[1:], strict=False):
        assert b.start - a.stop == 2048
    lengths = np.array([r.length for r in regions])
    assert np.allclose(lengths / lengths.sum(), [0.7, 0.15, 0.15], atol=1e-3)
    no_val = time_regions(10_000, [0.8, 0.0, 0.2], guard_gap=100)
    assert [(r.split, r.start, r.stop) for r in no_val] == [
        ("train", 0, 7920),
        ("test", 8020, 10000),
    ]


def test_plan_recording_hops_and_too_short() -> None:
    planned = plan_recording(
        source="r.npy",
        n_samples=100_000,
        role="time",
        fractions=[0.7, 0.15, 0.15],
        guard_gap=1024,
        window_length=1024,
        train_hop=256,
        eval_hop=1024,
        fs_hz=12000,
    )
    by = {r.split: s for r, s in planned}
    assert np.all(np.diff(by["train"]) == 256)
    assert np.all(np.diff(by["val"]) == 1024) and np.all(np.diff(by["test"]) == 1024)
    for region, starts in planned:
        assert starts.min() >= region.start and starts.max() + 1024 <= region.stop
    with pytest.raises(RecordingTooShortError, match=r"short\.npy.*5000 samples at 12000 Hz.*val"):
        plan_recording(
            source="short.npy",
            n_samples=5000,
            role="time",
            fractions=[0.7, 0.15, 0.15],
            guard_gap=1024,
            window_length=1024,
            train_hop=256,
            eval_hop=1024,
            fs_hz=12000,
        )


# ------------------------------------------------------------------ audit


def _meta(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["file", "split", "start", "stop"])


def test_audit_passes_on_disjoint_provenance() -> None:
    meta = _meta(
        [
            ("a", "train", 0, 100),
            ("a", "train", 50, 150),
            ("a", "val", 300, 400),
            ("a", "test", 500, 600),
        ]
        + [
            ("b", "test", 0, 100),
            ("b", "train", 200, 300),
        ]  # per file: b's test may sit before train
    )
    rep = audit_windows(meta)
    assert rep.passed and rep.n_violations == 0 and rep.min_gap_samples == 100
    rep.raise_if_failed()
    assert rep.to_dict()["passed"] is True


def test_audit_catches_a_leak() -> None:
    meta = _meta(
        [
            ("a", "train", 0, 100),
            ("a", "train", 50, 150),
            ("a", "test", 149, 249),
            ("b", "val", 0, 10),
        ]
    )
    rep = audit_windows(meta)
    assert not rep.passed and rep.n_violations == 1
    v = rep.violations[0]
    assert (v["file"], v["split"], v["start"], v["against"]) == ("a", "test", 149, "train")
    assert (v["other_start"], v["other_stop"]) == (0, 150)  # the merged training interval
    with pytest.raises(LeakageError, match=r"a: test \[149, 249\) meets train"):
        rep.raise_if_failed()


def test_audit_catches_test_inside_val_and_margin_leaks() -> None:
    assert not audit_windows(_meta([("a", "val", 0, 100), ("a", "test", 99, 199)])).passed
    near = _meta([("a", "train", 0, 100), ("a", "val", 110, 210)])
    assert audit_windows(near).passed
    rep = audit_windows(near, margin_samples={"a": 11})  # the filter support reaches across
    assert not rep.passed and rep.margin_samples == 11


def test_random_window_split_fails_the_audit() -> None:
    """The common protocol (overlapping windows split at random) leaks; the audit proves it."""
    starts = np.arange(0, 100_000 - 2048, 512)
    rng = np.random.default_rng(0)
    split = rng.choice(["train", "val", "test"], size=starts.size, p=[0.7, 0.15, 0.15])
    meta = pd.DataFrame({"file": "x", "split": split, "start": starts, "stop": starts + 2048})
    rep = audit_windows(meta)
    assert not rep.passed and rep.n_violations > 0.2 * (split != "train").sum()


def test_undersample_is_balanced_and_seeded() -> None:
    meta = pd.DataFrame(
        {"split": ["train"] * 10 + ["test"] * 6, "label": [0] * 7 + [1] * 3 + [0] * 2 + [1] * 4}
    )
    keep = undersample(meta, seed=0)
    kept = meta.iloc[keep]
    assert kept.groupby(["split", "label"]).size().to_dict() == {
        ("test", 0): 2,
        ("test", 1): 2,
        ("train", 0): 3,
        ("train", 1): 3,
    }
    assert np.array_equal(keep, undersample(meta, seed=0))
    assert any(not np.array_equal(keep, undersample(meta, seed=s)) for s in range(1, 6))


# ------------------------------------------------------------------ generic dataset


def _write_rig(folder: Path, n: int = 40_000, fs_hz: int = 12000) -> dict[str, np.ndarray]:
    """Four synthetic recordings in four formats, two classes, two loads."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    sig = {name: rng.standard_normal(n) for name in ("h0", "h1", "f0", "f1")}
    np.save(folder / "h0.npy", sig["h0"])
    pd.DataFrame({"acc": sig["h1"], "other": 0.0}).to_csv(folder / "h1.csv", index=False)
    scipy.io.savemat(folder / "f0.mat", {"X001_DE_time": sig["f0"][:, None]})
    np.savez(folder / "f1.npz", vib=sig["f1"])
    (folder / "manifest.csv").write_text(
        "file,label,fs_hz,channel,load_hp,bearing\n"
        f"h0.npy,healthy,{fs_hz},,0,b1\n"
        f"h1.csv,healthy,{fs_hz},acc,1,b1\n"
        f"f0.mat,faulty,{fs_hz},X001_DE_time,0,b2\n"
        f"f1.npz,faulty,{fs_hz},vib,1,b2\n"
    )
    return sig


def test_generic_time_split_windows_match_their_provenance(
    tmp_path: Path, isolated_cache: Path
) -> None:
    sig = _write_rig(tmp_path / "rig")
    cfg = DataConfig(
        setup="generic",
        manifest=str(tmp_path / "rig" / "manifest.csv"),
        window_length=1024,
        train_hop=256,
    )
    ds = build_dataset(cfg)
    assert ds.class_names == ["faulty", "healthy"]
    assert ds.windows.dtype == np.float32 and ds.windows.shape[1:] == (1, 1024)
    assert ds.audit.passed and ds.audit.n_files == 4
    assert set(ds.meta["bearing"]) == {"b1", "b2"}  # grouping columns are kept
    for i in range(0, len(ds), 37):
        row = ds.meta.iloc[i]
        src = sig[Path(row["file"]).stem][row["start"] : row["stop"]]
        np.testing.assert_array_equal(ds.windows[i, 0], src.astype(np.float32))
        assert ds.labels[i] == ds.class_names.index(row["class_name"])
    # windows of each split stay inside their own time region
    for _, grp in ds.meta.groupby("file"):
        tr, va, te = (grp[grp["split"] == s] for s in ("train", "val", "test"))
        assert tr["stop"].max() + 1024 <= va["start"].min()
        assert va["stop"].max() + 1024 <= te["start"].min()
    summary = ds.summary()
    assert summary.loc["total", "total"] == len(ds)
    x, y = ds.split("val")
    assert len(x) == len(y) == summary.loc["total", "val"]


def test_generic_load_split(tmp_path: Path, isolated_cache: Path) -> None:
    _write_rig(tmp_path / "rig")
    cfg = DataConfig(
        setup="generic",
        manifest=str(tmp_path / "rig" / "manifest.csv"),
        window_length=1024,
        split="load",
        train_loads=[0],
        test_loads=[1],
    )
    ds = build_dataset(cfg)
    by_split = ds.meta.groupby("split")["load_hp"].unique().to_dict()
    assert set(by_split["train"]) == {0} and set(by_split["val"]) == {0}
    assert set(by_split["test"]) == {1}
    assert ds.audit.passed
    test_starts = ds.meta.loc[ds.meta["split"] == "test"].groupby("file")["start"]
    assert (test_starts.min() == 0).all()  # test loads are used whole
    assert ds.protocol["train_loads"] == [0] and ds.protocol["test_loads"] == [1]
    # a class absent at the test loads stops the build with the list
    bad = DataConfig(**{**cfg.to_dict(), "train_loads": [0, 1], "test_loads": [2]})
    with pytest.raises(MissingClassesError, match=r"faulty has no recording at test loads \[2\]"):
        build_dataset(bad)


def test_generic_resamples_to_the_task_rate(tmp_path: Path, isolated_cache: Path) -> None:
    _write_rig(tmp_path / "rig", n=80_000, fs_hz=24000)
    cfg = DataConfig(
        setup="generic", manifest=str(tmp_path / "rig" / "manifest.csv"), window_length=1024
    )
    ds = build_dataset(cfg)
    assert set(ds.meta["fs_orig_hz"]) == {24000} and set(ds.meta["fs_hz"]) == {12000}
    assert ds.audit.margin_samples == 22
    assert ds.meta.groupby("file")["stop"].max().max() <= 40_000


def test_generic_bad_input(tmp_path: Path, isolated_cache: Path) -> None:
    rig = tmp_path / "rig"
    _write_rig(rig)
    manifest = rig / "manifest.csv"
    base = {"setup": "generic", "manifest": str(manifest), "window_length": 1024}
    # a recording too short for one window per split
    np.save(rig / "h0.npy", np.zeros(3000))
    with pytest.raises(RecordingTooShortError, match=r"h0\.npy.*3000 samples"):
        build_dataset(DataConfig(**base))
    # NaN samples
    x = np.zeros(40_000)
    x[777] = np.nan
    np.save(rig / "h0.npy", x)
    with pytest.raises(NonFiniteSignalError, match=r"h0\.npy.*index 777"):
        build_dataset(DataConfig(**base))
    # manifest without a required column / with a duplicate row
    (rig / "m2.csv").write_text("file,label\nh0.npy,healthy\n")
    with pytest.raises(ManifestError, match=r"m2\.csv.*missing column\(s\) \['fs_hz'\]"):
        build_dataset(DataConfig(**{**base, "manifest": str(rig / "m2.csv")}))
    (rig / "m3.csv").write_text("file,label,fs_hz\nh0.npy,a,100\nh0.npy,b,100\n")
    with pytest.raises(ManifestError, match=r"listed twice \['h0\.npy'\]"):
        build_dataset(DataConfig(**{**base, "manifest": str(rig / "m3.csv")}))
    # a missing recordings folder
    with pytest.raises(MissingDataFolderError, match=r"nowhere.*does not exist"):
        build_dataset(DataConfig(**{**base, "root": str(tmp_path / "nowhere")}))


def test_config_errors_name_the_key(tmp_path: Path, isolated_cache: Path) -> None:
    with pytest.raises(
        UnknownSetupError,
        match=r"'cwru11'.*known setups: \['cwru10', 'cwru4', 'hit_mfs7', 'hit_selfbuilt7', 'hit_sm7', 'generic'\]",
    ):
        build_dataset(DataConfig(setup="cwru11", root=str(tmp_path)))
    DataConfig(eval_hop=100).validate()  # overlapping evaluation windows are allowed
    with pytest.raises(ConfigError, match=r"data.eval_hop=0 is invalid: expected a positive"):
        DataConfig(eval_hop=0).validate()
    with pytest.raises(ConfigError, match=r"data.split_fractions"):
        DataConfig(split_fractions=[0.5, 0.5, 0.5]).validate()
    with pytest.raises(ConfigError, match=r"data.test_loads.*shared: \[1\]"):
        DataConfig(split="load", train_loads=[0, 1], test_loads=[1]).validate()
    with pytest.raises(ConfigError, match=r"unknown data config keys \['windw_length'\]"):
        DataConfig.from_any({"windw_length": 3})
    with pytest.raises(
        MissingDataFolderError,
        match=r"absent.*does not exist.*fd-data download --setup cwru10.*FAULT_DIAG_DATA_DIR",
    ):
        build_dataset(DataConfig(root=str(tmp_path / "absent")))
    assert isinstance(Region("train", 0, 5).length, int)


# ------------------------------------------------------------------ overlapping evaluation windows


def test_overlapping_eval_windows_pass_the_audit_and_count_distinct_samples() -> None:
    # test windows overlap each other (hop 30 < length 100) but stay clear of training
    meta = _meta(
        [("a", "train", 0, 100), ("a", "train", 50, 150)]
        + [("a", "test", s, s + 100) for s in range(300, 500, 30)]
        + [("a", "val", 180, 280), ("a", "val", 190, 290)]
    )
    rep = audit_windows(meta)
    assert rep.passed and rep.n_test_windows == 7
    assert rep.n_test_samples_distinct == 580 - 300  # [300, 580): each sample once
    assert rep.n_val_samples_distinct == 110
    # one overlapping test window reaching into training is still caught, and so is one into val
    leaky = pd.concat([meta, _meta([("a", "test", 140, 240)])], ignore_index=True)
    rep = audit_windows(leaky)
    assert not rep.passed and {v["against"] for v in rep.violations} == {"train", "val"}


def test_distinct_samples_against_a_brute_force_count() -> None:
    rng = np.random.default_rng(4)
    rows = []
    for f in ("a", "b"):
        for s in rng.integers(0, 5000, 40):
            rows.append((f, str(rng.choice(["val", "test"])), int(s), int(s) + 128))
    meta = _meta(rows)
    got = distinct_samples(meta)
    for split in ("val", "test"):
        brute = sum(
            np.unique(np.concatenate([np.arange(r.start, r.stop) for r in g.itertuples()])).size
            for _, g in meta[meta["split"] == split].groupby("file")
        )
        assert got[split] == brute


def test_audit_report_reads_old_dicts() -> None:
    rep = audit_windows(_meta([("a", "train", 0, 100), ("a", "test", 200, 300)]))
    old = rep.to_dict()
    del old["n_val_samples_distinct"], old["n_test_samples_distinct"]
    back = AuditReport.from_dict(old)
    assert back.passed and back.n_test_samples_distinct is None
    assert AuditReport.from_dict(rep.to_dict()) == rep


def test_build_with_overlapping_eval_windows(tmp_path: Path, isolated_cache: Path) -> None:
    _write_rig(tmp_path / "rig")
    base = {"setup": "generic", "manifest": str(tmp_path / "rig" / "manifest.csv")}
    plain = build_dataset(DataConfig(**base, window_length=1024))
    ds = build_dataset(DataConfig(**base, window_length=1024, eval_hop=256))
    assert ds.audit.passed and ds.protocol["eval_windows_overlap"] is True
    test = ds.meta[ds.meta["split"] == "test"]
    for _, g in test.groupby("file"):
        assert np.all(np.diff(g["start"].to_numpy()) == 256)  # they overlap each other
    # about 4x the test windows, but hardly more distinct samples: the evidence did not grow
    assert ds.audit.n_test_windows > 3.5 * plain.audit.n_test_windows
    assert plain.audit.n_test_samples_distinct == plain.audit.n_test_windows * 1024
    assert plain.audit.n_test_samples_distinct <= ds.audit.n_test_samples_distinct
    assert ds.audit.n_test_samples_distinct < plain.audit.n_test_samples_distinct + 4 * 1024
    assert ds.audit.min_gap_samples >= 1024  # no eval_hop lets a window leave its region
    # even one-sample hops with the band filter's margin keep clear of training
    one = build_dataset(DataConfig(**base, window_length=1024, eval_hop=1, band_hz=[0, 3000]))
    assert one.audit.passed and one.audit.margin_samples == 2 * 151


def test_guard_gap_below_the_filter_reach_fails_the_audit(
    tmp_path: Path, isolated_cache: Path
) -> None:
    """Windows never leave their region, so only a guard gap narrower than the filters' reach can
    let an evaluation window share raw input with a training window: the build must refuse it."""
    _write_rig(tmp_path / "rig")
    base = {"setup": "generic", "manifest": str(tmp_path / "rig" / "manifest.csv")}
    # no filter at all (12 kHz in, 12 kHz out): adjacent regions share no raw sample
    assert build_dataset(DataConfig(**base, window_length=1024, guard_gap=0)).audit.passed
    with pytest.raises(
        LeakageError,
        match=r"split audit failed.*data.guard_gap=100 samples is smaller than the reach of the "
        r"resampling filter and the band filter \(data.band_hz=\[0, 3000\]\).*"
        r"Set data.guard_gap >= 302",
    ):
        build_dataset(
            DataConfig(**base, window_length=1024, guard_gap=100, eval_hop=64, band_hz=[0, 3000])
        )
    ok = build_dataset(DataConfig(**base, window_length=1024, guard_gap=302, band_hz=[0, 3000]))
    assert ok.audit.passed and ok.audit.min_gap_samples >= 302


# ------------------------------------------------------------------ band filter and healthy class


def test_band_limited_windows_match_the_filtered_recording(
    tmp_path: Path, isolated_cache: Path
) -> None:
    sig = _write_rig(tmp_path / "rig")
    base = {"setup": "generic", "manifest": str(tmp_path / "rig" / "manifest.csv")}
    ds = build_dataset(DataConfig(**base, window_length=1024, band_hz=[0, 3000]))
    filtered = {k: band_limit(v, 12000, [0, 3000]) for k, v in sig.items()}
    for i in range(0, len(ds), 29):
        row = ds.meta.iloc[i]
        src = filtered[Path(row["file"]).stem][row["start"] : row["stop"]]
        np.testing.assert_array_equal(ds.windows[i, 0], src.astype(np.float32))
    assert ds.protocol["band_hz"] == [0.0, 3000.0]
    assert "lowpass 0-3000 Hz" in ds.protocol["band_filter"]
    assert "before splitting" in ds.protocol["band_filter"]
    assert ds.audit.margin_samples == 2 * 151  # the band filter's reach, both sides
    # the band is part of the cache key (ints from YAML and floats from Hydra are the same key)
    assert build_dataset(DataConfig(**base, window_length=1024, band_hz=[0.0, 3000.0])).from_cache
    plain = build_dataset(DataConfig(**base, window_length=1024))
    assert not plain.from_cache and plain.protocol["band_hz"] is None
    assert not np.array_equal(plain.windows, ds.windows)


def test_setups_name_their_healthy_class() -> None:
    from fault_diag.data.setups import ClassSpec, Setup, default_healthy_class, get_setup

    assert get_setup("cwru10").healthy_class == get_setup("cwru4").healthy_class == "normal"
    assert default_healthy_class("cwru10", ["IR007", "B007"]) is None
    assert default_healthy_class("generic", ["Healthy", "fault"]) == "Healthy"
    assert default_healthy_class("generic", ["normal", "healthy"]) is None  # ambiguous
    with pytest.raises(ConfigError, match=r"healthy_class 'ok' is not one of its classes \['a'\]"):
        Setup("x", "x", (ClassSpec("a", {}),), healthy_class="ok")


def test_healthy_class_of_a_generic_dataset(tmp_path: Path, isolated_cache: Path) -> None:
    _write_rig(tmp_path / "rig")
    manifest = tmp_path / "rig" / "manifest.csv"
    base = {"setup": "generic", "manifest": str(manifest), "window_length": 1024}
    ds = build_dataset(DataConfig(**base))  # a label called "healthy" is the healthy class
    assert ds.healthy_class == "healthy" and ds.protocol["healthy_class"] == "healthy"
    other = build_dataset(DataConfig(**base, healthy_class="faulty"))
    assert other.healthy_class == "faulty" and other.protocol["healthy_class"] == "faulty"
    with pytest.raises(
        ConfigError,
        match=r"data.healthy_class='normal' is not a class of setup 'generic': expected one of "
        r"\['faulty', 'healthy'\]",
    ):
        build_dataset(DataConfig(**base, healthy_class="normal"))
    # labels without an obvious healthy class: none
    manifest.write_text(manifest.read_text().replace("healthy", "h").replace("faulty", "f"))
    assert build_dataset(DataConfig(**base)).healthy_class is None
