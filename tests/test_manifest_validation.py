"""The manifest is checked before any recording is read: every problem, with line and column.

Also the single-variable files of other rigs (real HIT-SM recordings when present): read without a
channel column, recorded as such in the dataset (and so in the model card), read by fd-predict.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch
from helpers import hit_sm_dir

from fault_diag.data import DataConfig, build_dataset
from fault_diag.data.errors import (
    ConfigError,
    ManifestError,
    ManifestValidationError,
    MissingClassesError,
)
from fault_diag.data.manifest import MAX_LISTED_PROBLEMS
from fault_diag.data.readers import SINGLE_VARIABLE

RNG = np.random.default_rng(3)
N = 20_000


def _rig(folder: Path, labels: list[str]) -> Path:
    """One .npy recording per label (r0.npy, r1.npy, ...) and a manifest ``m.csv`` listing them."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, label in enumerate(labels):
        np.save(folder / f"r{i}.npy", RNG.standard_normal(N))
        rows.append(f"r{i}.npy,{label},12000,0")
    (folder / "m.csv").write_text("file,label,fs_hz,load_hp\n" + "\n".join(rows) + "\n")
    return folder / "m.csv"


def _cfg(manifest: Path, **kw: object) -> DataConfig:
    return DataConfig(setup="generic", manifest=str(manifest), window_length=512, **kw)  # type: ignore[arg-type]


@pytest.fixture()
def no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if a recording is read: manifest problems must stop the build before any work."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a recording was read before the manifest was checked")

    monkeypatch.setattr("fault_diag.data.dataset.read_recording", refuse)


# ------------------------------------------------------------------ every problem, at once


def _bad_manifest(folder: Path) -> Path:
    m = _rig(folder, ["inner", "inner", "outer", "outer", "inner", "inner"])
    scipy.io.savemat(folder / "f20k.mat", {"acc": RNG.standard_normal((N, 1)), "fs": 20000.0})
    # Line numbers as an editor shows them: the header is line 1, line 3 is blank.
    m.write_text(
        "file,label,fs_hz,load_hp,sha256\n"  # 1
        "r0.npy,inner,12000,0,\n"  # 2
        "\n"  # 3
        "r1.npy,iner,12000,0,\n"  # 4: label typo
        "r2.npy,outer,abc,heavy,\n"  # 5: two unparsable values
        "misspelled/r9.npy,outer,12000,0,\n"  # 6: no such file
        "f20k.mat,outer,2000,0,\n"  # 7: the file records 20000 Hz
        "r3.npy,outer,12000,0,\n"  # 8: fine
        "r4.npy,,12000,0,,extra\n"  # 9: empty label, one field too many
        "r5.npy,inner,12000,0,xyz\n"  # 10: not a sha256
    )
    return m


def test_every_row_problem_is_listed_with_line_and_column(tmp_path: Path, no_reading: None) -> None:
    m = _bad_manifest(tmp_path / "rig")
    with pytest.raises(ManifestValidationError) as err:
        build_dataset(_cfg(m, classes=["inner", "outer"]))
    text = str(err.value)
    expected = [
        (
            4,
            "label",
            "'iner' is not one of data.classes ['inner', 'outer'] (did you mean 'inner'?)",
        ),
        (
            5,
            "fs_hz",
            "'abc' is not a number, expected the file's sampling rate, a positive integer",
        ),
        (5, "load_hp", "'heavy' is not a number, expected the operating condition as a number"),
        (6, "file", f"no such file: {m.parent / 'misspelled' / 'r9.npy'}"),
        (
            7,
            "fs_hz",
            "2000 Hz, but the file records 20000 Hz (variable 'fs' in the file), "
            "expected fs_hz=20000",
        ),
        (9, None, "6 fields but the header has 5"),
        (9, "label", "empty, expected the class name"),
        (10, "sha256", "'xyz' is not a SHA-256, expected 64 hex digits or empty"),
    ]
    assert text.splitlines()[0] == (
        f"manifest {m}: {len(expected)} problem(s) in 6 row(s) (fix them, or set "
        "data.lenient=true to drop these rows with a warning)"
    )
    got = [(p.line, p.column) for p in err.value.problems]
    assert got == [(line, col) for line, col, _ in expected]
    for line, col, message in expected:
        where = f"line {line}" + (f", column {col!r}" if col else "")
        assert f"\n  {where}: {message}" in text, (where, message)
    # every problem names the manifest itself too (as the lenient warnings show them)
    assert err.value.problems[0].describe().startswith(f"{m}, line 4, column 'label': 'iner'")
    assert ";" not in text.split("\n", 1)[1]  # a CLI joining lines with '; ' keeps them apart


