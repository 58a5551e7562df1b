"""On-disk cache of built datasets: one ``.npz`` (float32 windows, int64 labels) + one ``.json``.

The JSON holds everything else (metadata table with each window's split, class names, protocol,
audit, missing) plus the size and SHA-256 of the ``.npz``, and one SHA-256 over all of it (``sha256``:
the canonical JSON of the record, which includes the ``.npz`` hash, so one digest covers arrays and
metadata). On load both are checked: a changed ``.npz`` or an edited ``.json`` (say, windows moved
from test to train in the ``split`` column) is reported, naming the file, and the entry is rebuilt,
never used. An entry written before the digest existed cannot be checked and is rebuilt too.

The JSON is written last, so an entry is complete only when both files agree. Each file is written
to a temporary file in the same folder and moved into place with ``os.replace`` (atomic on POSIX and
Windows). No pickle anywhere: ``np.load(allow_pickle=False)`` and ``json``.

The key is a SHA-256 of the data config, the cache format version and each recording's name, size
and modification time, so editing, replacing or adding a recording rebuilds the entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fault_diag import paths
from fault_diag.io import atomic_write, file_sha256

log = logging.getLogger(__name__)

# Bump when the build logic changes in a way that alters the arrays for the same config.
CACHE_FORMAT = 1


class CacheWarning(UserWarning):
    """A cache entry was damaged, edited or unreadable and is being rebuilt."""


def record_digest(record: dict[str, Any]) -> str:
    """SHA-256 of a cache record without its ``sha256`` field, over canonical JSON.

    Canonical: the record as JSON would read it back (so tuples, int dict keys and numpy-free
    values hash the same before writing and after reading), keys sorted, no whitespace.
    """
    body = {k: v for k, v in record.items() if k != "sha256"}
    plain = json.loads(json.dumps(body))
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(config: dict[str, Any], fingerprints: list[dict[str, Any]]) -> str:
    """Hex SHA-256 of the config, the cache format and the recordings' fingerprints."""
    payload = json.dumps(
        {"format": CACHE_FORMAT, "config": config, "recordings": fingerprints},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def fingerprint(key: str, path: Path) -> dict[str, Any]:
    """Cheap identity of a recording file: name, size and modification time (ns)."""
    st = path.stat()
    return {"file": key, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def entry_paths(key: str, prefix: str, folder: Path | None = None) -> tuple[Path, Path]:
    """(npz, json) paths of the entry ``key`` in ``folder`` (default ``paths.cache_dir()/datasets``)."""
    folder = folder or paths.cache_dir() / "datasets"
    stem = f"{prefix}-{key[:20]}"
    return folder / f"{stem}.npz", folder / f"{stem}.json"


def _meta_to_json(meta: pd.DataFrame) -> dict[str, Any]:
    cols = {}
    for col in meta.columns:
        series = meta[col]
        values = series.astype(object).where(series.notna(), None).tolist()
        cols[col] = [v.item() if hasattr(v, "item") else v for v in values]
    return {"columns": cols, "dtypes": {c: str(meta[c].dtype) for c in meta.columns}}


def _meta_from_json(data: dict[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(data["columns"])
    for col, dtype in data["dtypes"].items():
        if dtype.startswith(("int", "float", "bool")) or dtype in ("str", "string"):
            df[col] = df[col].astype(dtype)
    return df


def _write_npz(fh: Any, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` (readable by ``np.load``) with fixed zip timestamps: the same arrays give the same
    bytes, so parallel jobs that build the same entry at once write identical files."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)


def save_entry(
    key: str,
    prefix: str,
    arrays: dict[str, np.ndarray],
    meta: pd.DataFrame,
    info: dict[str, Any],
    folder: Path | None = None,
) -> Path:
    """Write a cache entry atomically; returns the JSON path."""
    npz_path, json_path = entry_paths(key, prefix, folder)
    atomic_write(npz_path, lambda fh: _write_npz(fh, arrays), binary=True)
    record = {
        "key": key,
        "format": CACHE_FORMAT,
        "npz": {
            "name": npz_path.name,
            "size": npz_path.stat().st_size,
            "sha256": file_sha256(npz_path),
        },
        "meta": _meta_to_json(meta),
        "info": info,
    }
    record["sha256"] = record_digest(record)
    atomic_write(json_path, lambda fh: json.dump(record, fh), binary=False)
    return json_path


def load_entry(
    key: str, prefix: str, folder: Path | None = None
) -> tuple[dict[str, np.ndarray], pd.DataFrame, dict[str, Any]] | None:
    """Read an entry; None when absent; None with a :class:`CacheWarning` naming the file when it
    is damaged, was edited after it was written, or predates the record digest."""
    npz_path, json_path = entry_paths(key, prefix, folder)
    if not json_path.exists() and not npz_path.exists():
        return None
    try:
        if not json_path.is_file():
            raise ValueError(f"{json_path.name} is missing (interrupted write?)")
        with open(json_path) as fh:
            record = json.load(fh)
        if not isinstance(record, dict) or "sha256" not in record:
            raise ValueError(
                f"{json_path.name} carries no checksum of its metadata (written by an older "
                "version, or the field was removed), so its split columns cannot be trusted"
            )
        if record_digest(record) != record["sha256"]:
            raise ValueError(
                f"{json_path.name} was modified after it was written (its metadata, e.g. the "
                "split of each window, no longer matches its checksum)"
            )
        if record.get("key") != key or record.get("format") != CACHE_FORMAT:
            raise ValueError("key or format does not match")
        expected = record["npz"]
        if not npz_path.is_file():
            raise ValueError(f"{npz_path.name} is missing")
        size = npz_path.stat().st_size
        if size != expected["size"]:
            raise ValueError(
                f"{npz_path.name} has {size} bytes, expected {expected['size']} (truncated?)"
            )
        if file_sha256(npz_path) != expected["sha256"]:
            raise ValueError(f"{npz_path.name} checksum does not match")
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = _meta_from_json(record["meta"])
        n = len(meta)
        if any(a.shape[0] != n for a in arrays.values()):
            raise ValueError("array lengths differ from the metadata table")
        return arrays, meta, record["info"]
    except Exception as exc:  # noqa: BLE001 - any damage means: rebuild
        msg = f"dataset cache entry {json_path} not used: {exc}; rebuilding it"
        log.warning(msg)
        warnings.warn(msg, CacheWarning, stacklevel=3)
        return None
