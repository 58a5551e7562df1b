"""Readers for single-channel vibration recordings: MATLAB ``.mat`` (v5 and v7.3), ``.csv``, ``.npy``, ``.npz``.

A ``.mat`` file holds named variables; which one is the channel's is decided by rule:

1. ``channel=SINGLE_VARIABLE``: the file's only numeric vector (see rule 4), whatever its name;
2. a ``channel`` that is itself a variable of the file is used as is;
3. else each data source's naming rules (:meth:`DataSource.select_variable
   <fault_diag.data.sources.base.DataSource.select_variable>`: CWRU names its variables after the
   file number and the channel) may pick one, with a warning when they fall back, or raise
   :class:`AmbiguousVariableError`;
4. else, when no source claims the variable names (:meth:`DataSource.owns_variables
   <fault_diag.data.sources.base.DataSource.owns_variables>`) and the file holds exactly one
   numeric vector (1-D, ``(N, 1)`` or ``(1, N)``), that one: files from other rigs hold a single
   signal under a name that changes from file to file (HIT-SM: ``z20_4``, ``VarName5``, ...). Files
   whose names a source claims never take this way, so a file without the asked channel is an
   error rather than another channel read in its place;
5. else :class:`NoUsableVariableError` listing the variables present.

``channel=SINGLE_VARIABLE`` asks for rule 4 directly: "the file's only signal, whatever its name"
(what a dataset built from such files records as its channel, and what ``fd-predict`` then asks for).

:func:`recorded_rate` finds a sampling rate a file records about itself (a scalar ``fs``-like
variable, or the rate a source's catalogue gives a file it recognises), so that a manifest's
``fs_hz`` can be checked against it.

MATLAB v7.3 files are HDF5: ``scipy.io.loadmat`` cannot read them, so h5py (imported lazily) does, and
arrays come transposed (MATLAB is column-major).
"""

from __future__ import annotations

import logging
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fault_diag.data.errors import (
    AmbiguousVariableError,
    NonFiniteSignalError,
    NoUsableVariableError,
    RecordingReadError,
)

if TYPE_CHECKING:
    from fault_diag.data.sources.base import DataSource

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".mat", ".csv", ".npy", ".npz")
_MAT73_MAGIC = b"MATLAB 7.3"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_IGNORED_MAT_NAMES = {"ans"}
#: The channel that means "the file's only signal, whatever its name" (see the module docstring).
SINGLE_VARIABLE = "single-variable"
#: A dataset whose recordings were read by different channels / variables: no one name fits all.
PER_FILE = "per-file"
# MATLAB classes of numeric arrays (whosmat's third field); char, logical, cell, struct are not signals.
_NUMERIC_MAT_CLASSES = {
    "double",
    "single",
    *(f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)),
}
# Names under which recordings commonly store their own sampling rate (compared case-insensitively).
# Deliberately not "sr"/"sf"/"rpm": too often something else (RPM is a shaft speed, not a rate).
RATE_VARIABLE_NAMES = frozenset(
    {
        "fs",
        "fs_hz",
        "fsamp",
        "fsample",
        "srate",
        "samplerate",
        "sample_rate",
        "samplingrate",
        "sampling_rate",
        "samplefrequency",
        "sample_frequency",
        "samplingfrequency",
        "sampling_frequency",
        "sample_freq",
        "sampling_freq",
    }
)


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
    # True when the variable was taken as the file's only signal, not found by the channel's name:
    # the channel asked for then says nothing about what was read (see dataset_channel()).
    single_variable: bool = False


