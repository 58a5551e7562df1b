"""Dataset assembly: recordings -> resampled (-> band-limited) signals -> leak-free regions -> windows
(+ audit, cache).

:func:`build_dataset` is the one entry point the rest of the project uses. The windows are the RAW
signal (float32, no normalisation, no noise; band-limited when ``data.band_hz`` is set): noise at a
given SNR is added downstream, on the raw signal, before any normalisation.
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from fault_diag.data import cache as _cache
from fault_diag.data.audit import AuditReport, audit_windows
from fault_diag.data.config import DataConfig
from fault_diag.data.errors import ConfigError, HashMismatchError, LeakageError
from fault_diag.data.filters import band_filter, band_limit
from fault_diag.data.readers import PER_FILE, SINGLE_VARIABLE, read_recording
from fault_diag.data.resample import plan_resampling, resample
from fault_diag.data.setups import RecordingSpec, Resolution, resolve
from fault_diag.data.sources.base import norm_value
from fault_diag.data.sources.cwru import BEARING_NOTE
from fault_diag.data.splits import SPLIT_NAMES, plan_recording, undersample
from fault_diag.io import file_sha256

log = logging.getLogger(__name__)


@dataclass
class WindowedDataset:
    """Windows of raw signal with labels and per-window provenance."""

    windows: np.ndarray  # (N, 1, window_length) float32, RAW signal
    labels: np.ndarray  # (N,) int64
    meta: pd.DataFrame  # N rows: split, file, start, stop, label, class_name, load_hp, fs_hz, ...
    class_names: list[str]
    fs_hz: int
    window_length: int
    channel: str
    protocol: dict[str, Any]
    audit: AuditReport
    missing: dict[str, Any]
    # The class of undamaged machines (CWRU: "normal"), None when the setup has none: the class
    # noisy fault windows drift to; metrics report the share of fault windows predicted as it.
    healthy_class: str | None = None
    from_cache: bool = field(default=False, compare=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask of the windows of split ``name`` (train | val | test)."""
        if name not in SPLIT_NAMES:
            raise ConfigError(f"unknown split {name!r}; expected one of {list(SPLIT_NAMES)}")
        return self.meta["split"].to_numpy() == name

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(windows, labels) of split ``name`` (train | val | test)."""
        m = self.mask(name)
        return self.windows[m], self.labels[m]

    def summary(self) -> pd.DataFrame:
        """Windows per class (rows, in label order) and split (columns), with totals."""
        counts = pd.crosstab(
            pd.Categorical(self.meta["class_name"], categories=self.class_names),
            pd.Categorical(self.meta["split"], categories=list(SPLIT_NAMES)),
            dropna=False,
        )
        counts.index.name, counts.columns.name = "class_name", "split"
        counts["total"] = counts.sum(axis=1)
        counts.loc["total"] = counts.sum(axis=0)
        return counts.astype("int64")


def _band(cfg: DataConfig) -> list[float] | None:
    """``cfg.band_hz`` as floats (``[0, 4000]`` from YAML and ``[0.0, 4000.0]`` from Hydra agree)."""
    return None if cfg.band_hz is None else [float(v) for v in cfg.band_hz]


def _config_for_key(cfg: DataConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    d.pop("root", None)  # where the files are does not change the data; their fingerprints do
    # lenient only decides which manifest rows are dropped, and the dropped rows' absence is in the
    # recordings' fingerprints (and the manifest's): the same data under either setting.
    d.pop("lenient", None)
    # Fields added later are left out while unset, so entries built before they existed stay valid
    # (a null band_hz is no filter; a null healthy_class is the setup's, read back from the setup).
    for key in ("band_hz", "healthy_class", "condition", "train_conditions", "test_conditions"):
        if d.get(key) is None:
            d.pop(key, None)
    band = _band(cfg)
    if band is not None:
        d["band_hz"] = band
        # The filter's design enters the key too: retuning it must not serve stale filtered windows.
        taps = band_filter(cfg.fs_hz, band).taps
        d["band_filter_sha256"] = hashlib.sha256(np.ascontiguousarray(taps).tobytes()).hexdigest()
    return d


def build_dataset(cfg: DataConfig | Any, *, use_cache: bool = True) -> WindowedDataset:
    """Build (or load from the cache) the windowed dataset described by ``cfg``.

    Resolves the recordings (warning about and recording absent classes/loads), reads them, checks
    their hashes, resamples them to ``cfg.fs_hz``, splits each by time (or by load), cuts windows,
    optionally balances classes, and audits the split (raises :class:`LeakageError` on failure).
    With ``use_cache`` the result is stored in / read from ``paths.cache_dir()``.
    """
    cfg = DataConfig.from_any(cfg).validate()
    res = resolve(cfg)
    fingerprints = [_cache.fingerprint(r.key, r.path) for r in res.recordings]
    if cfg.manifest:
        from pathlib import Path

        fingerprints.append(_cache.fingerprint("manifest", Path(cfg.manifest).expanduser()))
    key = _cache.cache_key(_config_for_key(cfg), fingerprints)
    if use_cache:
        hit = _cache.load_entry(key, cfg.setup)  # None when absent, or damaged/edited (warned)
        if hit is not None:
            cached = _from_cache(cfg, res, key, *hit)
            if cached is not None:
                return cached
    ds = _build(cfg, res)
    if use_cache:
        _save(key, cfg.setup, ds)
    return ds


def _from_cache(
    cfg: DataConfig,
    res: Resolution,
    key: str,
    arrays: dict[str, np.ndarray],
    meta: pd.DataFrame,
    info: dict[str, Any],
) -> WindowedDataset | None:
    """The dataset of a cache entry whose checksums matched, after a fresh leak audit.

    The audit is re-run on every load (it costs milliseconds): the stored verdict is never shown,
    so a summary always reports the split the windows actually have. An entry that fails it is not
    used (warned, then rebuilt). ``missing`` comes from this run's resolution, not the entry.
    """
    audit = audit_windows(meta, _margins(cfg, res))
    if not audit.passed:
        _npz, json_path = _cache.entry_paths(key, cfg.setup)
        msg = (
            f"dataset cache entry {json_path} fails the leak audit on load "
            f"({audit.n_violations} validation/test windows meet training windows); not using "
            "it, rebuilding the dataset"
        )
        log.warning(msg)
        warnings.warn(msg, _cache.CacheWarning, stacklevel=3)
        return None
    log.info(
        "dataset %s loaded from cache (%d windows); leak audit re-run: passed", cfg.setup, len(meta)
    )
    # Entries written before healthy_class / band_hz existed: the setup's healthy class, no
    # filter (the key of a config that sets either differs from those entries' keys).
    healthy = info.get("healthy_class", res.healthy_class)
    protocol = dict(info["protocol"])
    protocol.setdefault("healthy_class", healthy)
    protocol.setdefault("band_hz", None)
    protocol.setdefault("band_filter", None)
    return WindowedDataset(
        windows=arrays["windows"],
        labels=arrays["labels"],
        meta=meta,
        class_names=info["class_names"],
        fs_hz=info["fs_hz"],
        window_length=info["window_length"],
        channel=info["channel"],
        protocol=protocol,
        audit=audit,
        missing=res.missing,
        healthy_class=healthy,
        from_cache=True,
    )


def _margins(cfg: DataConfig, res: Resolution) -> dict[str, int]:
    """Audit margin per recording: an output sample depends on raw samples up to (resampling + band
    filter) half-lengths away, so an eval window and a training window share raw input when closer
    than twice that. Computed from the config alone (no signal is read)."""
    band = _band(cfg)
    reach = 0 if band is None else band_filter(cfg.fs_hz, band).half_length
    return {
        r.key: 2 * (plan_resampling(r.fs_hz, cfg.fs_hz).margin_samples + reach)
        for r in res.recordings
    }


def _save(key: str, prefix: str, ds: WindowedDataset) -> None:
    """Store ``ds`` in the cache; a cache that cannot be written only costs a warning."""
    try:
        _cache.save_entry(
            key,
            prefix,
            {"windows": ds.windows, "labels": ds.labels},
            ds.meta,
            {
                "class_names": ds.class_names,
                "fs_hz": ds.fs_hz,
                "window_length": ds.window_length,
                "channel": ds.channel,
                "protocol": ds.protocol,
                "audit": ds.audit.to_dict(),
                "missing": ds.missing,
                "healthy_class": ds.healthy_class,
            },
        )
    except OSError as exc:
        log.warning("could not write the dataset cache (%s); continuing without it", exc)


def _check_hash(spec: RecordingSpec) -> None:
    if spec.sha256 is None:
        return
    actual = file_sha256(spec.path)
    if actual != spec.sha256:
        raise HashMismatchError(
            f"{spec.path}: SHA-256 {actual} does not match the expected {spec.sha256}; the file is "
            "corrupt or not the published recording (replace it, e.g. `fd-data download`)"
        )


def _build(cfg: DataConfig, res: Resolution) -> WindowedDataset:
    L = int(cfg.window_length)
    gap = cfg.effective_guard_gap
    eval_hop = cfg.effective_eval_hop
    label_of = {name: i for i, name in enumerate(res.class_names)}
    columns: dict[str, list[np.ndarray]] = {}
    chunks: list[np.ndarray] = []
    recordings_info: list[dict[str, Any]] = []
    resampling: dict[str, str] = {}
    margins = _margins(cfg, res)
    band = _band(cfg)
    reads: list[tuple[str, bool]] = []  # (channel asked for, read as the file's only signal?)

    def add(col: str, values: np.ndarray) -> None:
        columns.setdefault(col, []).append(values)

    extra_cols = sorted({k for r in res.recordings for k in r.extra})
    read = _reader(cfg)
    from tqdm.auto import tqdm

    # A cold build reads, hashes and resamples every recording (a minute for a large setup): a
    # bar on a terminal (disable=None: none when stderr is not one, e.g. in CI or a log file).
    ordered = sorted(res.recordings, key=lambda r: (label_of[r.class_name], r.key))
    for spec in tqdm(ordered, desc=f"building {cfg.setup}", unit="recording", disable=None):
        if cfg.verify_hashes:
            _check_hash(spec)
        sig = read(spec)
        reads.append((spec.channel, sig.single_variable))
        plan = plan_resampling(spec.fs_hz, cfg.fs_hz)
        x = resample(sig.data, spec.fs_hz, cfg.fs_hz)
        if band is not None:
            # Whole recording, before the split: fd-predict filters new recordings the same way.
            x = band_limit(x, cfg.fs_hz, band)
        resampling[spec.key] = plan.describe()
        role = split_role(cfg, spec)
        planned = plan_recording(
            source=str(spec.path),
            n_samples=x.size,
            role=role,
            fractions=[float(f) for f in cfg.split_fractions],
            guard_gap=gap,
            window_length=L,
            train_hop=int(cfg.train_hop),
            eval_hop=eval_hop,
            fs_hz=cfg.fs_hz,
        )
        view = sliding_window_view(x, L)
        ratio = spec.fs_hz / cfg.fs_hz
        regions = {}
        for region, starts in planned:
            chunks.append(view[starts].astype(np.float32))
            n = starts.size
            regions[region.split] = [region.start, region.stop, int(n)]
            add("split", np.full(n, region.split, dtype=object))
            add("file", np.full(n, spec.key, dtype=object))
            add("start", starts)
            add("stop", starts + L)
            add("start_orig", np.floor(starts * ratio).astype(np.int64))
            add(
                "stop_orig",
                np.minimum(np.ceil((starts + L) * ratio), sig.data.size).astype(np.int64),
            )
            add("label", np.full(n, label_of[spec.class_name], dtype=np.int64))
            add("class_name", np.full(n, spec.class_name, dtype=object))
            add(
                "load_hp", np.full(n, np.nan if spec.load_hp is None else spec.load_hp, dtype=float)
            )
            add("fs_hz", np.full(n, cfg.fs_hz, dtype=np.int64))
            add("fs_orig_hz", np.full(n, spec.fs_hz, dtype=np.int64))
            add("file_number", np.full(n, -1 if spec.file_number is None else spec.file_number))
            add("channel", np.full(n, spec.channel, dtype=object))
            add("variable", np.full(n, sig.variable, dtype=object))
            add("rpm", np.full(n, np.nan if sig.rpm is None else sig.rpm, dtype=float))
            for col in extra_cols:
                add(col, np.full(n, spec.extra.get(col), dtype=object))
        recordings_info.append(
            {
                "file": spec.key,
                "class_name": spec.class_name,
                "load_hp": spec.load_hp,
                "variable": sig.variable,
                "single_variable": sig.single_variable,
                "rpm": sig.rpm,
                "fs_orig_hz": spec.fs_hz,
                "n_samples_orig": int(sig.data.size),
                "n_samples": int(x.size),
                "resampling": plan.describe(),
                "role": role,
                "regions": regions,
                "notes": sig.notes,
            }
        )
    # reshape, not [:, None, :]: the inserted axis would keep a 4-byte stride, which numpy and torch
    # still call contiguous but oneDNN reads as another memory layout and convolves with another
    # kernel (other rounding): a cold build then trained differently from a cache hit.
    windows = (
        np.concatenate(chunks).reshape(-1, 1, L) if chunks else np.zeros((0, 1, L), np.float32)
    )
    meta = pd.DataFrame({c: np.concatenate(v) for c, v in columns.items()})
    for col in ("split", "file", "class_name", "channel", "variable"):
        meta[col] = meta[col].astype(str)
    for col in extra_cols:  # grouping columns: numbers stay numbers, text becomes str
        meta[col] = meta[col].infer_objects()
        if meta[col].dtype == object and meta[col].map(lambda v: isinstance(v, str)).all():
            meta[col] = meta[col].astype(str)
    if cfg.balance == "undersample":
        keep = undersample(meta, cfg.seed)
        windows, meta = windows[keep], meta.iloc[keep].reset_index(drop=True)
    labels = meta["label"].to_numpy(dtype=np.int64)
    audit = audit_windows(meta, margins)
    channel = dataset_channel(reads, cfg.channel)
    protocol = _protocol(cfg, res, resampling, recordings_info, channel)
    if not audit.passed:
        _raise_leak(cfg, audit, margins)
    log.info(
        "built %s: %d windows (train %d, val %d, test %d); audit passed, min gap %s samples",
        cfg.setup,
        len(meta),
        audit.n_train_windows,
        audit.n_val_windows,
        audit.n_test_windows,
        audit.min_gap_samples,
    )
    return WindowedDataset(
        windows=np.ascontiguousarray(windows),
        labels=labels,
        meta=meta,
        class_names=list(res.class_names),
        fs_hz=int(cfg.fs_hz),
        window_length=L,
        channel=channel,
        protocol=protocol,
        audit=audit,
        missing=res.missing,
        healthy_class=res.healthy_class,
    )


def _reader(cfg: DataConfig) -> Any:
    """The function reading one recording spec: the source's reader (generic: by suffix)."""
    if cfg.setup == "generic":
        return lambda spec: read_recording(spec.path, spec.channel, spec.file_number)
    from fault_diag.data.sources import source_for_setup

    return source_for_setup(cfg.setup).read


