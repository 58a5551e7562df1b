"""Data layer: CWRU catalogue, download, readers, resampling, leak-free splits, windows, cache.

Flow (one direction): recordings (.mat/.csv/.npy/.npz) -> catalogue + reader -> resampling to the task
rate -> leak-free split by time (or load) -> windows -> audit -> cache. The entry point is
:func:`build_dataset`.
"""

from fault_diag.data.audit import AuditReport, audit_windows
from fault_diag.data.catalogue import file_info, load_catalogue, official_url
from fault_diag.data.config import DataConfig, store_schema
from fault_diag.data.dataset import WindowedDataset, build_dataset
from fault_diag.data.download import fetch, fetch_file, verify_files
from fault_diag.data.errors import DataError
from fault_diag.data.readers import read_mat, read_recording
from fault_diag.data.resample import resample
from fault_diag.data.setups import get_setup, list_setups

__all__ = [
    "AuditReport",
    "DataConfig",
    "DataError",
    "WindowedDataset",
    "audit_windows",
    "build_dataset",
    "fetch",
    "fetch_file",
    "file_info",
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