def test_at_most_ten_problems_are_shown(tmp_path: Path, no_reading: None) -> None:
    m = _rig(tmp_path / "rig", ["a", "b"])
    m.write_text(m.read_text() + "".join(f"gone{i}.npy,a,12000,0\n" for i in range(14)))
    with pytest.raises(ManifestValidationError) as err:
        build_dataset(_cfg(m))
    assert len(err.value.problems) == 14
    listed = [line for line in str(err.value).splitlines() if "no such file" in line]
    assert len(listed) == MAX_LISTED_PROBLEMS
    assert str(err.value).endswith(f"... and {14 - MAX_LISTED_PROBLEMS} more")


def test_structural_errors_name_the_manifest(tmp_path: Path) -> None:
    m = _rig(tmp_path / "rig", ["a", "b"])
    m.write_text("file,label,fs_hz,label\nr0.npy,a,1,a\n")
    with pytest.raises(ManifestError, match=r"m\.csv, line 1: column\(s\) \['label'\] appear more"):
        build_dataset(_cfg(m))
    m.write_text("file,label,fs_hz\nr0.npy,a,12000\n./r0.npy,b,12000\n")
    with pytest.raises(
        ManifestError, match=r"listed twice \['./r0.npy'\] \(./r0.npy: lines 2, 3\)"
    ):
        build_dataset(_cfg(m))
    m.write_bytes(b"file,label,fs_hz\n\xff\xfe,a,1\n")
    with pytest.raises(ManifestError, match=r"m\.csv: not UTF-8 text"):
        build_dataset(_cfg(m))
    m.write_text("file,label,fs_hz\nr0.npy,a,1\n")
    with pytest.raises(ConfigError, match=r"data.classes lists a class twice"):
        build_dataset(_cfg(m, classes=["a", "a"]))


def test_load_selection_needs_a_load_on_every_row(tmp_path: Path, no_reading: None) -> None:
    m = _rig(tmp_path / "rig", ["a", "b", "a"])
    m.write_text(m.read_text().replace("r2.npy,a,12000,0", "r2.npy,a,12000,"))
    build = _cfg(m, split="load", train_loads=[0], test_loads=[1])
    with pytest.raises(
        ManifestValidationError,
        match=r"line 4, column 'load_hp': empty, but "
        r"data.split=load \(train_loads \[0\], test_loads \[1\]\) selects rows",
    ):
        build_dataset(build)
    with pytest.raises(ManifestValidationError, match=r"line 4.*empty, but data.loads=\[0\]"):
        build_dataset(_cfg(m, loads=[0]))


# ------------------------------------------------------------------ lenient: dropped and named


