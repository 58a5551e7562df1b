"""Download and verification of CWRU files with pooch (sha256 registry from the catalogue).

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

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fault_diag import paths
from fault_diag.data.catalogue import base_url as resolve_base_url
from fault_diag.data.catalogue import file_info, load_catalogue
from fault_diag.data.errors import DataError, DownloadError, HashMismatchError, MissingDataError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0


def sha256_of(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


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
    url_base = resolve_base_url(base_url)
    url = f"{url_base}/{name}"
    import pooch  # lazy: only downloads need it
    import requests

    fetcher = pooch.create(
        path=target, base_url=url_base + "/", registry={name: registry([number])[name]}
    )
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout_s)
    try:
        return Path(fetcher.fetch(name, downloader=downloader))
    except ValueError as exc:
        if "hash" in str(exc).lower():
            raise HashMismatchError(
                f"{name} downloaded from {url} does not match the catalogue SHA-256 {expected}; "
                f"the download was discarded (nothing was written to {target}). The server may "
                f"serve a different file. {_hint(number, target)}"
            ) from exc
        raise DownloadError(f"download of {url} failed: {exc}. {_hint(number, target)}") from exc
    except requests.exceptions.RequestException as exc:
        raise DownloadError(
            f"could not download {url} ({type(exc).__name__}: {exc}). {_hint(number, target)}"
        ) from exc


def _check_hash(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise HashMismatchError(
            f"{path}: SHA-256 {actual} does not match the catalogue value {expected}; the file is "
            "corrupt or not the published CWRU file: replace it (e.g. delete it and run "
            "`fd-data download`)"
        )


@dataclass
class FetchReport:
    """Outcome of :func:`fetch`: local paths of the files obtained and errors of the others."""

    # keys: CWRU file numbers (fetch), or a source's file keys ("MFS/IR2_600.mat")
    paths: dict[Any, Path] = field(default_factory=dict)
    errors: dict[Any, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every file was obtained."""
        return not self.errors

    def raise_if_failed(self) -> None:
        """Raise :class:`DownloadError` listing every failure."""
        if self.errors:
            raise DownloadError(
                f"{len(self.errors)} file(s) could not be obtained:\n  "
                + "\n  ".join(
                    f"{n if isinstance(n, str) else f'{n}.mat'}: {msg}"
                    for n, msg in sorted(self.errors.items(), key=lambda kv: str(kv[0]))
                )
            )


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


@dataclass
class FileStatus:
    """Verification result of one catalogue file in a folder."""

    file: str
    path: str
    status: str  # ok | missing | hash_mismatch | unverified (no known hash)
    expected_sha256: str | None
    actual_sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)


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
        actual = sha256_of(path)
        if expected is None:
            status = "unverified"
        else:
            status = "ok" if actual == expected else "hash_mismatch"
        out.append(FileStatus(str(r.file_name), str(path), status, expected, actual))
    return out


def verify_entries(entries: Iterable[tuple[str, Path, str | None]]) -> list[FileStatus]:
    """Status of each ``(name, path, expected sha256)`` (any source)."""
    out = []
    for name, path, expected in entries:
        if not path.is_file():
            out.append(FileStatus(name, str(path), "missing", expected, None))
            continue
        actual = sha256_of(path)
        status = (
            "unverified" if expected is None else ("ok" if actual == expected else "hash_mismatch")
        )
        out.append(FileStatus(name, str(path), status, expected, actual))
    return out


def fetch_source_files(
    source: Any,
    keys: Iterable[str],
    *,
    folder: str | Path | None = None,
    base_url: str | None = None,
    progress: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> FetchReport:
    """Obtain ``keys`` of a :class:`~fault_diag.data.sources.base.DataSource` (as :func:`fetch`).

    A folder that already holds the source's files (``source.data_dir_override()``) is only
    checked, never written; else each file goes to ``folder`` (default ``source.download_dir()``)
    under its key (``MFS/IR2_600.mat``), fetched from ``source.url(key, base_url)`` by pooch, which
    keeps it only when its SHA-256 matches the catalogue. Failures are collected, not raised.
    """
    report = FetchReport()
    override = source.data_dir_override() if folder is None else None
    target = Path(folder).expanduser().resolve() if folder is not None else source.download_dir()
    for key in sorted(set(keys)):
        expected = source.expected_sha256(key)
        try:
            if override is not None:
                path = override / key
                if not path.is_file():
                    raise MissingDataError(
                        f"{key} is not in {override} (files are never downloaded to a folder the "
                        f"project reads {source.title} from): put it there, or unset "
                        f"{source.dir_env or paths.DATA_DIR_ENV} to download it"
                    )
                _check_hash(path, expected)
                report.paths[key] = path
                continue
            report.paths[key] = _pooch_fetch(
                key, source.url(key, base_url), expected, target, progress, timeout_s, source
            )
        except DataError as exc:
            log.debug("%s", exc)
            report.errors[key] = str(exc)
    return report


def _pooch_fetch(
    key: str,
    url: str,
    expected: str | None,
    target: Path,
    progress: bool,
    timeout_s: float,
    source: Any,
) -> Path:
    import pooch  # lazy: only downloads need it
    import requests

    hint = f"To supply it by hand, put it at {target / key} (from {url}), or {source.dir_hint()}"
    fetcher = pooch.create(
        path=target,
        base_url="",
        registry={key: f"sha256:{expected}" if expected else None},
        urls={key: url},
    )
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout_s)
    try:
        return Path(fetcher.fetch(key, downloader=downloader))
    except ValueError as exc:
        if "hash" in str(exc).lower():
            raise HashMismatchError(
                f"{key} downloaded from {url} does not match the catalogue SHA-256 {expected}; "
                f"the download was discarded (nothing was written to {target}). {hint}"
            ) from exc
        raise DownloadError(f"download of {url} failed: {exc}. {hint}") from exc
    except requests.exceptions.RequestException as exc:
        raise DownloadError(
            f"could not download {url} ({type(exc).__name__}: {exc}). {hint}"
        ) from exc
