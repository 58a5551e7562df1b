"""Atomic file and folder writes, and file hashes: the one place the package does these.

* :func:`atomic_write` / :func:`atomic_write_bytes` / :func:`atomic_write_text` /
  :func:`atomic_write_json`: write to a unique temporary file in the target's folder, ``fsync``,
  then ``os.replace`` onto the target (atomic on POSIX and Windows within one file system). The
  temporary file is removed on any error (``KeyboardInterrupt`` included), so a failed or killed
  write leaves the previous file intact and no partial file under the target's name. The new file
  gets the usual permissions (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.
* :func:`atomic_replace_dir`: swap a finished staging folder in for ``target`` (the previous
  folder is moved aside, then deleted only once the new one is in place).
* :func:`remove_stale_temporaries`: clean what killed writers left next to a target folder.
* :func:`file_sha256`: hex SHA-256 of a file, read in chunks.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

#: A temporary folder without an owner in its name (written before owners were recorded) is
#: stale once untouched for this long (seconds).
STALE_LEGACY_TEMP_S = 3600

_CHUNK = 1 << 20


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], object], *, binary: bool
) -> Path:
    """Write ``path`` atomically: ``write(handle)`` fills a temporary file that then replaces it.

    The parent folder is created if needed. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target)
    try:
        # "x": never clobber; os.open's default 0o666 honours the umask, unlike mkstemp's 0o600.
        fh: IO[Any]
        with open(tmp, "xb") if binary else open(tmp, "x", encoding="utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    return atomic_write(path, lambda fh: fh.write(data), binary=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see the module docstring)."""
    return atomic_write(path, lambda fh: fh.write(text), binary=False)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, **json_kw: Any) -> Path:
    """Write ``json.dumps(obj, **json_kw)`` to ``path`` atomically (``indent=2`` unless given)."""
    json_kw.setdefault("indent", 2)
    return atomic_write_text(path, json.dumps(obj, **json_kw))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file at ``path`` (read in 1 MiB chunks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------- folders


def owner_tag() -> str:
    """``<pid>@<host>``: who writes a temporary folder (hosts may share a network folder)."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
    return f"{os.getpid()}@{host}"


def make_staging_dir(target: str | os.PathLike[str]) -> Path:
    """A new empty folder next to ``target`` (``.<name>.tmp-<pid>@<host>-*``) to build it in.

    The owner in the name lets :func:`remove_stale_temporaries` tell a killed writer's leftovers
    from a running writer's folder.
    """
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{owner_tag()}-", dir=out.parent))


def atomic_replace_dir(staging_dir: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Move the finished ``staging_dir`` to ``target``, replacing an existing folder there.

    The old folder is renamed to ``.<name>.old-<pid>@<host>`` first, the new one renamed into place,
    then the old one deleted; if the second rename fails the old folder is put back. Both folders
    must be on one file system (create ``staging_dir`` with :func:`make_staging_dir`). The staging
    folder first gets the usual permissions (``0o777`` less the umask; ``mkdtemp`` makes ``0o700``).
    A process killed between the renames leaves the moved-aside folder, which
    :func:`remove_stale_temporaries` restores.
    """
    tmp, out = Path(staging_dir), Path(target)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{owner_tag()}")
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return out


_TEMP_NAME = re.compile(
    r"^\.(?P<target>.+)\.(?P<kind>tmp|old)-(?:(?P<pid>\d+)@(?P<host>[A-Za-z0-9._]+))?"
)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process, alive
        return True
    return True


def remove_stale_temporaries(out_dir: Path, *, what: str = "export") -> list[Path]:
    """Remove what killed writers of ``out_dir`` left next to it; return what was removed.

    A SIGKILL (or a power cut) ends a writer without cleanup, leaving ``.<name>.tmp-<pid>@<host>-*``
    (the folder being built) or, between the two renames of :func:`atomic_replace_dir`,
    ``.<name>.old-<pid>@<host>`` (the previous folder, moved aside) with ``<name>`` itself gone. A
    folder of this host whose pid no longer runs is stale: a temporary one is deleted, a
    moved-aside one is put back in place (the interrupted replacement never happened) or deleted
    when ``<name>`` exists again. Folders of other hosts are left alone (their pids mean nothing
    here); names without an owner are stale once untouched for :data:`STALE_LEGACY_TEMP_S`.
    """
    removed: list[Path] = []
    host = owner_tag().split("@", 1)[1]
    try:
        candidates = sorted(out_dir.parent.glob(f".{glob.escape(out_dir.name)}.*-*"))
    except OSError:
        return removed
    for path in candidates:
        m = _TEMP_NAME.match(path.name)
        if m is None or m["target"] != out_dir.name or not path.is_dir() or path.is_symlink():
            continue
        if m["pid"] is None:
            try:
                stale = time.time() - path.stat().st_mtime > STALE_LEGACY_TEMP_S
            except OSError:
                continue
        else:
            stale = m["host"] == host and not _alive(int(m["pid"]))
        if not stale:
            continue
        if m["kind"] == "old" and not out_dir.exists():
            try:
                os.replace(path, out_dir)
                log.warning(
                    "restored %s from %s (a killed %s was replacing it)", out_dir, path, what
                )
            except OSError as exc:
                log.warning("could not restore %s from %s: %s", out_dir, path, exc)
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
            log.info("removed %s, left by a killed %s", path, what)
    return removed
