"""``fd-sweep``: a sweep whose compatible members train concurrently, with ``fd-train -m``'s syntax.

The same config tree and override grammar as ``fd-train -m`` (``model=drsn_cw,resnet1d``,
``noise.snr_db=range(-10,12,2)``, a ``sweep=<name>`` config's ``hydra.sweeper.params``), expanded as
Hydra's basic sweeper expands them; then, instead of one job after another, the members that share an
architecture and an optimiser train at once (:func:`fault_diag.training.concurrent.train_sweep`). Each
member gets what an ``fd-train -m`` job gets: its folder ``<sweep dir>/<n>`` with artifacts, a child
run of the sweep's parent run in the tracker, its test grid; the sweep folder gets ``summary.json``.

No checkpoint/resume inside a concurrent group (a group is minutes on a GPU; rerun it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fault_diag.config import Config, as_config, register_configs, validate_config

log = logging.getLogger(__name__)


class SweepError(ValueError):
    """A sweep that cannot be run as given (the message names the override or the member)."""


@dataclass
class SweepPlan:
    """The members of a sweep: each one's overrides and typed config, and the sweep's folder."""

    sweep_dir: Path
    overrides: list[str]  # as given on the command line
    job_overrides: list[list[str]]
    configs: list[Config]


def expand_overrides(overrides: Sequence[str], sweeper_params: dict[str, Any]) -> list[list[str]]:
    """Each job's override list, as Hydra's basic sweeper makes them: the ``sweep`` config's
    ``hydra.sweeper.params`` first, then the command line (a key given twice: the later wins)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in sweeper_params.items()]
    parsed = OverridesParser.create().parse_overrides([*params, *overrides])
    return BasicSweeper.split_arguments(parsed, None)[0]


def plan_sweep(overrides: Sequence[str]) -> SweepPlan:
    """Compose every member of the sweep ``overrides`` (validated, typed, each with its folder)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from fault_diag.paths import config_dir

    register_configs()
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    plain = [o.input_line for o in parsed if not o.is_sweep_override() and o.input_line]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        base = compose("config", overrides=plain, return_hydra_config=True)
        found = OmegaConf.select(base, "hydra.sweeper.params")
        params = OmegaConf.to_container(found, resolve=True) if found is not None else {}
        assert isinstance(params, dict)
        sweep_dir = Path(str(base.hydra.sweep.dir))
        jobs = expand_overrides(overrides, {str(k): v for k, v in params.items()})
        configs = []
        for num, job in enumerate(jobs):
            cfg = compose("config", overrides=job)
            cfg.paths.output_dir = str(sweep_dir / str(num))
            validate_config(cfg)
            configs.append(as_config(cfg))
    return SweepPlan(sweep_dir, list(overrides), jobs, configs)


def run_sweep(plan: SweepPlan, *, max_members: int | None = None) -> list[dict[str, Any]]:
    """Train ``plan``'s members (grouped, each group concurrently), write each member's artifacts
    and log it as a child of the sweep's parent run. Returns one summary row per member.

    Tracking runs are opened before training (the dashboard shows every member's epochs live)
    and closed FINISHED with the member's results, or FAILED / KILLED when the sweep stops.
    """
    from fault_diag.data import build_dataset
    from fault_diag.lifecycle import (
        Terminated,
        deferred_signals,
        signals_held,
        stop_signals_raise,
    )
    from fault_diag.tracker import Tracker, get_backend
    from fault_diag.training.concurrent import train_sweep
    from fault_diag.training.run import finish_job, start_tracker

    configs = plan.configs
    trackings = {json.dumps(asdict(c.tracking), sort_keys=True, default=str) for c in configs}
    if len(trackings) != 1:
        raise SweepError(
            "every member of an fd-sweep must use the same tracking.* (one store and experiment); "
            "sweep over tracking settings with fd-train -m instead"
        )
    tracking = configs[0].tracking
    backend = get_backend(tracking.backend)
    plan.sweep_dir.mkdir(parents=True, exist_ok=True)
    (plan.sweep_dir / "multirun.yaml").write_text(
        OmegaConf.to_yaml(
            OmegaConf.create({"overrides": plan.overrides, "jobs": plan.job_overrides})
        )
    )
    # Members sharing a data config share one dataset.
    data_key = [json.dumps(asdict(c.data), sort_keys=True, default=str) for c in configs]
    by_data: dict[str, list[int]] = {}
    for i, key in enumerate(data_key):
        by_data.setdefault(key, []).append(i)

    restore = stop_signals_raise()
    trackers: list[Tracker] = []
    finished: set[int] = set()
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        backend.check(tracking)
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        backend.start_sweep(
            tracking,
            sweep_id=f"fd-sweep_{stamp}",
            sweep_dir=plan.sweep_dir,
            overrides=list(plan.overrides),
        )
        datasets = {key: build_dataset(configs[m[0]].data) for key, m in by_data.items()}
        with deferred_signals(True):
            for c, key in zip(configs, data_key, strict=True):
                dataset = datasets[key]
                out = Path(c.paths.output_dir)
                out.mkdir(parents=True, exist_ok=True)
                trackers.append(
                    start_tracker(
                        backend,
                        c,
                        dataset,
                        out,
                        plan.sweep_dir,
                        extra_tags={"trained_concurrently": "true"},
                    )
                )
        for key, members in by_data.items():
            dataset = datasets[key]

            def on_epoch(i: int, epoch: int, metrics: dict[str, float], m=members) -> None:
                trackers[m[i]].log_epoch(epoch, metrics)

            results = train_sweep(
                [configs[i] for i in members],
                dataset,
                max_members=max_members,
                on_epoch_end=on_epoch,
            )
            for i, result in zip(members, results, strict=True):
                c = configs[i]
                out = Path(c.paths.output_dir)
                finish_job(trackers[i], c, dataset, result, out, plan.job_overrides[i])
                finished.add(i)
                rows.append(
                    {
                        "member": i,
                        "overrides": plan.job_overrides[i],
                        "model": c.model.name,
                        "noise": c.noise.kind,
                        "protocol": c.noise.protocol,
                        "snr_db": c.noise.snr_db,
                        "seed": c.trainer.seed,
                        "best_epoch": result.best_epoch,
                        "best_val_acc": result.best_val_acc,
                        **result.test_metrics,
                        "artifacts": str(out / "artifacts"),
                        "run_id": trackers[i].run_id,
                    }
                )
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt | Terminated) else "FAILED"
        with signals_held():
            for i, tracker in enumerate(trackers):
                if i not in finished:
                    tracker.fail(status)
            try:
                backend.finish_sweep(tracking, plan.sweep_dir)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                log.exception("could not close the sweep's parent run")
        raise
    finally:
        restore()
    backend.finish_sweep(tracking, plan.sweep_dir, sorted(rows, key=lambda r: r["member"]))
    rows.sort(key=lambda r: r["member"])
    from fault_diag.io import atomic_write_json

    atomic_write_json(
        plan.sweep_dir / "summary.json",
        {"wall_s": time.perf_counter() - t0, "members": rows},
        indent=2,
        default=str,
    )
    return rows
