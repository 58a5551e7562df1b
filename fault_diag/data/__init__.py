"""Data layer: CWRU catalogue, download, readers, resampling, leak-free splits, windows, cache.

Flow (one direction): recordings (.mat/.csv/.npy/.npz) -> catalogue + reader -> resampling to the task
rate -> optional band-limiting (:func:`band_limit`) -> leak-free split by time (or load) -> windows ->
audit -> cache. The entry point is :func:`build_dataset`; :func:`band_power_profile` and
:func:`flag_spectral_outliers` audit where each class keeps its power.
"""

from fault_diag.data.audit import AuditReport, audit_windows
from fault_diag.data.catalogue import file_info, load_catalogue, official_url
from fault_diag.data.config import DataConfig, store_schema
from fault_diag.data.dataset import WindowedDataset, build_dataset
from fault_diag.data.download import fetch, fetch_file, verify_files
from fault_diag.data.errors import DataError
from fault_diag.data.filters import BandFilter, band_filter, band_limit, band_limit_margin
from fault_diag.data.readers import read_mat, read_recording
from fault_diag.data.resample import resample
from fault_diag.data.setups import get_setup, list_setups
from fault_diag.data.spectral import (
    BandProfile,
    SpectralFlag,
    band_power_profile,
    flag_spectral_outliers,
)

__all__ = [
    "AuditReport",
    "BandFilter",
    "BandProfile",
    "DataConfig",
    "DataError",
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
    "list_setups",
    "load_catalogue",
    "official_url",
    "read_mat",
    "read_recording",
    "resample",
    "store_schema",
    "verify_files",
]
