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

Command line: ``fd-sweep``, with ``fd-train -m``'s syntax and config tree
(:mod:`fault_diag.training.sweep`)::

    fd-sweep trainer.epochs=1 tracking=none noise=gaussian,pink,laplacian \
        noise.snr_db=-10,-8,-6,-4,-2,0,2,4,6,8,10 model=drsn_cw,resnet1d
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from fault_diag.config import Config, TrainerConfig, as_config
from fault_diag.data import WindowedDataset
from fault_diag.training.engine import (
    MemberState,
    TrainStep,
    epoch_metrics,
    make_optimizer,
    make_scheduler,
    member_epoch_inputs,
    resolve_device,
    run_epoch,
    setup_runtime,
    validate,
)
from fault_diag.training.loop import (
    SplitTensors,
    TrainResult,
    build_classifier,
    finish_training,
    prepare_split_tensors,
)

log = logging.getLogger(__name__)

#: Trainer keys that may differ between members of one concurrent group.
MEMBER_TRAINER_KEYS = ("seed", "progress", "resume", "num_threads")
#: Top-level config groups that may differ freely between members.
MEMBER_GROUPS = ("noise", "tracking", "paths")

MemberCallback = Callable[[int, int, dict[str, float]], None]  # (member index, epoch, metrics)


class ConcurrentError(ValueError):
    """Members cannot be trained together; the message names the member, the key and the values."""


def _shared_part(config: Config) -> dict[str, Any]:
    """The part of a member's config that every member of a group must share."""
    plain = dataclasses.asdict(config)
    shared = {k: v for k, v in plain.items() if k not in MEMBER_GROUPS}
    trainer = dict(shared["trainer"])
    for key in MEMBER_TRAINER_KEYS:
        trainer.pop(key, None)
    shared["trainer"] = trainer
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


def check_compatible(cfgs: Sequence[Config | DictConfig]) -> None:
    """Raise :class:`ConcurrentError` unless all members can share one stacked model and optimiser."""
    if not cfgs:
        raise ConcurrentError("train_concurrent needs at least one member config, got none")
    configs = [as_config(c) for c in cfgs]
    ref = _shared_part(configs[0])
    for i, config in enumerate(configs[1:], start=1):
        diff = _first_difference(ref, _shared_part(config))
        if diff is not None:
            key, a, b = diff
            raise ConcurrentError(
                f"member {i} cannot be trained concurrently with member 0: {key}={b!r} but "
                f"member 0 has {key}={a!r}; members may differ only in noise.*, "
                f"trainer.{{{','.join(MEMBER_TRAINER_KEYS)}}}, tracking.* and paths.* "
                "(use group_compatible() to split a sweep into groups)"
            )


def group_compatible(
    cfgs: Sequence[Config | DictConfig], max_members: Optional[int] = None
) -> list[list[int]]:
    """Indices of ``cfgs`` grouped so that each group passes :func:`check_compatible`.

    Groups keep the members' order; ``max_members`` caps a group's size (device memory).
    """
    if max_members is not None and max_members < 1:
        raise ConcurrentError(f"max_members={max_members} must be >= 1")
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        key = json.dumps(_shared_part(as_config(cfg)), sort_keys=True, default=str)
        groups.setdefault(key, []).append(i)
    out: list[list[int]] = []
    for members in groups.values():
        step = max_members or len(members)
        out += [members[i : i + step] for i in range(0, len(members), step)]
    return out


@dataclass
class _Member:
    config: Config
    data: SplitTensors
    model: nn.Module  # this member's own module, refreshed from the stack for evaluation
    state: MemberState