def test_lenient_drops_the_rows_and_names_them(
    tmp_path: Path, isolated_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fault_diag.cli.data import summary_report

    m = _bad_manifest(tmp_path / "rig")
    cfg = _cfg(m, classes=["inner", "outer"], lenient=True)
    with caplog.at_level(logging.WARNING):
        ds = build_dataset(cfg)
    assert set(ds.meta["file"]) == {"r0.npy", "r3.npy"}  # the two good rows
    dropped = ds.missing["dropped_rows"]
    assert [d["line"] for d in dropped] == [4, 5, 5, 6, 7, 9, 9, 10]
    assert [d["file"] for d in dropped][:5] == [
        "r1.npy",
        "r2.npy",
        "r2.npy",
        "misspelled/r9.npy",
        "f20k.mat",
    ]
    assert ds.missing["files"] == ["misspelled/r9.npy"]  # "missing files: none" no more
    assert ds.missing["loads"] == {"outer": [0]}
    assert len(ds.missing["warnings"]) == 8
    assert all(w.endswith(" - row dropped (data.lenient=true)") for w in ds.missing["warnings"])
    assert "line 4, column 'label': 'iner' is not one of data.classes" in caplog.text
    # the dataset summary lists them, on a cache hit too (checked afresh, not read from the cache)
    rep = summary_report(cfg)
    assert rep["from_cache"] and rep["missing"]["dropped_rows"] == dropped
    assert rep["missing"]["warnings"] == ds.missing["warnings"]
    from fault_diag.cli.data import _text_summary

    text = _text_summary(rep)  # what fd-data summary prints
    assert "manifest rows dropped (data.lenient=true): 8" in text
    assert "  line 4, column 'label': 'iner' is not one of data.classes" in text
    # dropping every row of a class is not lenient, it changes the task: refused, saying why
    m.write_text(m.read_text().replace("r3.npy,outer", "r3.npy,inner"))
    with pytest.raises(
        MissingClassesError,
        match=r"outer has no recording.*Missing files: misspelled/r9.npy; manifest rows dropped "
        r"\(data.lenient\): lines 4, 5, 6, 7, 9, 10\. Fix the manifest",
    ):
        build_dataset(cfg)


# ------------------------------------------------------------------ labels


def test_a_label_typo_never_becomes_a_class(tmp_path: Path, no_reading: None) -> None:
    m = _rig(tmp_path / "rig", ["inner", "iner", "outer", "Outer"])
    with pytest.raises(ManifestValidationError) as err:
        build_dataset(_cfg(m, classes=["inner", "outer"]))
    text = str(err.value)
    assert "line 3, column 'label': 'iner' is not one of data.classes" in text
    assert "(did you mean 'inner'?)" in text
    assert "line 5, column 'label': 'Outer' is not one of data.classes" in text
    assert "(did you mean 'outer'?)" in text


def test_near_miss_labels_warn_without_declared_classes(
    tmp_path: Path, isolated_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without data.classes every label is a class (they may be deliberate), with a warning for
    labels that look like one mistyped; labels differing only in numbers are left alone."""
    m = _rig(tmp_path / "rig", ["inner", "inner", "iner", "IR007", "IR014", "run1", "run2"])
    with caplog.at_level(logging.WARNING):
        ds = build_dataset(_cfg(m))
    assert ds.class_names == ["IR007", "IR014", "iner", "inner", "run1", "run2"]
    (warning,) = ds.missing["warnings"]
    assert warning == (
        f"manifest {m}: labels 'iner' (1 row, line 4) and 'inner' (2 rows, lines 2, 3) are "
        "nearly the same name, and each is a class of its own; if 'iner' is a typo, fix it. "
        "Declaring the classes (data.classes=[...]) makes any other label an error and "
        "silences this warning"
    )
    assert warning in caplog.text
    assert build_dataset(_cfg(m)).missing["warnings"] == [warning]  # cache hit: still said


# ------------------------------------------------------------------ rates recorded in the file


@pytest.mark.integration
def test_a_rate_the_cwru_catalogue_contradicts(cwru_dir: Path, tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text(
        f"file,label,fs_hz\n{cwru_dir / '97.mat'},normal,12000\n{cwru_dir / '105.mat'},ir,12000\n"
    )
    with pytest.raises(ManifestValidationError) as err:
        build_dataset(_cfg(m, channel="DE"))
    (problem,) = err.value.problems
    assert (problem.line, problem.column) == (2, "fs_hz")
    assert problem.message.startswith(
        "12000 Hz, but the file records 48000 Hz (the CWRU catalogue (the file holds CWRU "
        "recording 97's variables)), expected fs_hz=48000"
    )


# ------------------------------------------------------------------ single-variable files


class _Mean(torch.nn.Module):
    """A stand-in classifier: two logits from the window's mean and spread (no training needed)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(-1), x.std(-1)], dim=1)


@pytest.mark.integration
def test_hit_sm_recordings_without_a_channel_column(tmp_path: Path, isolated_cache: Path) -> None:
    """Real HIT-SM files (one variable each, its name changing from file to file) train from a
    manifest with no channel column; the dataset, and so the model card, says 'single-variable'
    (not the configured DE), each file's variable is recorded, and fd-predict reads a new file of
    the rig without being told its variable."""
    from fault_diag.export import Bundle, card_for
    from fault_diag.predict import predict_recording

    folder = hit_sm_dir()
    listing = pd.read_csv(folder / "MANIFEST.csv").set_index("file")
    files = ["MFS/Normal_600.mat", "MFS/Normal_1200.mat", "MFS/IR2_600.mat", "MFS/IR2_1200.mat"]
    m = tmp_path / "m.csv"
    m.write_text(
        "file,label,fs_hz,speed_rpm\n"
        + "".join(
            f"{folder / f},{f.split('/')[1].split('_')[0]},51200,{listing.loc[f, 'speed_rpm']}\n"
            for f in files
        )
    )
    cfg = DataConfig(setup="generic", manifest=str(m), fs_hz=12800, window_length=1024)
    assert cfg.channel == "DE"  # the default, which none of these files holds
    ds = build_dataset(cfg)
    assert ds.channel == ds.protocol["channel"] == SINGLE_VARIABLE
    variables = {r["file"]: r["variable"] for r in ds.protocol["recordings"]}
    assert variables == {str(folder / f): listing.loc[f, "variable"] for f in files}
    assert set(variables.values()) == {"VarName1", "VarName5", "z10_1", "z20_4"}
    assert all(r["single_variable"] for r in ds.protocol["recordings"])
    assert build_dataset(cfg).channel == SINGLE_VARIABLE  # from the cache too
    # what a model card built from this dataset says, and what fd-predict does with it
    card = card_for(
        {"name": "mean", "kwargs": {}},
        ds.class_names,
        sampling_rate_hz=ds.fs_hz,
        window_length=ds.window_length,
        channel=ds.channel,
    )
    bundle = Bundle(path=tmp_path, card=card, runtime="pt2", _module=_Mean())
    new = folder / "MFS" / "IR2_900.mat"  # not in the manifest; its variable is z15_1
    result = predict_recording(bundle, new, fs_hz=51200)
    assert result.variable == listing.loc["MFS/IR2_900.mat", "variable"] == "z15_1"
    assert result.n_windows == 262144 // 4 // 1024
    # a bundle from before (card channel DE) reads it as well: the file's only signal
    old = Bundle(path=tmp_path, card={**card, "channel": "DE"}, runtime="pt2", _module=_Mean())
    assert predict_recording(old, new, fs_hz=51200).variable == "z15_1"
