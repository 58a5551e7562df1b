"""Data layer: data sources (CWRU, HIT-SM, manifest), catalogues, download, readers, resampling,
leak-free splits, windows, cache.

Flow (one direction): recordings (.mat/.csv/.npy/.npz) -> source catalogue + reader -> resampling to
the task rate -> optional band-limiting (:func:`band_limit`) -> leak-free split by time (or by
condition: load, speed, rig) -> windows ->
audit -> cache. The entry point is :func:`build_dataset`; :func:`band_power_profile` and
:func:`flag_spectral_outliers` audit where each class keeps its power.
"""

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> module that defines it. Imported on first use (PEP 562), so that importing a light
# module such as fault_diag.data.config (every CLI's --help) does not pull in pandas or scipy.
_EXPORTS = {
    "AuditReport": "audit",
    "audit_windows": "audit",
    "file_info": "sources.cwru.catalogue",
    "load_catalogue": "sources.cwru.catalogue",
    "official_url": "sources.cwru.catalogue",
    "DataConfig": "config",
    "store_schema": "config",
    "WindowedDataset": "dataset",
    "build_dataset": "dataset",
    "fetch": "sources.cwru.download",
    "fetch_file": "sources.cwru.download",
    "verify_files": "sources.cwru.download",
    "DataError": "errors",
    "BandFilter": "filters",
    "band_filter": "filters",
    "band_limit": "filters",
    "band_limit_margin": "filters",
    "read_mat": "readers",
    "read_recording": "readers",
    "get_setup": "setups",
    "list_setups": "setups",
    "BandProfile": "spectral",
    "SpectralFlag": "spectral",
    "band_power_profile": "spectral",
    "flag_spectral_outliers": "spectral",
    "DataSource": "sources.base",
    "get_source": "sources",
    "list_sources": "sources",
    "register_source": "sources",
}

if TYPE_CHECKING:
    from fault_diag.data.audit import AuditReport, audit_windows
    from fault_diag.data.config import DataConfig, store_schema
    from fault_diag.data.dataset import WindowedDataset, build_dataset
    from fault_diag.data.errors import DataError
    from fault_diag.data.filters import BandFilter, band_filter, band_limit, band_limit_margin
    from fault_diag.data.readers import read_mat, read_recording
    from fault_diag.data.setups import get_setup, list_setups
    from fault_diag.data.sources import get_source, list_sources, register_source
    from fault_diag.data.sources.base import DataSource
    from fault_diag.data.sources.cwru.catalogue import file_info, load_catalogue, official_url
    from fault_diag.data.sources.cwru.download import fetch, fetch_file, verify_files
    from fault_diag.data.spectral import (
        BandProfile,
        SpectralFlag,
        band_power_profile,
        flag_spectral_outliers,
    )


# Bound now, not lazily: importing the submodule fault_diag.data.resample (dataset.py does) would
# otherwise leave the package attribute `resample` pointing at the module, not the function.
from fault_diag.data.resample import resample  # noqa: E402 - numpy only (scipy is imported lazily)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fault_diag.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fault_diag.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "AuditReport",
    "BandFilter",
    "BandProfile",
    "DataConfig",
    "DataError",
    "DataSource",
    "SpectralFlag",
    "WindowedDataset",
    "audit_windows",
    "band_filter",
    "band_limit",
    "band_limit_margin",
    "band_power_profile",
    "build_dataset",
    "fetch",
    "fetch_file",
    "file_info",
    "flag_spectral_outliers",
    "get_setup",
    "get_source",
    "list_setups",
    "list_sources",
    "load_catalogue",
    "official_url",
    "read_mat",
    "read_recording",
    "register_source",
    "resample",
    "store_schema",
    "verify_files",
]
