"""One error handler for every command (``fd-data``, ``fd-train``, ``fd-export``, ``fd-predict``,
``fd-report``): an error is ONE line on stderr, ``<prog>: error: <message>``, and an exit code.

Exit codes (the same for every command):

- 0: done.
- 1: a check failed (a hash mismatch, a parity check, an unusable data setup), or the machine
  failed the command (a full disk, an I/O error), or an internal error (a bug: the line says so).
- 2: bad input: an argument, a file, a configuration value, a run folder or a tracking store that
  cannot be used as given. Nothing useful was written.
- 130: interrupted (Ctrl-C); 143: terminated (SIGTERM, where the command asks for it).
- 141: the reader of stdout went away (``fd-data catalogue | head``): the command stops quietly, with
  the status a Unix tool killed by SIGPIPE has, so that ``set -o pipefail`` scripts see it as usual.

``--debug`` (or ``FAULT_DIAG_DEBUG=1``) prints the traceback before the line: the line is what a user
needs, the traceback what a developer needs.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

DEBUG_ENV = "FAULT_DIAG_DEBUG"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a writer killed by SIGPIPE
EXIT_TERMINATED = 128 + 15
MAX_MESSAGE = 2000  # a message longer than this is cut: one line must stay readable

# Exception types that mean "the input cannot be used", matched by (module prefix, class name) in the
# MRO so that this module imports nothing heavy (torch, mlflow, sqlalchemy) to classify an error.
_BAD_INPUT_TYPES: tuple[tuple[str, str], ...] = (
    (
        "builtins",
        "ValueError",
    ),  # DataError, ConfigError, ExportError, PredictError, ReportError, ...
    ("yaml", "YAMLError"),
    ("fault_diag.training.loop", "DeviceError"),  # trainer.device=cuda without a GPU
    ("fault_diag.training.checkpoint", "CheckpointError"),  # a run folder of another config
    ("fault_diag.tracking", "TrackingError"),
    ("mlflow", "MlflowException"),  # a bad filter, an unknown run or experiment, an unusable store
    ("sqlalchemy", "DatabaseError"),  # a store file that is not an sqlite database
)
# Configuration composition (fd-train): an unknown group option, a bad override, a wrong type.
_CONFIG_TYPES: tuple[tuple[str, str], ...] = (
    ("hydra", "HydraException"),
    ("omegaconf", "OmegaConfBaseException"),
)
# Errors of the environment, not of the input: the command may succeed elsewhere or later.
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_BAD_PATH = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def debug_requested(argv: Sequence[str] | None = None) -> bool:
    """True when ``--debug`` is in ``argv`` or ``FAULT_DIAG_DEBUG`` is set to a true value."""
    if argv is not None and "--debug" in argv:
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def add_debug_argument(parser: Any) -> None:
    """Add ``--debug`` to an argparse parser."""
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"on an error, print the traceback too (or set {DEBUG_ENV}=1)",
    )


def one_line(text: str) -> str:
    """``text`` as one line: lines joined with '; ' (after a line ending with ':' the following
    lines are listed with ', '), runs of blanks collapsed, cut at :data:`MAX_MESSAGE` characters."""
    lines = [" ".join(part.split()) for part in str(text).splitlines()]
    lines = [line for line in lines if line]
    out = ""
    listing = False
    for line in lines:
        if not out:
            out = line
        elif out.endswith(":"):
            out += " " + line
            listing = True
        else:
            out += (", " if listing else "; ") + line
    if len(out) > MAX_MESSAGE:
        out = out[: MAX_MESSAGE - 3] + "..."
    return out


def _is_a(exc: BaseException, kinds: tuple[tuple[str, str], ...]) -> bool:
    for cls in type(exc).__mro__:
        module = cls.__module__ or ""
        for prefix, name in kinds:
            if cls.__name__ == name and (module == prefix or module.startswith(prefix + ".")):
                return True
    return False


def yaml_error_text(exc: BaseException) -> str:
    """A YAML parse error as one short phrase: ``line L, column C: <problem>``."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return one_line(f"{where}{problem}")


_HTTP_FAILURE = re.compile(r"API request to (?P<url>\S+) failed with exception")
_HTTP_REASONS = (
    "Connection refused",
    "Name or service not known",
    "Temporary failure in name resolution",
    "No route to host",
    "timed out",
    "Network is unreachable",
    "Connection reset",
)


