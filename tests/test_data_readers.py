"""Readers: variable choice by rule, MATLAB v5 and v7.3, csv/npy/npz, and bad input."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from helpers import hit_sm_dir

from fault_diag.data.errors import (
    AmbiguousVariableError,
    NonFiniteSignalError,
    NoUsableVariableError,
    RecordingReadError,
)
from fault_diag.data.readers import (
    SINGLE_VARIABLE,
    RecordedRate,
    VariableFallbackWarning,
    read_mat,
    read_recording,
    recorded_rate,
    select_variable,
)

RNG = np.random.default_rng(0)


def _col(n: int = 1000) -> np.ndarray:
    return RNG.standard_normal((n, 1))


# ------------------------------------------------------------------ real files


@pytest.mark.integration
def test_real_files_pick_the_numbered_variable(cwru_dir: Path) -> None:
    s97 = read_mat(cwru_dir / "97.mat")
    assert s97.variable == "X097_DE_time" and s97.data.shape == (243938,) and s97.rpm == 1796
    s105 = read_mat(cwru_dir / "105.mat", channel="FE")
    assert s105.variable == "X105_FE_time" and s105.data.shape == (121265,) and s105.rpm == 1797
    assert s105.data.dtype == np.float64
    with pytest.raises(NoUsableVariableError, match=r"97\.mat.*BA"):
        read_mat(cwru_dir / "97.mat", channel="BA")  # 97 has no base accelerometer


@pytest.mark.integration
def test_truncated_real_file_is_refused(cwru_dir: Path, tmp_path: Path) -> None:
    src = (cwru_dir / "105.mat").read_bytes()
    for n_bytes in (64, 50_000, 1_500_000, len(src) - 10):  # header, 1st, 2nd, last variable
        bad = tmp_path / "105.mat"
        bad.write_bytes(src[:n_bytes])
        with pytest.raises(RecordingReadError, match=r"105\.mat.*truncated"):
            read_mat(bad)


@pytest.mark.integration
def test_copy_under_another_name_falls_back_with_a_warning(cwru_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run_a.mat"
    shutil.copy(cwru_dir / "105.mat", copy)
    with pytest.warns(VariableFallbackWarning, match="X105_DE_time"):
        sig = read_mat(copy)
    assert sig.variable == "X105_DE_time" and sig.rpm == 1797


@pytest.mark.integration
def test_real_cwru_rates_come_from_the_catalogue(cwru_dir: Path, tmp_path: Path) -> None:
    """CWRU files store only the RPM; their rate is the catalogue's, known by the file number when
    the file holds that number's variables (a renamed copy records nothing)."""
    assert recorded_rate(cwru_dir / "97.mat").hz == 48000  # the 48 kHz normal baseline
    assert recorded_rate(cwru_dir / "105.mat").hz == 12000
    shutil.copy(cwru_dir / "105.mat", tmp_path / "run_a.mat")
    assert recorded_rate(tmp_path / "run_a.mat") is None


@pytest.mark.integration
def test_real_hit_sm_files_are_read_whatever_their_variable() -> None:
    """All 42 HIT-SM files (z10_1, z20_4, VarName5, V0, inside2d_600_1, ...): the default channel
    reads each file's only variable, the one its manifest names."""
    import pandas as pd

    folder = hit_sm_dir()
    listing = pd.read_csv(folder / "MANIFEST.csv")
    assert len(listing) == 42
    for _, row in listing.iterrows():
        sig = read_recording(folder / row["file"])
        assert sig.variable == row["variable"] and sig.single_variable, row["file"]
        assert sig.data.shape == (int(row["n_samples"]),)
        assert recorded_rate(folder / row["file"]) is None  # HIT-SM files store no rate
    assert {"z20_4", "VarName5", "V0"} <= set(listing["variable"])


# ------------------------------------------------------------------ rules on synthetic files


