"""``fd-train``: the Hydra entry point. Composition only; the work is in ``fault_diag.training.run``.

Errors are one line on stderr, ``fd-train: error: <message>``, exit 2 for bad input (a value out of
range such as ``trainer.epochs=-1``, an unknown ``noise.kind``, an unknown config option, a run folder
of another configuration, an unusable tracking store), 1 when the machine failed (full disk) or on an
internal error. ``--debug`` (or ``FAULT_DIAG_DEBUG=1``, or Hydra's own ``HYDRA_FULL_ERROR=1``) prints
the traceback as well. A job that fails before writing anything of its own leaves no run folder
behind (see :func:`remove_if_only_bookkeeping`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fault_diag.cli.errors import debug_requested, run_cli
from fault_diag.config import register_configs
from fault_diag.paths import config_dir

#: Hydra's configuration folder (see :func:`fault_diag.paths.config_dir`: packaged or checkout).
CONF_DIR = str(config_dir())
HYDRA_SUBDIR = ".hydra"
HYDRA_FILES = {"config.yaml", "hydra.yaml", "overrides.yaml"}

log = logging.getLogger(__name__)

#: Config groups that are Hydra's own or not a user's choice: left out of ``--help``.
_HELP_SKIP_GROUPS = ("hydra", "paths")
_HELP_WIDTH = 100


def _defaults(conf: Path) -> dict[str, str]:
    """The default option of each group, from ``config.yaml``'s defaults list."""
    import yaml

    try:
        data = yaml.safe_load((conf / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[str, str] = {}
    for entry in data.get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                group = str(key).replace("optional ", "").strip()
                if value is not None and not group.startswith("override "):
                    out[group] = str(value)
    return out


def help_groups(conf: Path | None = None) -> str:
    """The config groups of ``conf/`` and their options (the files in each group folder, never the
    schema nodes Hydra would list), the default marked ``*``: one indented block per group."""
    import textwrap

    conf = conf or config_dir()
    defaults = _defaults(conf)
    lines = []
    for group in sorted(p for p in conf.iterdir() if p.is_dir()):
        if group.name in _HELP_SKIP_GROUPS or group.name.startswith((".", "_")):
            continue
        options = sorted(f.stem for f in group.glob("*.yaml"))
        if not options:
            continue
        shown = [f"{o}*" if defaults.get(group.name) == o else o for o in options]
        head = f"  {group.name + ':':<12}"
        body = textwrap.wrap(", ".join(shown), width=_HELP_WIDTH - len(head))
        lines.append(head + body[0])
        lines += [" " * len(head) + more for more in body[1:]]
    return "\n".join(lines)


def _help_text(what: str) -> str:
    """``${fd_help:<what>}`` of conf/hydra/help/fd_train.yaml."""
    from fault_diag import paths

    if what == "groups":
        return help_groups()
    if what == "root":
        return str(paths.project_root())
    if what == "cache":
        return str(paths.cache_dir())
    if what == "store":
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return f"{env} ($MLFLOW_TRACKING_URI; artifacts where that store keeps them)"
        root = paths.project_root()
        return f"sqlite:///{root / 'mlflow.db'} (artifacts in {root / 'mlartifacts'})"
    raise ValueError(f"fd_help: unknown item {what!r}")


if not OmegaConf.has_resolver("fd_help"):
    OmegaConf.register_new_resolver("fd_help", _help_text)
register_configs()

# The run folder of the job that is running in this process (for the full-disk message).
_current_run_dir: Path | None = None
_current_store: str | None = None  # and its tracking store (for messages about the store)


def remove_if_only_bookkeeping(run_dir: Path) -> bool:
    """Delete ``run_dir`` when it holds nothing but what Hydra writes before a job starts.

    Hydra creates the run folder, ``.hydra/{config,hydra,overrides}.yaml`` and ``<job>.log`` before
    the job runs; a job that fails in its checks would leave that shell behind each time (one
    ``outputs/runs/<date>/<time>_...`` folder per typo). Anything else in the folder (a checkpoint,
    artifacts, an earlier run's results, a file the user put there) keeps it untouched. Files are
    removed one by one and folders with ``rmdir``, never ``rmtree``: whatever appears meanwhile
    stays. An emptied date folder under ``outputs/runs`` goes too. Returns True when removed.
    """
    try:
        entries = {p.name: p for p in run_dir.iterdir()}
    except OSError:
        return False
    extra = [n for n in entries if n != HYDRA_SUBDIR and not n.endswith(".log")]
    if extra:
        return False
    hydra_dir = entries.get(HYDRA_SUBDIR)
    if hydra_dir is not None:
        if not hydra_dir.is_dir() or hydra_dir.is_symlink():
            return False
        inner = {p.name for p in hydra_dir.iterdir()}
        if not inner <= HYDRA_FILES:
            return False
    logs = [p for n, p in entries.items() if n.endswith(".log")]
    if any(not p.is_file() or p.is_symlink() for p in logs):
        return False
    try:
        if hydra_dir is not None:
            for name in HYDRA_FILES:
                (hydra_dir / name).unlink(missing_ok=True)
            hydra_dir.rmdir()
        for p in logs:
            p.unlink(missing_ok=True)
        run_dir.rmdir()
    except OSError as exc:  # something appeared, or no permission: leave the rest as it is
        log.debug("run folder %s kept: %s", run_dir, exc)
        return False
    parent = run_dir.parent
    if parent.parent.name == "runs" and parent.parent.parent.name == "outputs":
        # outputs/runs/<date>/ emptied by this removal (the date folder of the default run dir);
        # rmdir fails, and the folder stays, while other runs of that day are in it
        with contextlib.suppress(OSError):
            parent.rmdir()
    return True


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    """Train one model (or, with ``-m``, one job of a sweep)."""
    global _current_run_dir, _current_store
    from fault_diag.training.run import run_job

    run_dir = Path(str(cfg.paths.output_dir))
    _current_run_dir = run_dir
    if cfg.tracking.backend == "mlflow":
        from fault_diag.tracking import resolve_tracking_uri

        _current_store = resolve_tracking_uri(cfg.tracking.tracking_uri)
    try:
        return run_job(cfg)
    except BaseException as exc:
        # Checks fail before anything is written; a failure later leaves its checkpoint and logs.
        if remove_if_only_bookkeeping(run_dir):
            log.debug("removed the run folder %s: the job failed before writing anything", run_dir)
        if isinstance(exc, Exception) and _single_run():
            # Past Hydra's job runner, which would print "Error executing job with overrides"
            # (a second line) before re-raising; main() unwraps it.
            raise _JobFailed(exc) from exc
        raise


class NextStep(Callback):
    """Hydra callback (conf/config.yaml ``hydra.callbacks.next_step``): once a run or a sweep is
    over, one line names the command that comes next."""

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        job_return = kwargs.get("job_return")
        status = getattr(getattr(job_return, "status", None), "name", "COMPLETED")
        if status != "COMPLETED":
            return
        run_dir = Path(str(config.hydra.run.dir))
        bundle = run_dir / "bundle"
        print(
            f"next: fd-export {run_dir} --out {bundle}   (a deployable bundle; then "
            f"fd-predict {bundle} <recording>)",
            flush=True,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if config.get("tracking", {}).get("backend") == "none":
            print(
                f"next: the runs are in {sweep_dir} (tracking=none: fd-report needs "
                "tracking=mlflow)",
                flush=True,
            )
            return
        print(
            f"next: fd-report --sweep {sweep_dir}   (tables, intervals and accuracy-vs-SNR "
            "figures of this sweep)",
            flush=True,
        )


class _JobFailed(BaseException):
    """Carries a single run's exception through Hydra (which catches ``Exception`` only)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _single_run() -> bool:
    """True in a single run; a multirun's jobs (possibly in launcher worker processes) keep
    Hydra's own handling, which records each job's failure and goes on with the sweep."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.RUN
    except (ImportError, ValueError):
        return False


@contextmanager
def _exceptions_reach_caller() -> Iterator[None]:
    """Make Hydra re-raise a job's exception instead of printing its (trimmed) traceback and
    exiting 1: ``HYDRA_FULL_ERROR=1`` for the duration of the call, restored afterwards."""
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous


def main() -> None:
    """Console entry point ``fd-train``: Hydra's command line, plus ``--debug``."""
    argv = sys.argv[1:]
    debug = debug_requested(argv) or os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")
    if "--debug" in argv:
        sys.argv = [sys.argv[0], *[a for a in argv if a != "--debug"]]  # not a Hydra override

    def body() -> int:
        with _exceptions_reach_caller():
            try:
                hydra_main()
            except _JobFailed as failed:
                raise failed.error  # noqa: B904 - the original exception, its traceback intact
        return 0

    def where() -> str | None:
        return str(_current_run_dir) if _current_run_dir is not None else "the run folder"

    code = run_cli(
        "fd-train", body, debug=debug, where=where, store=lambda: _current_store, console=True
    )
    sys.exit(code)


if __name__ == "__main__":
    main()


__all__ = [
    "CONF_DIR",
    "NextStep",
    "help_groups",
    "hydra_main",
    "main",
    "remove_if_only_bookkeeping",
]
