"""Readers for single-channel vibration recordings: MATLAB ``.mat`` (v5 and v7.3), ``.csv``, ``.npy``, ``.npz``.

CWRU ``.mat`` files hold ``X<nnn>_DE_time``, ``X<nnn>_FE_time``, ``X<nnn>_BA_time`` and ``X<nnn>RPM``
with ``nnn`` the file number zero-padded to 3. Some published files break this (a file holding another
number's variables, 99.mat holding both X098_* and X099_* plus a stray ``ans``, files without FE/BA/RPM),
so the variable is chosen by rule, never by hard-coded file numbers:

1. the exact name built from the file number (``X097_DE_time`` for 97.mat);
2. else, if exactly one ``*_<CH>_time`` variable exists, that one (with a warning);
3. else, several candidates and none matches the number: :class:`AmbiguousVariableError` listing them;
   none at all: :class:`NoUsableVariableError` listing the variables present.

MATLAB v7.3 files are HDF5: ``scipy.io.loadmat`` cannot read them, so h5py (imported lazily) does, and
arrays come transposed (MATLAB is column-major).
"""

from __future__ import annotations

import logging
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fault_diag.data.catalogue import file_number_from_name
from fault_diag.data.errors import (
    AmbiguousVariableError,
    NonFiniteSignalError,
    NoUsableVariableError,
    RecordingReadError,
)

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".mat", ".csv", ".npy", ".npz")
_MAT73_MAGIC = b"MATLAB 7.3"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_IGNORED_MAT_NAMES = {"ans"}


class VariableFallbackWarning(UserWarning):
    """The exact variable name was absent and the only candidate for the channel was used."""


@dataclass
class Signal:
    """One channel of one recording, as read from disk (float64, original sampling rate)."""

    data: np.ndarray
    source: str
    variable: str
    rpm: float | None = None
    notes: list[str] = field(default_factory=list)


def _fail(path: Path, cause: str) -> RecordingReadError:
    return RecordingReadError(f"cannot read {path}: {cause}")


def is_mat73(path: str | Path) -> bool:
    """True when ``path`` is a MATLAB v7.3 (HDF5) file."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    return head.startswith(_MAT73_MAGIC) or _HDF5_MAGIC in head[:8] + head[512:520]


def check_mat5_structure(path: str | Path) -> None:
    """Walk the top-level data elements of a v5 ``.mat`` file; raise when the file is truncated.

    scipy reads only the variables it is asked for, so a file cut after the wanted array would load
    silently. Each v5 element starts with a tag (type, byte count); the elements must tile the file
    exactly (uncompressed ones padded to 8 bytes).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(128)
        if len(header) < 128:
            raise _fail(
                path, f"truncated MATLAB file ({size} bytes, shorter than the 128-byte header)"
            )
        order = {b"IM": "<", b"MI": ">"}.get(header[126:128])
        if order is None:
            # MATLAB v4 files have no such header; let scipy judge them (garbage fails there too).
            return
        offset = 128
        while offset < size:
            fh.seek(offset)
            tag = fh.read(8)
            if len(tag) < 8:
                raise _fail(path, f"truncated MATLAB file: incomplete element tag at byte {offset}")
            dtype, nbytes = struct.unpack(order + "II", tag)
            if dtype >> 16:  # small data element: 4-byte tag + 4 bytes of data
                offset += 8
                continue
            end = offset + 8 + nbytes + (0 if dtype == 15 else (-nbytes) % 8)
            if offset + 8 + nbytes > size:
                raise _fail(
                    path,
                    f"truncated MATLAB file: an element at byte {offset} needs {nbytes} bytes but "
                    f"the file ends at byte {size}",
                )
            offset = end