@dataclass(frozen=True)
class VariableInfo:
    """One variable of a recording file: its name, shape and (MATLAB) class."""

    name: str
    shape: tuple[int, ...]
    kind: str  # MATLAB class ("double", "char", ...) or numpy dtype kind letter for .npz/HDF5

    @property
    def numeric(self) -> bool:
        """A number array (not text, logical, cell or struct)."""
        return self.kind in _NUMERIC_MAT_CLASSES or self.kind in ("f", "i", "u")

    @property
    def is_vector(self) -> bool:
        """A numeric 1-D, ``(N, 1)`` or ``(1, N)`` array with N >= 2: something a signal can be."""
        size = int(np.prod(self.shape)) if self.shape else 1
        return (
            self.numeric
            and size >= 2
            and len(self.shape) <= 2
            and max(self.shape, default=1) == size
        )

    @property
    def is_scalar(self) -> bool:
        """A numeric array of one element (a rate, an RPM, ...)."""
        return self.numeric and int(np.prod(self.shape)) == 1

    def describe(self) -> str:
        """``'name' (262144 x 1 double)``."""
        dims = " x ".join(str(d) for d in self.shape) or "scalar"
        kind = {"f": "float", "i": "int", "u": "uint", "b": "bool"}.get(self.kind, self.kind)
        return f"{self.name!r} ({dims} {kind})"


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
    return [v.name for v in mat_variables(path)]


