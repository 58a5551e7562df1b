"""A job's lifecycle, whatever tracks it: stop signals, the closing of its run, its run folder, and
the commit of the code it runs.

- SIGTERM and SIGHUP (what SLURM, containers, ``kill`` and a closed terminal send) become
  :class:`Terminated`, Ctrl-C stays KeyboardInterrupt, raised outside writes to a local store
  (:func:`deferred_signals`), so the job's tracking run is closed KILLED instead of left RUNNING.
- :func:`tracked_run` closes a run FAILED or KILLED when its block raises.
- :func:`run_folder_lock` keeps two jobs out of one run folder.

Used by ``fd-train``'s job (:mod:`fault_diag.training.run`), ``fd-sweep`` and the MLflow backend; no
tracking backend is imported here.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class _SignalGate:
    """What :func:`deferred_signals` and the job's signal handlers share (main thread only)."""

    depth = 0
    pending: Callable[[], None] | None = None


@contextlib.contextmanager
def deferred_signals(active: bool = True) -> Iterator[None]:
    """Let the stop signals of a job (see :func:`on_stop_signal`) wait for the end of the block;
    one that arrived meanwhile takes effect (raises) as the block ends.

    For writes to a local sqlite store: an exception raised by a signal handler in the middle of
    SQLAlchemy's commit or connection return can leave a pooled connection holding the file's
    write lock, after which closing the run fails with "database is locked" and the run stays
    RUNNING (measured: 3 of 100 random interrupts); during a schema migration it leaves a
    half-migrated store. The writes are short, so the wait costs a fraction of a second. Not for
    a tracking server (``active=False``): its requests may retry for minutes, and an interrupted
    request leaves nothing behind. Blocking the signals (``pthread_sigmask``) would not do:
    Python runs handlers in the main thread whichever thread the kernel delivers to, and torch's
    threads do not block them.
    """
    import threading

    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    _SignalGate.depth += 1
    try:
        yield
    finally:
        _SignalGate.depth -= 1
        if _SignalGate.depth == 0 and _SignalGate.pending is not None:
            action, _SignalGate.pending = _SignalGate.pending, None
            action()


def on_stop_signal(action: Callable[[], None]) -> None:
    """From a signal handler: run ``action`` (which raises) now, or at the end of the outermost
    :func:`deferred_signals` block when one is open. Only the first pending action is kept."""
    if _SignalGate.depth > 0:
        if _SignalGate.pending is None:
            _SignalGate.pending = action
        return
    action()


@functools.cache
def git_commit() -> str:
    """The commit of the code that runs (``-dirty`` when its tree has changes), or ``unknown``.

    Asked of the checkout that holds this package, not of ``project_root()``: the root may be moved
    (``FAULT_DIAG_ROOT``) to keep stores and outputs elsewhere. Asked once per process and kept:
    a process runs the code it imported, and the sweep launchers reuse worker processes across
    jobs, so asking git again for each job would record commits made *after* the worker loaded its
    code (``run_job`` asks at its start, right after the import).
    """
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Terminated(BaseException):
    """SIGTERM or SIGHUP (what SLURM, containers, ``kill`` and a closed terminal send) arrived
    while a job ran. A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on
    the way swallows it."""


class RunFolderBusy(ValueError):
    """Another process is running a job in the same run folder (a ValueError: the folder given
    cannot be used as given, like any other bad input)."""


def _stop_signals(*names: str) -> list[Any]:
    """The signals of ``names`` this platform has (Windows has no SIGHUP)."""
    import signal

    return [getattr(signal, name) for name in names if hasattr(signal, name)]


def stop_signals_raise() -> Callable[[], None]:
    """While a job runs, turn SIGTERM and SIGHUP into :class:`Terminated` and SIGINT into
    KeyboardInterrupt, raised outside writes to a local store
    (:func:`deferred_signals`), so that its tracking run is closed as KILLED
    instead of being left RUNNING; returns the function that restores the old handlers.

    Only the first signal raises: a second one (SLURM repeats SIGTERM before its SIGKILL) would
    otherwise interrupt the closing of the run. A signal that was ignored (``nohup``) stays
    ignored. Outside the main thread (where signals cannot be handled) it does nothing.
    """
    import signal

    received: list[int] = []

    def stop(signum: int) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(f"{signal.Signals(signum).name} received")

    def handler(signum: int, frame: Any) -> None:
        if received:
            log.warning("signal %d ignored: the job is already stopping", signum)
            return
        received.append(signum)
        on_stop_signal(lambda: stop(signum))

    previous: dict[int, Any] = {}
    try:
        for sig in _stop_signals("SIGTERM", "SIGHUP", "SIGINT"):
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread
        return lambda: None

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP ignored for a short block (closing a run after an error): a
    second Ctrl-C or TERM would leave the run half-closed. Outside the main thread, no change."""
    import signal

    try:
        saved = {
            sig: signal.signal(sig, signal.SIG_IGN)
            for sig in _stop_signals("SIGINT", "SIGTERM", "SIGHUP")
        }
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def tracked_run(open_tracker: Callable[[], Any], *, defer: bool = False) -> Iterator[Any]:
    """Open a tracker (``open_tracker()``) and close its run when the block raises: KILLED for
    Ctrl-C (KeyboardInterrupt) and :class:`Terminated`, FAILED for anything else (a full disk
    included), then re-raise.

    The opening holds the stop signals (``defer``: a local store, see
    :func:`deferred_signals`): one arriving while the run is opened takes
    effect once the tracker is here to be closed, so no window leaves an open run unclosed.
    """
    tracker = None
    try:
        with deferred_signals(defer):
            tracker = open_tracker()
        yield tracker
    except (KeyboardInterrupt, Terminated):
        if tracker is not None:
            with signals_held():
                tracker.fail("KILLED")
        raise
    except BaseException:
        if tracker is not None:
            with signals_held():
                tracker.fail("FAILED")
        raise


@contextlib.contextmanager
def run_folder_lock(output_dir: Path) -> Iterator[None]:
    """Hold a lock on ``output_dir`` while a job runs there; raise :class:`RunFolderBusy` at once
    when another process holds it.

    Two jobs in one folder (two runs started in the same second with the default folder name,
    or a resume started while the first job still runs) would overwrite each other's checkpoint
    and both log into the run recorded there. The lock is ``flock`` on the folder itself: it
    adds no file (a job refused by its checks leaves its folder as empty as before) and goes
    with its process however that ends, so a killed job never leaves its folder locked. Where
    the file system cannot lock a folder (some network mounts) the job runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no flock
        yield
        return
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(output_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusy(
                f"run folder {output_dir} is in use by another fd-train process; "
                "give this job its own hydra.run.dir"
            ) from None
        except OSError as exc:
            log.debug("run folder %s cannot be locked (%s): running unlocked", output_dir, exc)
        yield
    finally:
        os.close(fd)  # releases the lock
        if created:
            # a job refused before it wrote anything (bad data, a bad store) leaves no empty
            # folder behind; rmdir fails, harmlessly, on a folder that holds anything
            with contextlib.suppress(OSError):
                output_dir.rmdir()