def train_concurrent(
    cfgs: Sequence[Config | DictConfig],
    dataset: WindowedDataset,
    *,
    on_epoch_end: Optional[MemberCallback] = None,
) -> list[TrainResult]:
    """Train the members ``cfgs`` (one :class:`TrainResult` each, in order) at once on one device.

    Each member follows :func:`fault_diag.training.loop.train`'s protocol (noise, validation-only
    model selection, early stopping, one final test with the best weights) through the same engine
    (:mod:`fault_diag.training.engine`); see the module docstring for what members may and may not
    differ in. ``on_epoch_end(member_index, epoch, metrics)`` is called after each member's epoch.
    ``TrainResult.seconds`` is the whole group's wall time.

    Raises:
        ConcurrentError: the members are not compatible (names the key), or there are none.
        FloatingPointError: a member's training loss became NaN/inf (names the member).
    """
    from torch.func import stack_module_state

    check_compatible(cfgs)
    configs = [as_config(c) for c in cfgs]
    t0 = time.perf_counter()
    t = configs[0].trainer
    runtime = setup_runtime(t)
    device = runtime.device

    n_classes = len(dataset.class_names)
    members: list[_Member] = []
    clean: dict[str, Tensor] = {}  # one device copy of the clean splits for all members
    for i, config in enumerate(configs):
        torch.manual_seed(config.trainer.seed)  # each member's weights, as in train()
        data = prepare_split_tensors(config, dataset, device, shared=clean)
        model = build_classifier(config.model, n_classes, int(data.x_train.shape[1])).to(device)
        state = MemberState.start(model, config.trainer.select, label=f"member {i}")
        members.append(_Member(config, data, model, state))

    params, buffers = stack_module_state([m.model for m in members])  # type: ignore[arg-type]
    base = copy.deepcopy(members[0].model).to("meta").train()
    opt = make_optimizer(t, list(params.values()))
    sched = make_scheduler(t, opt)
    step = TrainStep.stacked(
        base,
        params,
        buffers,
        opt,
        device=device,
        amp=runtime.amp,
        compile=runtime.compile,
        compile_mode=runtime.compile_mode,
        batch_size=t.batch_size,
    )

    k_members = len(members)
    x0 = members[0].data.x_train
    n_train = int(x0.shape[0])
    for epoch in range(t.epochs):
        stopped = [m.state.out_of_patience(t.early_stopping_patience) for m in members]
        if all(stopped):
            break
        # The epoch's inputs of every member, stacked: (K, n_train, channels, length).
        x_epoch = torch.empty((k_members, *x0.shape), dtype=x0.dtype, device=device)
        y_epoch = torch.empty((k_members, n_train), dtype=torch.long, device=device)
        for i, m in enumerate(members):
            xe, ye = member_epoch_inputs(
                m.data.x_train,
                m.data.y_train,
                m.data.train_noise,
                redraw=m.data.redraw,
                seed=m.config.trainer.seed,
                epoch=epoch,
                batch_size=t.batch_size,
            )
            x_epoch[i].copy_(xe)
            y_epoch[i].copy_(ye)
            del xe, ye
        loss_sum, correct = run_epoch(step, x_epoch, y_epoch, t.batch_size)
        del x_epoch, y_epoch
        sched.step()
        lr = opt.param_groups[0]["lr"]
        train_parts = epoch_metrics(loss_sum, correct, n_train)
        for i, m in enumerate(members):
            if m.state.stopped:
                continue
            _load_member(m.model, params, buffers, i)
            val_loss, val_acc, _ = validate(
                m.model, m.data.x_val, m.data.y_val, t.eval_batch_size, runtime.amp
            )
            metrics = {**train_parts[i], "val/loss": val_loss, "val/acc": val_acc, "lr": lr}
            m.state.end_epoch(epoch + 1, metrics, m.model)  # the rule of train()
            if on_epoch_end is not None:
                on_epoch_end(i, epoch + 1, metrics)

    return [
        finish_training(
            m.config,
            dataset,
            m.model,  # type: ignore[arg-type]
            m.data,
            m.state,
            amp=runtime.amp,
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


def default_group_size(trainer: TrainerConfig) -> Optional[int]:
    """Members per concurrent group: all of them on CUDA; on the CPU as many as keep K x batch <=
    :data:`CPU_STACKED_SAMPLES` (1 at the paper's batch of 128)."""
    device = resolve_device(trainer.device)
    if device.type == "cuda":
        return None
    return max(1, CPU_STACKED_SAMPLES // int(trainer.batch_size))


def train_sweep(
    cfgs: Sequence[Config | DictConfig],
    dataset: WindowedDataset,
    *,
    max_members: Optional[int] = None,
    on_epoch_end: Optional[MemberCallback] = None,
) -> list[TrainResult]:
    """Train any list of members: grouped by :func:`group_compatible`, each group concurrently.

    ``max_members=None`` picks the group size with :func:`default_group_size`. Results come back in
    the order of ``cfgs``; ``on_epoch_end`` receives indices into ``cfgs``.
    """
    configs = [as_config(c) for c in cfgs]
    if max_members is None and configs:
        max_members = default_group_size(configs[0].trainer)
    results: list[Optional[TrainResult]] = [None] * len(configs)
    for group in group_compatible(configs, max_members):
        callback: Optional[MemberCallback] = None
        if on_epoch_end is not None:
            cb = on_epoch_end

            def callback(i: int, epoch: int, metrics: dict[str, float], g=group, cb=cb) -> None:
                cb(g[i], epoch, metrics)

        for idx, res in zip(
            group,
            train_concurrent([configs[i] for i in group], dataset, on_epoch_end=callback),
            strict=True,
        ):
            results[idx] = res
    return [r for r in results if r is not None]


if __name__ == "__main__":  # the command fd-sweep replaced, with its options
    from fault_diag.cli.sweep import main

    raise SystemExit(main())