def _store_message(exc: BaseException, store: str | None) -> str | None:
    """A readable line for the usual failures of an MLflow store, or None."""
    text = str(exc)
    http = _HTTP_FAILURE.search(text)
    if http:
        url = http.group("url")
        base = url.split("/api/", 1)[0]
        reason = next((r for r in _HTTP_REASONS if r.lower() in text.lower()), "no answer")
        return (
            f"cannot reach the MLflow tracking server {base} ({reason.lower()}); start it, or point "
            "--tracking-uri / MLFLOW_TRACKING_URI at a reachable store"
        )
    if "file is not a database" in text or "file is encrypted or is not a database" in text:
        where = f" {store}" if store else ""
        return (
            f"the MLflow store{where} is not an sqlite database (file is not a database); "
            "point --tracking-uri / MLFLOW_TRACKING_URI at an MLflow store, or move the file away"
        )
    if "database or disk is full" in text:
        where = f" {store}" if store else ""
        return f"no space left on device: the MLflow store{where} cannot be written (database or disk is full)"
    return None


def describe(
    exc: BaseException, *, where: str | None = None, store: str | None = None
) -> tuple[int, str]:
    """(exit code, one-line message) for ``exc``.

    ``where``: what the command was writing (a folder), named when an OS error carries no path (a
    full disk raises ``OSError(ENOSPC)`` from ``write()``, which knows no file name). ``store``: the
    tracking URI, named when the store fails.
    """
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        path = exc.filename or where or "the output folder"
        return EXIT_FAILED, f"no space left on device writing {path} ({exc.strerror or exc})"
    if _is_a(exc, _CONFIG_TYPES):
        # Before the OSError branches: Hydra's MissingConfigException subclasses IOError.
        return EXIT_BAD_INPUT, _config_message(exc)
    if isinstance(exc, _BAD_PATH):
        path = exc.filename if exc.filename is not None else where
        detail = exc.strerror or type(exc).__name__
        return EXIT_BAD_INPUT, one_line(f"{path}: {detail}" if path else f"{detail}: {exc}")
    if isinstance(exc, OSError):
        path = exc.filename or where
        name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        text = f"{exc.strerror or exc} ({name})" + (f": {path}" if path else "")
        return EXIT_FAILED, one_line(text)
    if _is_a(exc, (("yaml", "YAMLError"),)):
        return EXIT_BAD_INPUT, f"invalid YAML ({yaml_error_text(exc)})"
    if type(exc).__module__.startswith("fault_diag") and _is_a(exc, _BAD_INPUT_TYPES):
        # the project's own errors (TrackingError, DataError, ...) already say what and where
        return EXIT_BAD_INPUT, one_line(str(exc)) or type(exc).__name__
    stored = _store_message(exc, store)  # mlflow's and sqlalchemy's raw store errors
    if stored is not None:
        return (EXIT_FAILED if "no space left" in stored else EXIT_BAD_INPUT), stored
    if is_torch_write_failure(exc):
        # torch.save / torch.export.save on a full disk: a RuntimeError from its zip writer
        # ("unexpected pos ...", "failed writing file ..."), not an OSError
        path = where or "the output folder"
        detail = one_line(str(exc).split("] .", 1)[-1])
        if free_bytes(path) < NEARLY_FULL:
            return EXIT_FAILED, f"no space left on device writing {path} (torch: {detail})"
        return EXIT_FAILED, f"writing a torch file under {path} failed (torch: {detail})"
    if _is_a(exc, _BAD_INPUT_TYPES):
        return EXIT_BAD_INPUT, one_line(str(exc)) or type(exc).__name__
    return EXIT_FAILED, one_line(
        f"internal error: {type(exc).__name__}: {exc} (run with --debug or {DEBUG_ENV}=1 for the "
        "traceback)"
    )


# Lines of Hydra/OmegaConf messages that describe their internals, not the user's mistake.
_CONFIG_NOISE = ("reference_type=", "object_type=", "Config search path", "provider=")


def _config_message(exc: BaseException) -> str:
    """A Hydra/OmegaConf composition error as one line: the message, the cause (where Hydra puts
    the useful part: "Value 'abc' ... could not be converted"), without the internals."""
    text = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}\n{cause}"
    kept = []
    for line in text.splitlines():
        if line.strip().startswith("Config search path"):
            break  # the search path listing follows to the end
        if not line.strip().startswith(_CONFIG_NOISE):
            kept.append(line)
    message = one_line("\n".join(kept)) or type(exc).__name__
    return _with_suggestion(message)


