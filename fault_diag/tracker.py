"""The tracker interface: what a training job asks of a tracking backend, whichever it is.

A backend is named by ``tracking.backend``: a built-in name (``mlflow``, ``none``) or an import path
``package.module:Class``. Adding one is one module that implements :class:`TrackerBackend` (and the
:class:`Tracker` its ``start_run`` returns) plus one ``conf/tracking/<name>.yaml`` that names it::

    # conf/tracking/mine.yaml
    backend: my_package.my_tracker:MyBackend
    experiment: fault-diag

``fd-train``'s job (:func:`fault_diag.training.run.run_job`), ``fd-sweep`` and the Hydra sweep callback
(:class:`SweepCallback`) call only the methods below, never asking which backend they hold.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from fault_diag.config import Config, TrackingConfig

#: Built-in backends: name -> ``module:Class``.
BUILTIN_BACKENDS = {
    "mlflow": "fault_diag.tracking:MlflowBackend",
    "none": "fault_diag.tracker:NoneBackend",
}
# Config keys that are machine-specific and would make runs look different across machines.
_DROP_PARAM_PREFIXES = ("paths.", "data.root", "data.manifest", "tracking.tracking_uri")


class TrackerConfigError(ValueError):
    """``tracking.backend`` names nothing that can be imported as a backend."""


@runtime_checkable
class Tracker(Protocol):
    """One training run as a backend records it. Every method is implemented by every backend
    (a backend that has nowhere to put something does nothing with it)."""

    run_id: str | None  # None: the backend keeps no runs
    resumed: bool  # True when this run continues one a killed job started

    def logged_epochs(self) -> set[int]:
        """The epochs whose metrics this run already holds (a resumed run backfills the rest)."""
        ...

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Per-epoch metrics (``train/loss``, ``val/acc``, ...), ``epoch`` 1-based."""
        ...

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Final metrics (test results; names from :mod:`fault_diag.metric_names`)."""
        ...

    def log_curve(self, name: str, points: list[tuple[float, float]]) -> None:
        """A curve ``name`` as ``(x, y)`` points, e.g. accuracy against SNR in dB."""
        ...

    def set_tags(self, tags: dict[str, str]) -> None:
        """Tags of the run."""
        ...

    def log_dataset(self, name: str, digest: str, source: str, profile: dict[str, Any]) -> None:
        """The dataset the run was trained and tested on: its name (the data setup), a digest
        of its windows and labels, where its recordings are, and its shape per split."""
        ...

    def log_file(self, path: Path, artifact_path: str | None = None) -> None:
        """One artifact file."""
        ...

    def log_model(self, model: Any, input_example: Any, card: dict[str, Any], name: str) -> None:
        """The trained classifier with its model card, under ``name``."""
        ...

    def finish(self) -> None:
        """Close the run as finished."""
        ...

    def fail(self, status: str = "FAILED") -> None:
        """Close the run as ``FAILED`` or ``KILLED``; never raises (an error is propagating)."""
        ...

    def describe(self) -> str:
        """One line for the job's summary: where the run can be seen ("" for none)."""
        ...


class TrackerBackend(Protocol):
    """Creates runs and sweeps in one store."""

    def check(self, tracking: TrackingConfig) -> None:
        """Fail now, naming the problem, when the store cannot be used (before any work)."""
        ...

    def location(self, tracking: TrackingConfig) -> str | None:
        """Where runs go (a URI), recorded in the run folder to resume in the same run."""
        ...

    def start_run(
        self,
        tracking: TrackingConfig,
        *,
        run_name: str,
        params: dict[str, str],
        tags: dict[str, str],
        resume_run_id: str | None,
        sweep_dir: Path | None,
        on_open: Callable[[str], None] | None,
    ) -> Tracker:
        """Open a run (or continue ``resume_run_id``), a child of ``sweep_dir``'s sweep if any;
        ``on_open(run_id)`` as soon as it exists."""
        ...

    def start_sweep(
        self, tracking: TrackingConfig, *, sweep_id: str, sweep_dir: Path, overrides: list[str]
    ) -> None:
        """Open the parent of a sweep's runs and record it in ``sweep_dir``."""
        ...

    def finish_sweep(
        self,
        tracking: TrackingConfig,
        sweep_dir: Path,
        summary: list[dict[str, Any]] | None = None,
    ) -> None:
        """Close ``sweep_dir``'s parent (failed when a child did not finish); ``summary``: one
        row per job (``fd-sweep``), else the backend collects its children itself."""
        ...


