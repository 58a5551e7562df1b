"""Download and verification of a source's files with pooch (sha256 from the source's catalogue).

- A folder that already holds a source's files (``source.data_dir_override()``, e.g.
  ``$FAULT_DIAG_DATA_DIR``) is only checked, never written to.
- Else files go to ``source.download_dir()``; a file already there with the right hash is used
  without network.
- pooch downloads to a temporary file in the target folder and moves it into place only when the hash
  matches, so a corrupted download leaves nothing behind.

The generic pieces (:class:`FetchReport`, :class:`FileStatus`, :func:`verify_entries`,
:func:`fetch_source_files`) live here; a source's own download code (CWRU:
:mod:`fault_diag.data.sources.cwru.download`) builds on them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fault_diag import paths
from fault_diag.data.errors import DataError, DownloadError, HashMismatchError, MissingDataError
from fault_diag.io import file_sha256

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0


def _check_hash(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = file_sha256(path)
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


def verify_entries(entries: Iterable[tuple[str, Path, str | None]]) -> list[FileStatus]:
    """Status of each ``(name, path, expected sha256)`` (any source)."""
    out = []
    for name, path, expected in entries:
        if not path.is_file():
            out.append(FileStatus(name, str(path), "missing", expected, None))
            continue
        actual = file_sha256(path)
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
            url = source.url(key, base_url)
            hint = f"To supply it by hand, put it at {target / key} (from {url}), or {source.dir_hint()}"
            report.paths[key] = pooch_fetch(key, url, expected, target, progress, timeout_s, hint)
        except DataError as exc:
            log.debug("%s", exc)
            report.errors[key] = str(exc)
    return report


def pooch_fetch(
    key: str,
    url: str,
    expected: str | None,
    target: Path,
    progress: bool,
    timeout_s: float,
    hint: str,
) -> Path:
    """Download ``url`` to ``target/key`` with pooch, checked against ``expected`` (SHA-256); the
    one download of every source. Errors name the URL and end with ``hint`` (how to supply the file
    by hand); a file whose hash differs is discarded, nothing is left under ``target``."""
    import pooch  # lazy: only downloads need it
    import requests

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
                f"the download was discarded (nothing was written to {target}). The server may "
                f"serve a different file. {hint}"
            ) from exc
        raise DownloadError(f"download of {url} failed: {exc}. {hint}") from exc
    except requests.exceptions.RequestException as exc:
        raise DownloadError(
            f"could not download {url} ({type(exc).__name__}: {exc}). {hint}"
        ) from exc
