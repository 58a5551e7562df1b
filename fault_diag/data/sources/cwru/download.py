"""Download and verification of CWRU files with pooch (sha256 registry from the CWRU catalogue).

- Files go to :func:`fault_diag.paths.download_dir` (``$FAULT_DIAG_DOWNLOAD_DIR``, default
  ``<root>/data/cwru``). A file already there with the right hash is used without network.
- When ``$FAULT_DIAG_DATA_DIR`` is set, files are read from that folder: hashes are checked, nothing is
  ever downloaded.
- The base URL is the official site unless ``base_url=`` or ``$FAULT_DIAG_CWRU_BASE_URL`` says
  otherwise (a mirror, or a local test server).
- pooch downloads to a temporary file in the target folder and moves it into place only when the hash
  matches, so a corrupted download leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from fault_diag import paths
from fault_diag.data.download import (
    DEFAULT_TIMEOUT_S,
    FetchReport,
    FileStatus,
    _check_hash,
    pooch_fetch,
)
from fault_diag.data.errors import DataError, MissingDataError
from fault_diag.data.sources.cwru.catalogue import base_url as resolve_base_url
from fault_diag.data.sources.cwru.catalogue import file_info, load_catalogue
from fault_diag.io import file_sha256

log = logging.getLogger(__name__)


def registry(numbers: Iterable[int] | None = None) -> dict[str, str | None]:
    """pooch registry ``{"N.mat": "sha256:<hex>" or None}`` for ``numbers`` (default: every file)."""
    cat = load_catalogue()
    if numbers is not None:
        cat = cat.loc[[int(n) for n in numbers]]
    return {
        str(r.file_name): (f"sha256:{r.sha256}" if str(r.sha256) else None)
        for r in cat.itertuples(index=False)
    }


def _hint(number: int, folder: Path) -> str:
    return (
        f"To supply it by hand, put {number}.mat (from the CWRU Bearing Data Center) in {folder}, "
        f"or set {paths.DATA_DIR_ENV} to a folder that holds it"
    )


def fetch_file(
    number: int,
    *,
    folder: str | Path | None = None,
    base_url: str | None = None,
    progress: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Local path of CWRU file ``number``, downloading it when needed (see module docstring).

    Raises :class:`HashMismatchError` (wrong bytes; nothing is left in the cache),
    :class:`DownloadError` (server unreachable or HTTP error; names the URL and how to supply the file
    by hand) or :class:`MissingDataError` (``$FAULT_DIAG_DATA_DIR`` set and the file is not there).
    """
    number = int(number)
    info = file_info(number)
    name = str(info["file_name"])
    expected = str(info["sha256"]) or None
    override = paths.data_dir_override()
    if override is not None and folder is None:
        path = override / name
        if not path.is_file():
            raise MissingDataError(
                f"{name} is not in {paths.DATA_DIR_ENV}={override} (files are never downloaded while "
                f"it is set): put {name} there or unset {paths.DATA_DIR_ENV} to download it"
            )
        _check_hash(path, expected)
        return path
    target = Path(folder).expanduser().resolve() if folder is not None else paths.download_dir()
    url = f"{resolve_base_url(base_url)}/{name}"
    return pooch_fetch(name, url, expected, target, progress, timeout_s, _hint(number, target))


def fetch(
    numbers: Iterable[int],
    *,
    folder: str | Path | None = None,
    base_url: str | None = None,
    progress: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> FetchReport:
    """Obtain every file in ``numbers`` (see :func:`fetch_file`); failures are collected, not raised."""
    report = FetchReport()
    for n in sorted({int(n) for n in numbers}):
        try:
            report.paths[n] = fetch_file(
                n, folder=folder, base_url=base_url, progress=progress, timeout_s=timeout_s
            )
        except DataError as exc:
            log.debug("%s", exc)
            report.errors[n] = str(exc)
    return report


def verify_files(
    numbers: Iterable[int] | None = None, folder: str | Path | None = None
) -> list[FileStatus]:
    """Status of each catalogue file (default: all) in ``folder`` (default: recordings folder)."""
    folder = Path(folder).expanduser().resolve() if folder is not None else paths.recordings_dir()
    cat = load_catalogue()
    if numbers is not None:
        cat = cat.loc[sorted({int(n) for n in numbers})]
    out = []
    for r in cat.itertuples(index=False):
        path = folder / str(r.file_name)
        expected = str(r.sha256) or None
        if not path.is_file():
            out.append(FileStatus(str(r.file_name), str(path), "missing", expected, None))
            continue
        actual = file_sha256(path)
        if expected is None:
            status = "unverified"
        else:
            status = "ok" if actual == expected else "hash_mismatch"
        out.append(FileStatus(str(r.file_name), str(path), status, expected, actual))
    return out
