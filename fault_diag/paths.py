"""Where things live on disk.

Hydra 1.3 does not chdir, and users start commands from anywhere, so every default path is resolved
from the project root, never from the working directory.

Settings (environment variables):
- ``FAULT_DIAG_ROOT``: the project root (default: the checkout that holds this package, else the cwd).
- ``FAULT_DIAG_DATA_DIR``: a folder that already holds the CWRU ``.mat`` files (read-only is fine).
  When set, files are read from there and never downloaded.
- ``FAULT_DIAG_DOWNLOAD_DIR``: where downloads go when ``FAULT_DIAG_DATA_DIR`` is not set
  (default ``<root>/data/cwru``).
- ``FAULT_DIAG_CACHE_DIR``: cache of built (windowed) datasets (default ``<root>/data/cache``).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "FAULT_DIAG_DATA_DIR"
DOWNLOAD_DIR_ENV = "FAULT_DIAG_DOWNLOAD_DIR"
CACHE_DIR_ENV = "FAULT_DIAG_CACHE_DIR"
ROOT_ENV = "FAULT_DIAG_ROOT"


def project_root() -> Path:
    """The project root: ``$FAULT_DIAG_ROOT``, else the source checkout, else the working directory."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout
    return Path.cwd().resolve()


def data_dir_override() -> Path | None:
    """The user-supplied recordings folder (``$FAULT_DIAG_DATA_DIR``), or None when unset."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser().resolve() if env else None


def download_dir() -> Path:
    """Folder that downloaded recordings are cached in."""
    env = os.environ.get(DOWNLOAD_DIR_ENV)
    return Path(env).expanduser().resolve() if env else project_root() / "data" / "cwru"


def recordings_dir() -> Path:
    """Folder the CWRU recordings are read from: the override if set, else the download folder."""
    return data_dir_override() or download_dir()


def cache_dir() -> Path:
    """Folder for built-dataset caches."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser().resolve() if env else project_root() / "data" / "cache"