def split_role(cfg: DataConfig, spec: RecordingSpec) -> str:
    """How a recording is split: ``time`` (train | val | test by time), or for a load / condition
    split ``load_train`` (train | val by time; the recording's condition value is a training one) or
    ``load_test`` (the whole recording is test). The CWRU load split is the condition split on load."""
    split = cfg.condition_split()
    if split is None:
        return "time"
    name, _train, test = split
    value = spec.conditions.get(name)
    if value is None and name == "load":  # specs made before conditions existed
        value = spec.load_hp
    return "load_test" if norm_value(value) in {norm_value(v) for v in test} else "load_train"


def _raise_leak(cfg: DataConfig, audit: AuditReport, margins: dict[str, int]) -> None:
    """Raise the audit's :class:`LeakageError`, saying which setting to change when it is the gap."""
    try:
        audit.raise_if_failed()
    except LeakageError as exc:
        need = max(margins.values(), default=0)
        gap = cfg.effective_guard_gap
        if gap >= need:
            raise
        band = "" if cfg.band_hz is None else f" and the band filter (data.band_hz={cfg.band_hz})"
        raise LeakageError(
            f"{exc}. data.guard_gap={gap} samples is smaller than the reach of the resampling "
            f"filter{band}: a training and an evaluation window closer than {need} samples share "
            f"raw input. Set data.guard_gap >= {need} (or null: one window length)"
        ) from None