def list_mat_variables(path: str | Path) -> list[str]:
    """Names of the variables in a ``.mat`` file (v5 or v7.3), MATLAB bookkeeping names excluded."""
    path = Path(path)
    try:
        if is_mat73(path):
            return sorted(_h5_names(path))
        import scipy.io

        check_mat5_structure(path)

        return [name for name, _shape, _cls in scipy.io.whosmat(str(path))]
    except RecordingReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - scipy/h5py raise many types for corrupt files
        raise _fail(path, f"not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc


def _h5_names(path: Path) -> list[str]:
    try:
        import h5py  # lazy: only v7.3 files need it
    except ImportError as exc:  # pragma: no cover - h5py is in the mat73 extra
        raise _fail(path, "MATLAB v7.3 file needs h5py: pip install 'fault-diag[mat73]'") from exc
    with h5py.File(path, "r") as h5:
        return [k for k in h5 if not k.startswith("#") and isinstance(h5[k], h5py.Dataset)]


def select_variable(
    names: list[str], channel: str, file_number: int | None, source: str | Path
) -> tuple[str, str | None]:
    """Pick the variable of ``channel`` (DE/FE/BA) by the rules in the module docstring.

    Returns (name, warning or None). A ``channel`` that is itself one of ``names`` is used as is.
    """
    usable = [n for n in names if not n.startswith("__") and n not in _IGNORED_MAT_NAMES]
    if channel in usable:
        return channel, None
    if file_number is not None:
        exact = f"X{file_number:03d}_{channel}_time"
        if exact in usable:
            return exact, None
    candidates = sorted(n for n in usable if n.endswith(f"_{channel}_time"))
    if len(candidates) == 1:
        reason = (
            f"no variable X{file_number:03d}_{channel}_time"
            if file_number is not None
            else "the file name carries no CWRU file number"
        )
        return candidates[0], (
            f"{source}: {reason}; using the only {channel} variable {candidates[0]!r} "
            f"(variables: {usable})"
        )
    if candidates:
        raise AmbiguousVariableError(
            f"{source}: {len(candidates)} candidate {channel} variables {candidates} and none "
            f"matches the file number ({file_number}); rename the file to its CWRU number or set "
            "the channel to the exact variable name"
        )
    raise NoUsableVariableError(
        f"{source}: no variable for channel {channel!r} (expected X<nnn>_{channel}_time); "
        f"variables present: {usable or 'none'}"
    )


def _as_vector(arr: np.ndarray, path: Path, variable: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiub":
        raise _fail(path, f"variable {variable!r} is {arr.dtype}, expected a numeric array")
    if arr.ndim > 2 or (arr.ndim == 2 and min(arr.shape) != 1):
        raise _fail(
            path, f"variable {variable!r} has shape {arr.shape}, expected a vector (N,) or (N, 1)"
        )
    vec = arr.reshape(-1).astype(np.float64, copy=False)
    if vec.size == 0:
        raise _fail(path, f"variable {variable!r} is empty")
    return vec


def check_finite(x: np.ndarray, source: str | Path, variable: str) -> None:
    """Raise :class:`NonFiniteSignalError` naming the file, variable, count and first index."""
    bad = ~np.isfinite(x)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise NonFiniteSignalError(
            f"{source}: variable {variable!r} has {idx.size} NaN/Inf samples of {x.size} "
            f"(first at index {int(idx[0])}); clean or drop this recording"
        )


def read_mat(path: str | Path, channel: str = "DE", file_number: int | None = None) -> Signal:
    """Read one channel (and the RPM when present) of a CWRU-style ``.mat`` file, v5 or v7.3.

    ``file_number`` defaults to the number in the file name (``105.mat`` -> 105).
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file does not exist")
    if file_number is None:
        file_number = file_number_from_name(path.name)
    names = list_mat_variables(path)
    variable, warning = select_variable(names, channel, file_number, path)
    notes = []
    if warning:
        warnings.warn(warning, VariableFallbackWarning, stacklevel=2)
        log.warning(warning)
        notes.append(warning)
    m = re.match(r"^(X\d+)_", variable)
    rpm_name = f"{m.group(1)}RPM" if m else None
    wanted = [variable] + ([rpm_name] if rpm_name in names else [])
    try:
        if is_mat73(path):
            values = _read_h5(path, wanted)
        else:
            import scipy.io

            values = scipy.io.loadmat(str(path), variable_names=wanted)
    except RecordingReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - zlib/struct/ValueError/... for truncated files
        raise _fail(
            path, f"truncated or corrupt MATLAB file ({type(exc).__name__}: {exc})"
        ) from exc
    if variable not in values:
        raise _fail(
            path, f"variable {variable!r} is listed but could not be read (truncated file?)"
        )
    data = _as_vector(values[variable], path, variable)
    check_finite(data, path, variable)
    rpm = None
    if rpm_name and rpm_name in values:
        rpm_arr = np.asarray(values[rpm_name], dtype=np.float64).reshape(-1)
        rpm = float(rpm_arr[0]) if rpm_arr.size else None
    return Signal(data=data, source=str(path), variable=variable, rpm=rpm, notes=notes)


def _read_h5(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    import h5py

    out = {}
    with h5py.File(path, "r") as h5:
        for name in names:
            # MATLAB writes column-major: an (N, 1) MATLAB vector is stored as (1, N).
            out[name] = np.asarray(h5[name][()]).T
    return out


def read_recording(path: str | Path, channel: str = "DE", file_number: int | None = None) -> Signal:
    """Read one channel of a recording, dispatching on the suffix.

    - ``.mat``: :func:`read_mat` (``channel`` is DE/FE/BA or an exact variable name);
    - ``.npy``: the array (1-D or (N, 1));
    - ``.npz``: key ``channel``, else the only array;
    - ``.csv``: column ``channel``, else the only column (a header row is optional).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise _fail(path, f"unsupported format {suffix!r}; expected one of {SUPPORTED_SUFFIXES}")
    if not path.is_file():
        raise _fail(path, "file does not exist")
    if suffix == ".mat":
        return read_mat(path, channel, file_number)
    try:
        if suffix == ".npy":
            data, variable = np.load(path, allow_pickle=False), "array"
        elif suffix == ".npz":
            data, variable = _read_npz(path, channel)
        else:
            data, variable = _read_csv(path, channel)
    except RecordingReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy/pandas raise many types for corrupt files
        raise _fail(
            path, f"corrupt or unreadable {suffix} file ({type(exc).__name__}: {exc})"
        ) from exc
    vec = _as_vector(data, path, variable)
    check_finite(vec, path, variable)
    return Signal(data=vec, source=str(path), variable=variable)


def _read_npz(path: Path, channel: str) -> tuple[np.ndarray, str]:
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.files)
        if channel in keys:
            return npz[channel], channel
        if len(keys) == 1:
            return npz[keys[0]], keys[0]
        if not keys:
            raise NoUsableVariableError(f"{path}: the .npz archive holds no arrays")
        raise AmbiguousVariableError(
            f"{path}: no array named {channel!r} and several candidates {keys}; name the array "
            "in the manifest's channel column"
        )


def _read_csv(path: Path, channel: str) -> tuple[np.ndarray, str]:
    import pandas as pd

    df = pd.read_csv(path)
    if df.columns.size and all(_is_number(c) for c in df.columns):
        df = pd.read_csv(path, header=None)  # no header row: the first line is data
        df.columns = [str(i) for i in range(df.shape[1])]
    cols = [str(c) for c in df.columns]
    df.columns = cols
    if channel in cols:
        col = channel
    elif len(cols) == 1:
        col = cols[0]
    elif not cols:
        raise NoUsableVariableError(f"{path}: the CSV file has no columns")
    else:
        raise AmbiguousVariableError(
            f"{path}: no column named {channel!r} and several candidates {cols}; name the column "
            "in the manifest's channel column"
        )
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    raw_missing = df[col].isna().to_numpy()
    bad = np.isnan(values) & ~raw_missing
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise RecordingReadError(
            f"cannot read {path}: column {col!r} has a non-numeric value {df[col].iloc[first]!r} "
            f"at row {first}"
        )
    return values, col


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True