# Hydra's messages for a key the schema does not have and for an unknown group option.
_UNKNOWN_KEY = re.compile(
    r"Key '(?P<key>[^']+)' not in '(?P<node>[^']+)'\s*; full_key: (?P<full>\S+)"
)
_UNKNOWN_OPTION = re.compile(
    r"Could not find '(?P<group>[^'/]+(?:/[^'/]+)*)/(?P<option>[^'/]+)'\s*;?\s*"
    r"Available options in '(?P=group)': (?P<options>.+)$"
)
#: ConfigStore schema nodes (``base_model``, ...): listed by Hydra as options, never a choice.
_SCHEMA_PREFIX = "base_"


def schema_keys() -> list[str]:
    """Every key of ``fd-train``'s configuration schema (``trainer.epochs``, ``data.loads``, ...)
    and every group (``trainer``), from the dataclasses of :mod:`fault_diag.config`."""
    from omegaconf import OmegaConf

    from fault_diag.config import Config

    tree = OmegaConf.to_container(
        OmegaConf.structured(Config), resolve=False, throw_on_missing=False
    )
    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for name, value in node.items():
            key = f"{prefix}{name}"
            keys.append(key)
            if isinstance(value, dict):
                walk(value, key + ".")

    walk(tree, "")
    return keys