def dataset_channel(reads: list[tuple[str, bool]], default: str) -> str:
    """The channel a dataset (and a model trained on it) reads, from each recording's read.

    ``reads``: (channel asked for, whether the file's only signal was taken instead). One name for
    all: that name (``DE``, ``de_g``). Every file read as its only signal: :data:`SINGLE_VARIABLE`
    (their variable names may differ file to file, as in HIT-SM: ``z20_4``, ``VarName5``; claiming
    the configured ``DE`` would be false). A mix: :data:`PER_FILE`. The variable each file gave is
    in ``protocol["recordings"]`` and the ``variable`` metadata column.
    """
    used = {SINGLE_VARIABLE if single else channel for channel, single in reads}
    if not used:
        return default
    return used.pop() if len(used) == 1 else PER_FILE


def _protocol(
    cfg: DataConfig,
    res: Resolution,
    resampling: dict[str, str],
    recordings: list[dict[str, Any]],
    channel: str,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "setup": cfg.setup,
        "split": cfg.split,
        "region_order": "train | gap | val | gap | test (per recording, by time)"
        if cfg.split == "time"
        else "train loads: train | gap | val (by time); test loads: whole recording is test",
        "split_fractions": [float(f) for f in cfg.split_fractions],
        "guard_gap": cfg.effective_guard_gap,
        "window_length": int(cfg.window_length),
        "train_hop": int(cfg.train_hop),
        "eval_hop": cfg.effective_eval_hop,
        "eval_windows_overlap": cfg.effective_eval_hop < int(cfg.window_length),
        "band_hz": _band(cfg),
        "band_filter": None
        if cfg.band_hz is None
        else band_filter(cfg.fs_hz, cfg.band_hz).describe()
        + "; applied to each whole recording after resampling, before splitting",
        "healthy_class": res.healthy_class,
        "balance": cfg.balance,
        "seed": int(cfg.seed),
        "fs_hz": int(cfg.fs_hz),
        "channel": channel,  # what was read (see dataset_channel); data.channel is in the config
        "classes": list(res.class_names),
        "n_recordings": len(recordings),
        "resampling": resampling,
        "recordings": recordings,
        "note": _source_note(cfg),
    }
    if cfg.setup != "generic":
        p["source"] = _source_name(cfg)
    if cfg.split == "load":
        p["train_loads"] = list(cfg.train_loads)
        p["test_loads"] = list(cfg.test_loads)
    elif cfg.split == "condition":
        p["region_order"] = (
            f"training {cfg.condition} values: train | gap | val (by time); test {cfg.condition} "
            "values: whole recording is test"
        )
        p["condition"] = cfg.condition
        p["train_conditions"] = list(cfg.train_conditions or [])
        p["test_conditions"] = list(cfg.test_conditions or [])
    else:
        p["loads"] = None if cfg.loads is None else list(cfg.loads)
    if cfg.manifest:
        p["manifest"] = str(cfg.manifest)
    return _jsonable(p)


def _source_name(cfg: DataConfig) -> str:
    from fault_diag.data.sources import source_for_setup

    return source_for_setup(cfg.setup).name


def _source_note(cfg: DataConfig) -> str:
    """What the split can and cannot show on the setup's source (CWRU's for the generic setup)."""
    if cfg.setup == "generic":
        return BEARING_NOTE
    from fault_diag.data.sources import source_for_setup

    return source_for_setup(cfg.setup).note or BEARING_NOTE


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj
