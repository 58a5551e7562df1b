"""Several sweep members trained at once on one device, so that a sweep is not one small run at a time.

The members of a sweep that share an architecture and an optimiser (e.g. DRSN-CW at 11 SNRs x 3
noise kinds) are stacked into one model with :func:`torch.func.stack_module_state` and run with
``vmap(functional_call)``: every layer of the K members becomes one batched kernel (a convolution
with K groups, a batched matrix product, one BatchNorm over K x C channels), which is what keeps a
GPU busy with these ~10k-parameter networks. BatchNorm running statistics are *stacked buffers*
updated in place inside ``vmap``, one set per member, exactly as each member's own BatchNorm would
update them.

What each member keeps as its own: weight initialisation (``trainer.seed``), shuffling order and
training noise (generators seeded by its ``trainer.seed`` and epoch, the same as
:func:`fault_diag.training.loop.train`), noise kind / SNR / protocol / test grid, validation history,
best epoch, early stopping and test results. What members must share (checked, see
:func:`check_compatible`): model name and parameters, data, and every trainer setting that shapes the
optimisation (epochs, batch size, optimiser, learning rate and schedule, device, amp, compile). The
optimiser runs once on the stacked parameters: SGD and Adam are element-wise, so this is each
member's own optimiser.

Equivalence with training the members one by one: the same inputs reach the same member in the same
order, and the optimiser steps are element-wise, so the only differences are the floating-point
rounding of the batched kernels (a grouped convolution and a batched matmul sum in another order than
the per-member ones). On the CPU, ResNet-style members without FC layers are bit-identical; DRSN
members (FC layers in the threshold branch) match within float32 rounding, which training amplifies
slowly (tests/test_fast.py states the tolerance).

Where it pays: on a GPU, where one small member leaves the device idle between kernel launches. On
the CPU the kernels themselves are the cost, and a stacked step of thousands of windows falls out of
the caches: :func:`train_sweep` therefore stacks on the CPU only while K x batch <=
:data:`CPU_STACKED_SAMPLES` (small batches), and one member at a time at the paper's batch of 128.

Limits: no checkpoint/resume inside a concurrent group (a group is minutes on a GPU; rerun it), and
the stacked epoch inputs take K x (training split) of device memory (cwru10: 47 MB per member).

Command line (members = the cartesian product of the ``--sweep`` lists, grouped by architecture)::

    python -m fault_diag.training.concurrent trainer.epochs=1 tracking=none \\
        --sweep noise=gaussian,pink,laplacian --sweep noise.snr_db=-10,-8,-6,-4,-2,0,2,4,6,8,10 \\
        --sweep model=drsn_cw,resnet1d --out outputs/concurrent
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from fault_diag.data import WindowedDataset
from fault_diag.noise import noise_generator
from fault_diag.training.fast import (
    CUDA_GRAPH_MODES,
    epoch_inputs,
    resolve_amp,
    resolve_compile_mode,
)
from fault_diag.training.loop import (
    SplitTensors,
    TrainResult,
    _make_optimizer,
    _make_scheduler,
    build_classifier,
    configure_threads,
    epoch_order,
    evaluate,
    finish_training,
    prepare_split_tensors,
    resolve_device,
)
from fault_diag.training.selection import ModelSelector

log = logging.getLogger(__name__)

#: Trainer keys that may differ between members of one concurrent group.
MEMBER_TRAINER_KEYS = ("seed", "progress", "resume", "num_threads")
#: Top-level config groups that may differ freely between members.
MEMBER_GROUPS = ("noise", "tracking", "paths")

MemberCallback = Callable[[int, int, dict[str, float]], None]  # (member index, epoch, metrics)


class ConcurrentError(ValueError):
    """Members cannot be trained together; the message names the member, the key and the values."""


def _plain(cfg: DictConfig) -> dict[str, Any]:
    out = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(out, dict)
    return {str(k): v for k, v in out.items()}


def _shared_part(cfg: DictConfig) -> dict[str, Any]:
    """The part of a member's config that every member of a group must share."""
    plain = _plain(cfg)
    shared = {k: v for k, v in plain.items() if k not in MEMBER_GROUPS}
    trainer = dict(shared.get("trainer", {}))
    for key in MEMBER_TRAINER_KEYS:
        trainer.pop(key, None)
    shared["trainer"] = trainer
    if isinstance(shared.get("data"), dict):
        shared["data"] = {k: v for k, v in shared["data"].items() if k != "root"}
    return shared