def did_you_mean(word: str, choices: Sequence[str], *, cutoff: float = 0.6) -> list[str]:
    """Up to three of ``choices`` close to ``word`` (difflib), the closest first; a choice that
    starts with ``word`` (``epoch`` -> ``epochs``) counts as close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=cutoff)
    prefixed = [c for c in choices if word and c.startswith(word) and c not in close]
    return (close + prefixed)[:3]


_OVERRIDE = re.compile(r"Could not override '(?P<override>[^']+)'")


def _suggest_key(full_key: str, override: str | None) -> list[str]:
    """Corrected keys for the unknown ``full_key`` (the part of ``override``'s key that failed):
    its last part matched against the names its parent has, the rest of the override kept."""
    try:
        keys = schema_keys()
    except Exception:  # noqa: BLE001 - a suggestion must never hide the error itself
        return []
    parent, _, name = full_key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == parent}
    rest = ""
    if override and override.startswith(full_key) and override != full_key:
        rest = override[len(full_key) :]  # 'traner.epochs': the failed part is 'traner'
    return [siblings[c] + rest for c in did_you_mean(name, list(siblings))]


def _node_keys(full_key: str) -> str:
    parent = full_key.rpartition(".")[0]
    try:
        keys = schema_keys()
    except Exception:  # noqa: BLE001
        return ""
    names = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
    return f"{parent or 'the configuration'} has {', '.join(names)}" if names else ""


def _with_suggestion(message: str) -> str:
    """``message`` (one line) with a "did you mean" for an unknown key or group option, without
    Hydra's advice to add the key with ``+`` (the schema is closed: nothing would read it) and
    without the schema nodes (``base_model``) in a list of options."""
    unknown = _UNKNOWN_KEY.search(message)
    if unknown is not None:
        full, key, node = unknown.group("full"), unknown.group("key"), unknown.group("node")
        override = _OVERRIDE.search(message)
        wanted = override.group("override") if override else full
        close = _suggest_key(full, wanted)
        text = f"unknown key {wanted}: {node} has no {key!r}"
        if close:
            return one_line(f"{text}; did you mean {' or '.join(close)}?")
        listing = _node_keys(full)
        return one_line(f"{text}; {listing}" if listing else text) + (
            "; fd-train --cfg job shows every key"
        )
    option = _UNKNOWN_OPTION.search(message)
    if option is not None:
        group, wanted = option.group("group"), option.group("option")
        options = [
            o.strip()
            for o in option.group("options").split(",")
            if o.strip() and not o.strip().startswith(_SCHEMA_PREFIX)
        ]
        close = did_you_mean(wanted, options)
        text = (
            message[: option.start()]
            + f"Could not find '{group}/{wanted}'; options of {group}: {', '.join(options)}"
        )
        if close:
            text += f"; did you mean {group}={close[0]}" + (
                f" (or {', '.join(close[1:])})?" if close[1:] else "?"
            )
        return one_line(text)
    return message


NEARLY_FULL = 16 << 20  # bytes: below this, a failed write is taken for a full disk
_TORCH_WRITE_FAILURES = ("PytorchStreamWriter failed writing", "inline_container.cc")


def is_torch_write_failure(exc: BaseException) -> bool:
    """True for torch's zip writer failing to write a file (full disk, I/O error)."""
    return isinstance(exc, RuntimeError) and any(k in str(exc) for k in _TORCH_WRITE_FAILURES)


def free_bytes(path: str) -> int:
    """Free bytes on the file system of ``path`` (or of its nearest existing parent)."""
    probe = os.path.abspath(path)
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        usage = os.statvfs(probe)
    except OSError:
        return 1 << 62  # unknown: do not claim the disk is full
    return usage.f_bavail * usage.f_frsize


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (tests)
        pass


class Terminated(Exception):
    """SIGTERM arrived while a command that asked for it (:func:`terminate_as_exception`) ran."""


@contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` inside the block, so that ``finally``/``except``
    blocks run (e.g. ``fd-export`` removes its temporary bundle folder). Main thread only."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"terminated by signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_cli(
    prog: str,
    body: Callable[[], int],
    *,
    debug: bool = False,
    exit_code_for: Callable[[BaseException], int | None] | None = None,
    where: Callable[[], str | None] | None = None,
    store: Callable[[], str | None] | None = None,
    console: bool = False,
) -> int:
    """Run ``body`` (which returns the exit code) and turn any error into one line and a code.

    ``exit_code_for(exc)``: the command's own code for an error (e.g. 1 for ``fd-export``'s
    ``ParityError``, a failed check although it subclasses a bad-input type), or None for the
    default of :func:`describe`. ``where``/``store``: called on an error only,
    they name the output folder and the tracking store for messages about them.

    ``console``: the process is the command itself (not a test calling ``main``). After torch's
    file writer failed (a full disk), the process then ends at once (``os._exit``) once the line is
    printed: that writer's C++ destructor retries the write, throws, and aborts the interpreter
    ("terminate called after throwing an instance of 'c10::Error'", a page of C++ frames, exit 134)
    while Python cleans up.
    """
    stdout = sys.stdout
    if stdout is not None:
        sys.stdout = _NamedStdout(stdout)  # type: ignore[assignment]
    try:
        code = body()
        sys.stdout.flush()  # a closed pipe or a full disk shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        _print(prog, "interrupted", debug)
        return EXIT_INTERRUPTED
    except Terminated as exc:
        _print(prog, str(exc), debug)
        return EXIT_TERMINATED
    except Exception as exc:  # noqa: BLE001 - the point of this function: no traceback unless asked
        code, message = describe(exc, where=_safe(where), store=_safe(store))
        own = exit_code_for(exc) if exit_code_for is not None else None
        if own is not None:
            code = own
        _print(prog, message, debug)
        if console and is_torch_write_failure(exc):
            _hard_exit(code)
        return code
    finally:
        if stdout is not None and isinstance(sys.stdout, _NamedStdout):
            sys.stdout = stdout


class _NamedStdout:
    """``sys.stdout`` while a command runs: an ``OSError`` from writing it gets the file name
    "the standard output", so that a full disk under ``> file`` is named (``write()`` errors carry
    no file name)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except OSError as exc:
            self._name(exc)
            raise

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._name(exc)
            raise

    @staticmethod
    def _name(exc: OSError) -> None:
        if exc.filename is None:
            exc.filename = "the standard output"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _hard_exit(code: int) -> None:
    """End the process now, skipping destructors (see :func:`run_cli`'s ``console``)."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _safe(func: Callable[[], str | None] | None) -> str | None:
    if func is None:
        return None
    try:
        return func()
    except Exception:  # noqa: BLE001 - a hint for a message must never raise itself
        return None


def _print(prog: str, message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    try:
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # stderr closed too: nothing left to tell
        pass


__all__ = [
    "DEBUG_ENV",
    "EXIT_BAD_INPUT",
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "Terminated",
    "add_debug_argument",
    "debug_requested",
    "describe",
    "did_you_mean",
    "one_line",
    "run_cli",
    "schema_keys",
    "terminate_as_exception",
    "yaml_error_text",
]