def test_exact_name_wins_over_other_numbers_and_ans(tmp_path: Path) -> None:
    # 99.mat on the CWRU site holds X098_* and X099_* and a stray 'ans'.
    x98, x99 = _col(), _col()
    path = tmp_path / "99.mat"
    scipy.io.savemat(
        path,
        {
            "X098_DE_time": x98,
            "X099_DE_time": x99,
            "X098_FE_time": _col(),
            "ans": np.array([[1.0]]),
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the exact match must not warn
        sig = read_mat(path)
    assert sig.variable == "X099_DE_time"
    np.testing.assert_array_equal(sig.data, x99.ravel())
    assert sig.rpm is None  # no X099RPM in this file


def test_single_candidate_is_used_with_a_warning(tmp_path: Path) -> None:
    x = _col()
    path = tmp_path / "3001.mat"
    scipy.io.savemat(path, {"X056_DE_time": x, "X056RPM": np.array([[1797]]), "ans": 1.0})
    with pytest.warns(VariableFallbackWarning, match=r"no variable X3001_DE_time.*X056_DE_time"):
        sig = read_mat(path)
    assert sig.variable == "X056_DE_time" and sig.rpm == 1797
    np.testing.assert_array_equal(sig.data, x.ravel())


def test_several_candidates_none_matching_is_an_error_listing_them(tmp_path: Path) -> None:
    path = tmp_path / "50.mat"
    scipy.io.savemat(path, {"X098_DE_time": _col(), "X099_DE_time": _col()})
    with pytest.raises(AmbiguousVariableError, match=r"50\.mat.*X098_DE_time.*X099_DE_time"):
        read_mat(path)


def test_mat_without_usable_variable(tmp_path: Path) -> None:
    # Two signals, neither named by the channel: which one is meant cannot be told.
    path = tmp_path / "105.mat"
    scipy.io.savemat(path, {"signal": _col(), "other": _col(), "ans": 3.0})
    with pytest.raises(NoUsableVariableError, match=r"105\.mat.*'DE'.*present: .*'signal'") as e:
        read_mat(path)
    assert "'other' (1000 x 1 double)" in str(e.value) and "ans" not in str(e.value)
    # (One signal and a stray 'ans' is a single-variable file: test_single_variable_mat_...)
    scipy.io.savemat(path, {"signal": _col(), "ans": 3.0})
    assert read_mat(path).variable == "signal"


def test_single_variable_mat_is_read_whatever_its_name(tmp_path: Path) -> None:
    """HIT-SM-style files: one signal per file under a name that changes from file to file, maybe
    with scalars beside it (a rate); no channel needed, and the read says it took the only one."""
    h5py = pytest.importorskip("h5py")
    for name, value in (("z20_4", _col()), ("VarName5", _col().T), ("V0", _col()[:, 0])):
        path = tmp_path / f"{name}.mat"
        scipy.io.savemat(path, {name: value, "fs": 51200, "label": "IR2"})
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing to warn about: the name is just the name
            for channel in ("DE", SINGLE_VARIABLE):
                sig = read_recording(path, channel)
                assert sig.variable == name and sig.single_variable
                np.testing.assert_array_equal(sig.data, np.ravel(value))
        assert not read_recording(path, name).single_variable  # named: read by its name
    x = RNG.standard_normal(500)
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as h5:
        h5.create_dataset("inside2d_600_1", data=x[None, :])
        h5.create_dataset("Fs", data=np.array([[25600.0]]))
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file".ljust(116) + b" " * 8 + b"\x00\x02IM")
    sig = read_recording(path)
    assert sig.variable == "inside2d_600_1" and sig.single_variable
    np.testing.assert_array_equal(sig.data, x)
    assert recorded_rate(path) == RecordedRate(25600.0, "variable 'Fs' in the file")
    # a .npz holding a signal and its rate: the signal is the only vector
    np.savez(tmp_path / "s.npz", acc=x, fs=np.array(25600))
    sig = read_recording(tmp_path / "s.npz")
    assert sig.variable == "acc" and sig.single_variable
    assert recorded_rate(tmp_path / "s.npz") == RecordedRate(25600.0, "array 'fs' in the file")


def test_channel_named_files_never_read_another_channel(tmp_path: Path) -> None:
    """A CWRU file without the asked channel is an error, even when its DE signal is its only
    vector: reading DE as FE would be a silent mistake."""
    path = tmp_path / "56.mat"
    scipy.io.savemat(path, {"X056_DE_time": _col(), "X056RPM": np.array([[1797]])})
    with pytest.raises(NoUsableVariableError, match=r"56\.mat.*'FE'.*'X056_DE_time'"):
        read_mat(path, channel="FE")
    assert not read_mat(path).single_variable  # DE is found by its channel
    # asked for "the only signal" explicitly, the file's one vector is it
    assert read_mat(path, channel=SINGLE_VARIABLE).variable == "X056_DE_time"
    two = tmp_path / "two.mat"
    scipy.io.savemat(two, {"a": _col(), "b": _col()})
    with pytest.raises(NoUsableVariableError, match=r"single signal.*'a' \(1000 x 1 double\)"):
        read_mat(two, channel=SINGLE_VARIABLE)


def test_recorded_rate(tmp_path: Path) -> None:
    for name in ("fs", "Fs", "sample_rate", "SamplingFrequency"):
        scipy.io.savemat(tmp_path / "a.mat", {"x": _col(), name: 20000.0})
        assert recorded_rate(tmp_path / "a.mat") == RecordedRate(
            20000.0, f"variable {name!r} in the file"
        )
    # not a rate: RPM, a vector called fs, a negative or text value; csv/npy record none
    scipy.io.savemat(tmp_path / "b.mat", {"x": _col(), "X001RPM": 1797.0, "fs": "fast"})
    assert recorded_rate(tmp_path / "b.mat") is None
    scipy.io.savemat(tmp_path / "c.mat", {"x": _col(), "fs": _col()[:, 0], "srate": -5.0})
    assert recorded_rate(tmp_path / "c.mat") is None
    np.save(tmp_path / "d.npy", _col())
    assert recorded_rate(tmp_path / "d.npy") is None


def test_select_variable_ignores_matlab_bookkeeping() -> None:
    names = ["__header__", "__version__", "__globals__", "ans", "X105_DE_time"]
    assert select_variable(names, "DE", 105, "105.mat") == ("X105_DE_time", None)
    assert select_variable(["ans", "X1_DE_time"], "X1_DE_time", 7, "f") == ("X1_DE_time", None)


def test_nan_samples_are_refused_with_the_index(tmp_path: Path) -> None:
    x = _col()
    x[123, 0] = np.nan
    x[500, 0] = np.inf
    path = tmp_path / "105.mat"
    scipy.io.savemat(path, {"X105_DE_time": x})
    with pytest.raises(NonFiniteSignalError, match=r"105\.mat.*X105_DE_time.*2 NaN/Inf.*index 123"):
        read_mat(path)


def test_garbage_mat_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "130.mat"
    path.write_bytes(b"this is not a MATLAB file" * 20)
    with pytest.raises(RecordingReadError, match=r"130\.mat"):
        read_mat(path)


def test_mat_v73_is_read_with_h5py_and_transposed(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    x = RNG.standard_normal(777)
    path = tmp_path / "118.mat"
    with h5py.File(path, "w", userblock_size=512) as h5:
        # MATLAB stores an (N, 1) column vector column-major: HDF5 sees (1, N).
        h5.create_dataset("X118_DE_time", data=x[None, :])
        h5.create_dataset("X118_FE_time", data=x[None, :] * 2)
        h5.create_dataset("X118RPM", data=np.array([[1796.0]]))
    with open(path, "r+b") as fh:  # the 128-byte MATLAB text header in the user block
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
        fh.write(text.ljust(116) + b" " * 8 + b"\x00\x02IM")  # version 0x0200, little endian
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(path)  # scipy cannot: this is what the h5py path is for
    sig = read_mat(path, channel="FE")
    assert sig.variable == "X118_FE_time" and sig.rpm == 1796.0
    np.testing.assert_allclose(sig.data, 2 * x)


# ------------------------------------------------------------------ csv / npy / npz


def test_generic_formats(tmp_path: Path) -> None:
    x = RNG.standard_normal(300)
    np.save(tmp_path / "a.npy", x[:, None])
    np.savez(tmp_path / "b.npz", vib=x, other=x * 0)
    np.savez(tmp_path / "c.npz", x)
    (tmp_path / "d.csv").write_text("acc_x,acc_y\n" + "\n".join(f"{float(v)!r},0" for v in x))
    (tmp_path / "e.csv").write_text("\n".join(repr(float(v)) for v in x))  # no header
    np.testing.assert_array_equal(read_recording(tmp_path / "a.npy").data, x)
    assert read_recording(tmp_path / "b.npz", channel="vib").variable == "vib"
    np.testing.assert_array_equal(read_recording(tmp_path / "c.npz").data, x)
    np.testing.assert_allclose(read_recording(tmp_path / "d.csv", channel="acc_x").data, x)
    np.testing.assert_allclose(read_recording(tmp_path / "e.csv").data, x)
    with pytest.raises(AmbiguousVariableError, match=r"b\.npz.*'DE'") as err:
        read_recording(tmp_path / "b.npz", channel="DE")
    assert "'other'" in str(err.value) and "'vib'" in str(err.value)
    with pytest.raises(AmbiguousVariableError, match=r"d\.csv.*acc_x.*acc_y"):
        read_recording(tmp_path / "d.csv")


def test_generic_bad_input(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("acc\n0.1\nhello\n0.3\n")
    with pytest.raises(RecordingReadError, match=r"bad\.csv.*'hello'.*row 1"):
        read_recording(tmp_path / "bad.csv")
    np.save(tmp_path / "nan.npy", np.array([0.0, np.nan]))
    with pytest.raises(NonFiniteSignalError, match=r"nan\.npy"):
        read_recording(tmp_path / "nan.npy")
    np.save(tmp_path / "m.npy", np.zeros((10, 3)))
    with pytest.raises(RecordingReadError, match=r"m\.npy.*shape \(10, 3\)"):
        read_recording(tmp_path / "m.npy")
    (tmp_path / "t.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(RecordingReadError, match=r"t\.npy"):
        read_recording(tmp_path / "t.npy")
    (tmp_path / "x.wav").write_bytes(b"")
    with pytest.raises(RecordingReadError, match=r"x\.wav.*unsupported"):
        read_recording(tmp_path / "x.wav")
    with pytest.raises(RecordingReadError, match=r"nope\.mat.*does not exist"):
        read_recording(tmp_path / "nope.mat")