def _first_difference(a: Any, b: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if a == b else (prefix.rstrip("."), a, b)


def check_compatible(cfgs: Sequence[DictConfig]) -> None:
    """Raise :class:`ConcurrentError` unless all members can share one stacked model and optimiser."""
    if not cfgs:
        raise ConcurrentError("train_concurrent needs at least one member config, got none")
    ref = _shared_part(cfgs[0])
    for i, cfg in enumerate(cfgs[1:], start=1):
        diff = _first_difference(ref, _shared_part(cfg))
        if diff is not None:
            key, a, b = diff
            raise ConcurrentError(
                f"member {i} cannot be trained concurrently with member 0: {key}={b!r} but "
                f"member 0 has {key}={a!r}; members may differ only in noise.*, "
                f"trainer.{{{','.join(MEMBER_TRAINER_KEYS)}}}, tracking.* and paths.* "
                "(use group_compatible() to split a sweep into groups)"
            )


def group_compatible(
    cfgs: Sequence[DictConfig], max_members: Optional[int] = None
) -> list[list[int]]:
    """Indices of ``cfgs`` grouped so that each group passes :func:`check_compatible`.

    Groups keep the members' order; ``max_members`` caps a group's size (device memory).
    """
    if max_members is not None and max_members < 1:
        raise ConcurrentError(f"max_members={max_members} must be >= 1")
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        key = json.dumps(_shared_part(cfg), sort_keys=True, default=str)
        groups.setdefault(key, []).append(i)
    out: list[list[int]] = []
    for members in groups.values():
        step = max_members or len(members)
        out += [members[i : i + step] for i in range(0, len(members), step)]
    return out


class StackedStep:
    """One optimisation step of K stacked members: vmapped forward, per-member loss, backward, step.

    ``xb`` is ``(K, batch, channels, length)``, ``yb`` ``(K, batch)``. The loss minimised is the sum
    of the members' mean cross-entropies: member k's gradient is that of its own loss, since the
    members share no parameter.
    """

    def __init__(
        self,
        base: nn.Module,
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        optimizer: torch.optim.Optimizer,
        *,
        device: torch.device,
        amp: bool = False,
        compile: bool = False,
        compile_mode: str = "auto",
        batch_size: int = 128,
    ) -> None:
        from torch.func import functional_call, vmap

        self.params, self.buffers, self.optimizer = params, buffers, optimizer
        self.device = device
        self.amp = resolve_amp(amp, device)

        def one_member(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor) -> Tensor:
            return functional_call(base, (p, b), (x,))

        self._vmodel = vmap(one_member, in_dims=(0, 0, 0))
        self.mode: Optional[str] = None
        self._fn = self._forward_loss
        if compile:
            self.mode = resolve_compile_mode(compile_mode, device, batch_size)
            self._fn = torch.compile(self._forward_loss, mode=self.mode, dynamic=False)

    def _forward_loss(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self._vmodel(self.params, self.buffers, xb)  # (K, batch, classes)
        k, b = yb.shape
        losses = nn.functional.cross_entropy(
            logits.float().flatten(0, 1), yb.flatten(), reduction="none"
        )
        losses = losses.view(k, b).mean(dim=1)
        correct = (logits.argmax(dim=-1) == yb).sum(dim=1)
        return losses, correct

    def __call__(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        """Per-member ``(mean loss, n correct)`` of the batch, detached; parameters updated."""
        if self.mode in CUDA_GRAPH_MODES:
            torch.compiler.cudagraph_mark_step_begin()
        losses, correct = self._fn(xb, yb)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach(), correct


@dataclass
class _Member:
    cfg: DictConfig
    data: SplitTensors
    model: nn.Module  # this member's own module, refreshed from the stack for evaluation
    history: list[dict[str, float]] = field(default_factory=list)
    selector: ModelSelector = field(default_factory=ModelSelector)
    stopped: bool = False
    stopped_early: bool = False


def train_concurrent(
    cfgs: Sequence[DictConfig],
    dataset: WindowedDataset,
    *,
    on_epoch_end: Optional[MemberCallback] = None,
) -> list[TrainResult]:
    """Train the members ``cfgs`` (one :class:`TrainResult` each, in order) at once on one device.

    Each member follows :func:`fault_diag.training.loop.train`'s protocol (noise, validation-only
    model selection, early stopping, one final test with the best weights); see the module docstring
    for what members may and may not differ in. ``on_epoch_end(member_index, epoch, metrics)`` is
    called after each member's epoch. ``TrainResult.seconds`` is the whole group's wall time.

    Raises:
        ConcurrentError: the members are not compatible (names the key), or there are none.
        FloatingPointError: a member's training loss became NaN/inf (names the member).
    """
    from torch.func import stack_module_state

    check_compatible(cfgs)
    t0 = time.perf_counter()
    t = cfgs[0].trainer
    device = resolve_device(t.device)
    configure_threads(t.num_threads)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    amp = resolve_amp(bool(t.amp), device)
    use_compile = bool(t.get("compile", False))
    compile_mode = str(t.get("compile_mode", "auto"))
    if use_compile:
        resolve_compile_mode(compile_mode, device, t.batch_size)

    n_classes = len(dataset.class_names)
    members: list[_Member] = []
    clean: dict[str, Tensor] = {}  # one device copy of the clean splits for all members
    for cfg in cfgs:
        torch.manual_seed(cfg.trainer.seed)  # each member's weights, as in train()
        data = prepare_split_tensors(cfg, dataset, device, shared=clean)
        model = build_classifier(cfg, n_classes, int(data.x_train.shape[1])).to(device)
        selector = ModelSelector(str(cfg.trainer.get("select", "val_acc")))
        selector.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        members.append(_Member(cfg=cfg, data=data, model=model, selector=selector))

    params, buffers = stack_module_state([m.model for m in members])  # type: ignore[arg-type]
    base = copy.deepcopy(members[0].model).to("meta").train()
    opt = _make_optimizer(cfgs[0], list(params.values()))
    sched = _make_scheduler(cfgs[0], opt)
    step = StackedStep(
        base,
        params,
        buffers,
        opt,
        device=device,
        amp=amp,
        compile=use_compile,
        compile_mode=compile_mode,
        batch_size=t.batch_size,
    )

    k_members = len(members)
    x0 = members[0].data.x_train
    n_train = int(x0.shape[0])
    for epoch in range(t.epochs):
        patience = t.early_stopping_patience
        for m in members:
            if not m.stopped and patience is not None and m.selector.since_best >= patience:
                m.stopped = m.stopped_early = True
        if all(m.stopped for m in members):
            break
        # The epoch's inputs of every member, stacked: (K, n_train, channels, length).
        x_epoch = torch.empty((k_members, *x0.shape), dtype=x0.dtype, device=device)
        y_epoch = torch.empty((k_members, n_train), dtype=torch.long, device=device)
        for i, m in enumerate(members):
            seed = int(m.cfg.trainer.seed)
            order = epoch_order(seed, epoch, n_train, device)
            gen = noise_generator(seed, "train", epoch, device=device) if m.data.matched else None
            redraw = m.data.train_noise is not None and m.data.redraw
            xe, ye = epoch_inputs(
                m.data.x_train,
                m.data.y_train,
                order,
                t.batch_size,
                m.data.train_noise if redraw and m.data.train_noise is not None else "none",
                m.data.train_snr,
                gen,
            )
            x_epoch[i].copy_(xe)
            y_epoch[i].copy_(ye)
            del xe, ye
        loss_sum = torch.zeros(k_members, device=device)
        correct = torch.zeros(k_members, device=device, dtype=torch.long)
        for start in range(0, n_train, t.batch_size):
            xb = x_epoch[:, start : start + t.batch_size]
            yb = y_epoch[:, start : start + t.batch_size]
            losses, n_correct = step(xb, yb)
            loss_sum += losses * xb.shape[1]
            correct += n_correct
        del x_epoch, y_epoch
        sched.step()
        lr = opt.param_groups[0]["lr"]
        train_loss = (loss_sum / n_train).tolist()
        train_acc = (correct.double() / n_train).tolist()
        for i, m in enumerate(members):
            if m.stopped:
                continue
            _load_member(m.model, params, buffers, i)
            val_loss, val_acc, _ = evaluate(
                m.model, m.data.x_val, m.data.y_val, t.eval_batch_size, amp
            )
            metrics = {
                "train/loss": train_loss[i],
                "train/acc": train_acc[i],
                "val/loss": val_loss,
                "val/acc": val_acc,
                "lr": lr,
            }
            m.history.append(metrics)
            if not math.isfinite(metrics["train/loss"]):
                raise FloatingPointError(
                    f"member {i}: training loss became {metrics['train/loss']} at epoch "
                    f"{epoch + 1}; lower trainer.lr or check the data"
                )
            m.selector.update(epoch + 1, metrics, m.model)  # the rule of train()
            if on_epoch_end is not None:
                on_epoch_end(i, epoch + 1, metrics)

    return [
        finish_training(
            m.cfg,
            dataset,
            m.model,  # type: ignore[arg-type]
            m.data,
            selector=m.selector,
            history=m.history,
            stopped_early=m.stopped_early,
            amp=amp,
            t0=t0,
        )
        for m in members
    ]


@torch.no_grad()
def _load_member(
    model: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor], index: int
) -> None:
    for name, p in model.named_parameters():
        p.copy_(params[name][index])
    for name, b in model.named_buffers():
        b.copy_(buffers[name][index])


#: On the CPU, stacking pays only while a stacked step stays this small (samples of all members):
#: DRSN-CW at batch 32 x 4 members trained 1.36x faster than one member at a time, at batch
#: 128 x 2 members 0.82x, and the standard sweep at 128 x 33 members 2.4x slower (activations of
#: thousands of windows fall out of the caches). docs/benchmarks.md has the figures.
CPU_STACKED_SAMPLES = 128


def default_group_size(cfg: DictConfig) -> Optional[int]:
    """Members per concurrent group: all of them on CUDA; on the CPU as many as keep K x batch <=
    :data:`CPU_STACKED_SAMPLES` (1 at the paper's batch of 128)."""
    device = resolve_device(cfg.trainer.device)
    if device.type == "cuda":
        return None
    return max(1, CPU_STACKED_SAMPLES // int(cfg.trainer.batch_size))


def train_sweep(
    cfgs: Sequence[DictConfig],
    dataset: WindowedDataset,
    *,
    max_members: Optional[int] = None,
    on_epoch_end: Optional[MemberCallback] = None,
) -> list[TrainResult]:
    """Train any list of members: grouped by :func:`group_compatible`, each group concurrently.

    ``max_members=None`` picks the group size with :func:`default_group_size`. Results come back in
    the order of ``cfgs``; ``on_epoch_end`` receives indices into ``cfgs``.
    """
    if max_members is None and cfgs:
        max_members = default_group_size(cfgs[0])
    results: list[Optional[TrainResult]] = [None] * len(cfgs)
    for group in group_compatible(cfgs, max_members):
        callback: Optional[MemberCallback] = None
        if on_epoch_end is not None:
            cb = on_epoch_end

            def callback(i: int, epoch: int, metrics: dict[str, float], g=group, cb=cb) -> None:
                cb(g[i], epoch, metrics)

        for idx, res in zip(
            group,
            train_concurrent([cfgs[i] for i in group], dataset, on_epoch_end=callback),
            strict=True,
        ):
            results[idx] = res
    return [r for r in results if r is not None]


# ------------------------------------------------------------------------------------------------
# command line


def expand_sweep(sweeps: Sequence[str]) -> list[list[str]]:
    """``["noise.snr_db=-2,0", "model=a,b"]`` -> the cartesian product as override lists."""
    axes: list[list[str]] = []
    for item in sweeps:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ConcurrentError(
                f"--sweep {item!r}: expected KEY=V1,V2,... (e.g. noise.snr_db=-2,0)"
            )
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def compose_members(overrides: Sequence[str], sweeps: Sequence[str]) -> list[DictConfig]:
    """One composed ``fd-train`` config per member (Hydra compose API, the project's conf/)."""
    from hydra import compose, initialize_config_dir

    from fault_diag.config import register_configs, validate_config
    from fault_diag.paths import project_root

    register_configs()
    cfgs = []
    with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base="1.3"):
        for member in expand_sweep(sweeps):
            cfg = compose("config", overrides=[*overrides, *member])
            validate_config(cfg)
            cfgs.append(cfg)
    return cfgs


def _write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SweepTracking:
    """MLflow for a concurrent sweep, as ``fd-train -m`` logs one: a parent run (``fd.role=sweep``)
    and one child run per member, opened before training so the dashboard shows every member's
    per-epoch metrics live, closed with the member's test metrics and artifacts.

    With ``tracking.backend=none`` (or a differing tracking config) it does nothing. Members must
    share ``tracking.*`` (one store and experiment per sweep).
    """

    def __init__(
        self, cfgs: Sequence[DictConfig], dataset: WindowedDataset, out: Path, overrides: list[str]
    ) -> None:
        from fault_diag.training.run import run_tags

        self.dataset = dataset
        self.parent: Optional[dict[str, str]] = None
        self.runs: list[Any] = []
        if not cfgs or cfgs[0].tracking.backend != "mlflow":
            return
        trackings = {json.dumps(_plain(c)["tracking"], sort_keys=True, default=str) for c in cfgs}
        if len(trackings) != 1:
            raise ConcurrentError(
                "all members must use the same tracking config (tracking.* differs)"
            )
        from fault_diag.tracking import MlflowRun, create_sweep_parent

        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        self.parent = create_sweep_parent(
            cfgs[0], sweep_id=f"concurrent_{stamp}", sweep_dir=out, overrides=overrides
        )
        try:
            for cfg in cfgs:
                tags = {**run_tags(cfg, dataset), "trained_concurrently": "true"}
                self.runs.append(MlflowRun(cfg, tags=tags, parent=self.parent))
        except BaseException:
            self.fail()
            raise
        log.info(
            "MLflow: sweep %s, %d member runs in %s",
            self.parent["run_id"],
            len(self.runs),
            self.parent["tracking_uri"],
        )

    def run_id(self, member: int) -> Optional[str]:
        """The MLflow run id of ``member`` (None without tracking)."""
        return self.runs[member].run_id if self.runs else None

    def log_epoch(self, member: int, epoch: int, metrics: dict[str, float]) -> None:
        """Per-epoch metrics of one member (``step=epoch``)."""
        if self.runs:
            self.runs[member].log_epoch(epoch, metrics)

    def log_final(
        self,
        member: int,
        cfg: DictConfig,
        result: TrainResult,
        card: dict[str, Any],
        files: list[Path],
    ) -> None:
        """Test metrics, artifacts (and model, if ``tracking.log_model``) of one member; closes it."""
        if self.runs:
            from fault_diag.training.run import log_final

            log_final(self.runs[member], cfg, self.dataset, result, card, files)

    def fail(self) -> None:
        """Mark every member run that is still open, and the parent, FAILED."""
        for run in self.runs:
            try:
                if run.client.get_run(run.run_id).info.status == "RUNNING":
                    run.fail()
            except Exception:  # noqa: BLE001 - closing as much as possible on the way out
                log.exception("could not mark MLflow run %s failed", run.run_id)
        if self.parent is not None:
            from fault_diag.tracking import get_client

            get_client(self.parent["tracking_uri"]).set_terminated(
                self.parent["run_id"], status="FAILED"
            )

    def finish(self) -> None:
        """Close the parent run (FAILED if a member run did not finish)."""
        if self.parent is not None:
            from fault_diag.tracking import finish_sweep_parent

            finish_sweep_parent(self.parent)


def main(argv: Optional[list[str]] = None) -> int:
    """CLI: compose the members, train them grouped and concurrently, write artifacts + summary."""
    ap = argparse.ArgumentParser(
        prog="python -m fault_diag.training.concurrent",
        description="Train the members of a sweep concurrently on one device (vmap-stacked models).",
    )
    ap.add_argument("overrides", nargs="*", help="Hydra overrides shared by every member")
    ap.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a sweep axis (repeatable); members are the cartesian product",
    )
    ap.add_argument(
        "--max-members",
        type=int,
        default=None,
        help="largest concurrent group (default: all on CUDA; on the CPU, K x batch <= 128)",
    )
    ap.add_argument("--out", type=Path, default=Path("outputs/concurrent"), help="output folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from fault_diag.data import build_dataset
    from fault_diag.training.run import model_card, write_artifacts

    out = args.out.resolve()
    member_overrides = expand_sweep(args.sweep)
    cfgs = compose_members(args.overrides, args.sweep)
    for i, cfg in enumerate(cfgs):
        cfg.paths.output_dir = str(out / f"member_{i:03d}")
    data_cfgs = {json.dumps(_plain(c)["data"], sort_keys=True, default=str) for c in cfgs}
    if len(data_cfgs) != 1:
        raise ConcurrentError("all members must use the same data config (data.* differs)")
    configure_threads(cfgs[0].trainer.num_threads)
    dataset = build_dataset(OmegaConf.to_object(cfgs[0].data))  # type: ignore[arg-type]
    tracking = SweepTracking(cfgs, dataset, out, [*args.overrides, *args.sweep])
    t0 = time.perf_counter()
    try:
        results = train_sweep(
            cfgs, dataset, max_members=args.max_members, on_epoch_end=tracking.log_epoch
        )
        wall_s = time.perf_counter() - t0
        summary = []
        for i, (cfg, res, extra) in enumerate(zip(cfgs, results, member_overrides, strict=True)):
            folder = Path(cfg.paths.output_dir) / "artifacts"
            card = model_card(cfg, dataset, res, tracking.run_id(i))
            files = write_artifacts(folder, cfg, res, card, [*args.overrides, *extra])
            tracking.log_final(i, cfg, res, card, files)
            summary.append(
                {
                    "member": i,
                    "overrides": extra,
                    "model": cfg.model.name,
                    "noise": cfg.noise.kind,
                    "snr_db": cfg.noise.snr_db,
                    "seed": int(cfg.trainer.seed),
                    "best_epoch": res.best_epoch,
                    "best_val_acc": res.best_val_acc,
                    **res.test_metrics,
                    "artifacts": str(folder),
                    "mlflow_run_id": tracking.run_id(i),
                }
            )
    except BaseException:
        tracking.fail()
        raise
    tracking.finish()
    _write_json_atomic(out / "summary.json", {"wall_s": wall_s, "members": summary})
    for row in summary:
        print(
            f"member {row['member']:3d} {row['model']:<10} {row['noise']:<9} "
            f"{row['snr_db']!s:>6} dB seed {row['seed']}: test acc {row['test/acc']:.4f}"
        )
    print(
        f"{len(cfgs)} members in {wall_s:.1f} s; summary: {out / 'summary.json'}", file=sys.stderr
    )
    if tracking.parent is not None:
        print(
            f"MLflow sweep run {tracking.parent['run_id']} (experiment "
            f"{cfgs[0].tracking.experiment!r}) in {tracking.parent['tracking_uri']}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
