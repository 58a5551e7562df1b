"""Where things live on disk.

Hydra 1.3 does not chdir, and users start commands from anywhere, so every default path is resolved
from one root (:func:`project_root`), never from wherever a library happens to look.

The root:

- ``FAULT_DIAG_HOME`` (or its older name ``FAULT_DIAG_ROOT``) when set: outputs, the dataset cache
  and the default MLflow store (``mlflow.db``, ``mlartifacts/``) live there;
- else, in a source checkout (an editable install, ``pip install -e .``): the checkout;
- else (a package installed from a wheel): the working folder of the command.

The configuration (``conf/``) is found by :func:`config_dir`, the one place that knows: the copy
shipped inside the installed package (``fault_diag/conf``), else the checkout's top-level ``conf/``.

Settings (environment variables):
- ``FAULT_DIAG_HOME``: the root (above). ``FAULT_DIAG_ROOT``: the same, kept for existing setups.
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
HOME_ENV = "FAULT_DIAG_HOME"
ROOT_ENV = "FAULT_DIAG_ROOT"
#: The package's folder (``.../fault_diag``).
PACKAGE_DIR = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The source checkout that holds this package (``pyproject.toml`` and ``conf/`` next to it), or
    None for an installed package (in ``site-packages`` there is neither)."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "conf").is_dir():
        return checkout
    return None


def project_root() -> Path:
    """The root of outputs, caches and the default MLflow store: ``$FAULT_DIAG_HOME`` (or
    ``$FAULT_DIAG_ROOT``), else the source checkout, else the working directory."""
    for name in (HOME_ENV, ROOT_ENV):
        env = os.environ.get(name)
        if env:
            return Path(env).expanduser().resolve()
    return checkout_root() or Path.cwd().resolve()


def config_dir() -> Path:
    """The folder of Hydra's configuration (``config.yaml``, ``model/``, ``noise/``, ...).

    The copy inside the installed package (``fault_diag/conf``, put there by the wheel build from
    the top-level ``conf/``), else the checkout's ``conf/``. Every composition (``fd-train``, the
    concurrent runner, tests) asks this function; nothing else spells the path.
    """
    packaged = PACKAGE_DIR / "conf"
    if (packaged / "config.yaml").is_file():
        return packaged
    checkout = PACKAGE_DIR.parent / "conf"
    if (checkout / "config.yaml").is_file():
        return checkout
    raise FileNotFoundError(
        f"no Hydra configuration: neither {packaged} (installed package) nor {checkout} (source "
        "checkout) holds config.yaml; reinstall fault-diag"
    )


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