def mat_variables(path: str | Path) -> list[VariableInfo]:
    """Name, shape and class of every variable of a ``.mat`` file (v5 or v7.3), without reading
    the arrays (the v5 headers, or the HDF5 dataset metadata)."""
    path = Path(path)
    try:
        if is_mat73(path):
            return sorted(_h5_variables(path), key=lambda v: v.name)
        import scipy.io

        check_mat5_structure(path)

        return [
            VariableInfo(name, tuple(int(d) for d in shape), cls)
            for name, shape, cls in scipy.io.whosmat(str(path))
        ]
    except RecordingReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - scipy/h5py raise many types for corrupt files
        raise _fail(path, f"not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc


def _h5_variables(path: Path) -> list[VariableInfo]:
    try:
        import h5py  # lazy: only v7.3 files need it
    except ImportError as exc:  # pragma: no cover - h5py is in the mat73 extra
        raise _fail(path, "MATLAB v7.3 file needs h5py: pip install 'fault-diag[mat73]'") from exc
    out = []
    with h5py.File(path, "r") as h5:
        for k in h5:
            obj = h5[k]
            if k.startswith("#") or not isinstance(obj, h5py.Dataset):
                continue
            cls = obj.attrs.get("MATLAB_class")
            cls = cls.decode() if isinstance(cls, bytes) else cls
            # MATLAB stores text as uint16 and logicals as uint8: its class attribute tells them
            # apart from numbers; without one (plain HDF5), the dtype decides.
            kind = str(cls) if cls else obj.dtype.kind
            out.append(VariableInfo(k, tuple(int(d) for d in obj.shape[::-1]), kind))
    return out


def _rule_sources() -> list[DataSource]:
    """The data sources whose variable naming rules the reader applies (imported on first use)."""
    from fault_diag.data.sources import all_sources

    return all_sources()


def select_variable(
    names: list[str],
    channel: str,
    number: int | None,
    source: str | Path,
    variables: list[VariableInfo] | None = None,
) -> tuple[str, str | None]:
    """Pick the variable of ``channel`` (DE/FE/BA) by the rules in the module docstring.

    Returns (name, warning or None). A ``channel`` that is itself one of ``names`` is used as is.
    ``number`` is the recording's number for sources that name variables after it (CWRU).
    ``variables`` (shapes and classes) enables rule 4, the file's only signal.
    """
    name, warning, _single = _select(names, channel, number, source, variables)
    return name, warning


def _usable(names: list[str]) -> list[str]:
    return [n for n in names if not n.startswith("__") and n not in _IGNORED_MAT_NAMES]


def only_signal(variables: list[VariableInfo]) -> str | None:
    """The name of the one numeric vector among ``variables`` (bookkeeping names aside), or None."""
    usable = set(_usable([v.name for v in variables]))
    vectors = [v.name for v in variables if v.name in usable and v.is_vector]
    return vectors[0] if len(vectors) == 1 else None


def _select(
    names: list[str],
    channel: str,
    number: int | None,
    source: str | Path,
    variables: list[VariableInfo] | None,
    file_name: str | None = None,
) -> tuple[str, str | None, bool]:
    """:func:`select_variable`, also saying whether rule 4 (the only signal) chose the variable.

    ``file_name`` (the file's name on disk) lets a source take the number from it."""
    usable = _usable(names)
    info = [v for v in variables or [] if v.name in set(usable)]
    if channel == SINGLE_VARIABLE:
        only = only_signal(info)
        if only is not None:
            return only, None, True
        raise NoUsableVariableError(
            f"{source}: expected a file holding a single signal (the model or dataset reads each "
            f"file's only numeric vector, whatever its name), but it holds "
            f"{_listing(info, usable)}; name the variable (manifest channel column, data.channel, "
            "or fd-predict --channel)"
        )
    if channel in usable:
        return channel, None, False
    sources = _rule_sources()
    for src in sources:
        chosen = src.select_variable(usable, channel, number, source, file_name)
        if chosen is not None:
            return chosen[0], chosen[1], False
    # Rule 4 only where no source claims the variable names: a CWRU file lacking FE must not
    # have its DE signal read as FE just because DE is its only vector.
    if not any(src.owns_variables(usable) for src in sources):
        only = only_signal(info)
        if only is not None:
            return only, None, True
    hints = [h for h in (src.variable_hint(channel) for src in sources) if h]
    raise NoUsableVariableError(
        f"{source}: no variable for channel {channel!r} (expected "
        f"{''.join(h + ', ' for h in hints)}the exact variable name, or a file holding a single "
        f"signal); variables present: {_listing(info, usable)}"
    )


def _listing(info: list[VariableInfo], usable: list[str]) -> str:
    """The variables of a file for an error message, with shapes when known."""
    if info:
        return ", ".join(v.describe() for v in info)
    return str(usable) if usable else "none"


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


def read_mat(path: str | Path, channel: str = "DE", number: int | None = None) -> Signal:
    """Read one channel (and the RPM when the source stores one beside it) of a ``.mat`` file,
    v5 or v7.3.

    ``number`` is the recording's number for sources that name variables after it; a source may
    take it from the file name instead (CWRU: ``105.mat`` -> 105).
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file does not exist")
    variables = mat_variables(path)
    names = [v.name for v in variables]
    variable, warning, single = _select(names, channel, number, path, variables, path.name)
    notes = []
    if warning:
        warnings.warn(warning, VariableFallbackWarning, stacklevel=2)
        log.warning(warning)
        notes.append(warning)
    rpm_name = next(
        (r for r in (src.companion_rpm(variable) for src in _rule_sources()) if r is not None),
        None,
    )
    wanted = [variable] + ([rpm_name] if rpm_name in names else [])
    values = _read_mat_values(path, wanted)
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
    return Signal(
        data=data,
        source=str(path),
        variable=variable,
        rpm=rpm,
        notes=notes,
        single_variable=single,
    )


@dataclass(frozen=True)
class RecordedRate:
    """A sampling rate a recording file records about itself, and where it was found."""

    hz: float
    source: str  # "variable 'fs'", "CWRU catalogue (file 105)", ...


def recorded_rate(path: str | Path) -> RecordedRate | None:
    """The sampling rate ``path`` records about itself, or None when it records none.

    - ``.mat``/``.npz``: a positive numeric scalar named like a rate (:data:`RATE_VARIABLE_NAMES`,
      any case: ``fs``, ``Fs``, ``sample_rate``, ``SamplingFrequency``, ...);
    - a ``.mat`` a data source recognises (:meth:`DataSource.recorded_rate
      <fault_diag.data.sources.base.DataSource.recorded_rate>`; CWRU: a file named by its number
      that holds that number's variables): the source catalogue's rate.

    ``.csv``/``.npy`` record nothing. Only variable headers and one scalar are read, so checking a
    whole manifest costs milliseconds per file. Raises :class:`RecordingReadError` for a file that
    cannot be read at all.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        variables = mat_variables(path)
        for v in variables:
            if v.name.lower() in RATE_VARIABLE_NAMES and v.is_scalar:
                value = _read_mat_values(path, [v.name]).get(v.name)
                hz = _positive_scalar(value)
                if hz is not None:
                    return RecordedRate(hz, f"variable {v.name!r} in the file")
        names = [v.name for v in variables]
        for src in _rule_sources():
            known = src.recorded_rate(path, names)
            if known is not None:
                return RecordedRate(*known)
        return None
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                for key in npz.files:
                    if key.lower() in RATE_VARIABLE_NAMES:
                        hz = _positive_scalar(npz[key])
                        if hz is not None:
                            return RecordedRate(hz, f"array {key!r} in the file")
        except Exception as exc:  # noqa: BLE001 - numpy raises many types for corrupt archives
            raise _fail(
                path, f"corrupt or unreadable .npz file ({type(exc).__name__}: {exc})"
            ) from exc
    return None


def _positive_scalar(value: object) -> float | None:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "fiu":
        return None
    x = float(arr.reshape(-1)[0])
    return x if np.isfinite(x) and x > 0 else None


def _read_mat_values(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The named variables of a ``.mat`` file (v5 or v7.3), nothing else read."""
    try:
        if is_mat73(path):
            return _read_h5(path, names)
        import scipy.io

        return dict(scipy.io.loadmat(str(path), variable_names=names))
    except RecordingReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - zlib/struct/ValueError/... for truncated files
        raise _fail(
            path, f"truncated or corrupt MATLAB file ({type(exc).__name__}: {exc})"
        ) from exc


def _read_h5(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    import h5py

    out = {}
    with h5py.File(path, "r") as h5:
        for name in names:
            # MATLAB writes column-major: an (N, 1) MATLAB vector is stored as (1, N).
            out[name] = np.asarray(h5[name][()]).T
    return out


def read_recording(path: str | Path, channel: str = "DE", number: int | None = None) -> Signal:
    """Read one channel of a recording, dispatching on the suffix.

    - ``.mat``: :func:`read_mat` (``channel`` is DE/FE/BA, an exact variable name, or
      :data:`SINGLE_VARIABLE`; a file holding a single signal is read whatever its name);
    - ``.npy``: the array (1-D or (N, 1));
    - ``.npz``: key ``channel``, else the only array, else the only numeric vector;
    - ``.csv``: column ``channel``, else the only column (a header row is optional).

    ``Signal.single_variable`` says whether the signal was found by the channel's name or taken as
    the file's only signal.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise _fail(path, f"unsupported format {suffix!r}; expected one of {SUPPORTED_SUFFIXES}")
    if not path.is_file():
        raise _fail(path, "file does not exist")
    if suffix == ".mat":
        return read_mat(path, channel, number)
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
    # A .npy has no names at all; a .npz key or .csv column other than the channel is the only one.
    return Signal(
        data=vec, source=str(path), variable=variable, single_variable=variable != channel
    )


def _read_npz(path: Path, channel: str) -> tuple[np.ndarray, str]:
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.files)
        if channel in keys:
            return npz[channel], channel
        if len(keys) == 1:
            return npz[keys[0]], keys[0]
        if not keys:
            raise NoUsableVariableError(f"{path}: the .npz archive holds no arrays")
        arrays = {k: npz[k] for k in keys}
        info = [VariableInfo(k, a.shape, a.dtype.kind) for k, a in arrays.items()]
        only = only_signal(info)
        if only is not None:  # e.g. a signal stored with its rate as a 0-d array
            return arrays[only], only
        raise AmbiguousVariableError(
            f"{path}: no array named {channel!r} and several candidates "
            f"{', '.join(v.describe() for v in info)}; name the array in the manifest's channel "
            "column"
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