def get_backend(name: str) -> TrackerBackend:
    """The backend ``name``: built-in (``mlflow``, ``none``) or ``package.module:Class``."""
    target = BUILTIN_BACKENDS.get(name, name)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise TrackerConfigError(
            f"tracking.backend={name!r} is not one of {sorted(BUILTIN_BACKENDS)} "
            "nor an import path 'package.module:Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrackerConfigError(
            f"tracking.backend={name!r}: cannot import {module_name!r} ({exc})"
        ) from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise TrackerConfigError(f"tracking.backend={name!r}: {module_name} has no {attr!r}")
    backend = cls()
    missing = [m for m in ("check", "location", "start_run", "start_sweep", "finish_sweep")
               if not callable(getattr(backend, m, None))]  # fmt: skip
    if missing:
        raise TrackerConfigError(
            f"tracking.backend={name!r}: {target} lacks {', '.join(missing)} (see fault_diag.tracker)"
        )
    return backend  # type: ignore[no-any-return]


def flatten_params(config: Config) -> dict[str, str]:
    """The config as flat ``a.b.c`` params, without machine paths."""
    out: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{key}.", value)
            return
        key = prefix[:-1]
        if key.startswith(_DROP_PARAM_PREFIXES):
            return
        out[key] = json.dumps(node) if isinstance(node, list) else str(node)

    walk("", dataclasses.asdict(config))
    return out


def default_run_name(config: Config) -> str:
    """A readable run name: model, noise condition, protocol and seed (``drsn_cw-gaussian@0dB-s0``,
    ``drsn_cw--10..10dB-mixed-s0``)."""
    nz = config.noise
    if nz.protocol == "mixed":
        low, high = (float(v) for v in (nz.train_snr_db_range or [0.0, 0.0]))
        cond = f"{low:g}..{high:g}dB"
    else:
        cond = (
            "clean"
            if nz.kind == "none" or nz.snr_db is None
            else f"{nz.kind}@{float(nz.snr_db):g}dB"
        )
    proto = "" if nz.protocol == "matched" else f"-{nz.protocol}"
    return f"{config.model.name}-{cond}{proto}-s{config.trainer.seed}"


def run_name(config: Config) -> str:
    """``tracking.run_name`` when set, else :func:`default_run_name`."""
    return config.tracking.run_name or default_run_name(config)


class NoneTracker:
    """A run of the ``none`` backend: nothing is recorded."""

    run_id: str | None = None
    resumed = False

    def logged_epochs(self) -> set[int]:
        return set()

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float]) -> None:
        pass

    def log_curve(self, name: str, points: list[tuple[float, float]]) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_dataset(self, name: str, digest: str, source: str, profile: dict[str, Any]) -> None:
        pass

    def log_file(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def log_model(self, model: Any, input_example: Any, card: dict[str, Any], name: str) -> None:
        pass

    def finish(self) -> None:
        pass

    def fail(self, status: str = "FAILED") -> None:
        pass

    def describe(self) -> str:
        return ""


class NoneBackend:
    """``tracking.backend=none``: train without recording runs anywhere but the run folder."""

    def check(self, tracking: TrackingConfig) -> None:
        pass

    def location(self, tracking: TrackingConfig) -> str | None:
        return None

    def start_run(self, tracking: TrackingConfig, **kwargs: Any) -> Tracker:
        return NoneTracker()

    def start_sweep(self, tracking: TrackingConfig, **kwargs: Any) -> None:
        pass

    def finish_sweep(self, tracking: TrackingConfig, sweep_dir: Path, summary: Any = None) -> None:
        pass


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a hard dependency
    _HydraCallback = object  # type: ignore[assignment,misc]


class SweepCallback(_HydraCallback):  # type: ignore[misc,valid-type]
    """Hydra callback: before a multirun's jobs start, the backend opens the sweep's parent run
    (and, for a local store, creates it once, before parallel jobs race on it); after the last job,
    closes it. Single runs are untouched."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from fault_diag.config import as_config

        typed = as_config(config)
        sweep_dir = Path(config.hydra.sweep.dir)
        get_backend(typed.tracking.backend).start_sweep(
            typed.tracking,
            sweep_id=f"{sweep_dir.parent.name}_{sweep_dir.name}",
            sweep_dir=sweep_dir,
            overrides=list(config.hydra.overrides.task),
        )

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from fault_diag.config import as_config

        typed = as_config(config)
        get_backend(typed.tracking.backend).finish_sweep(
            typed.tracking, Path(config.hydra.sweep.dir)
        )


__all__ = [
    "BUILTIN_BACKENDS",
    "NoneBackend",
    "NoneTracker",
    "SweepCallback",
    "Tracker",
    "TrackerBackend",
    "TrackerConfigError",
    "default_run_name",
    "flatten_params",
    "get_backend",
    "run_name",
]
