"""Read out the learned soft thresholds of DRSN models, at no cost when nobody asks.

``capture_thresholds(model)`` registers forward hooks on the threshold branches only for the
duration of the ``with`` block; outside it the model has no hooks and stores nothing, so training
speed is unaffected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from fault_diag.metric_names import stage_of
from fault_diag.models.blocks import Shrinkage

__all__ = ["capture_thresholds", "shrinkage_units", "threshold_summary"]


def shrinkage_units(model: nn.Module) -> dict[str, Shrinkage]:
    """``{unit name: shrinkage block}`` for every residual shrinkage unit of ``model``.

    The unit name is the qualified module name of the RSBU (e.g. ``"stages.stage1.unit1"``; use
    ``model.get_submodule(name)``). Empty for models without learned thresholds.
    """
    units: dict[str, Shrinkage] = {}
    for name, module in model.named_modules():
        if isinstance(module, Shrinkage):
            units[name.rsplit(".", 1)[0] if "." in name else name] = module
    return units


@contextmanager
def capture_thresholds(
    model: nn.Module, *, accumulate: bool = False
) -> Iterator[dict[str, torch.Tensor]]:
    """Collect the thresholds ``tau`` of every shrinkage unit during forward passes in the block.

    Yields a dict ``unit name -> tensor`` filled by each forward pass: shape ``(B, 1)`` for DRSN-CS
    (one threshold per sample) and ``(B, C)`` for DRSN-CW (one per channel), detached, on the
    model's device. With ``accumulate=False`` each forward pass replaces the previous values; with
    ``accumulate=True`` the batches are concatenated along dim 0 (e.g. over a test loader). The
    hooks are removed on exit, even on error; the dict keeps its last content. For a model without
    shrinkage units the dict stays empty.

    Example::

        with capture_thresholds(model) as taus:
            model.eval()(x)
        threshold_summary(taus)  # {"stage1": ..., "stage2": ..., "stage3": ...}
    """
    captured: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(key: str):  # noqa: ANN202 - hook signature fixed by torch
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            tau = output.detach()[..., 0]  # (B, K, 1) -> (B, K)
            if accumulate and key in captured:
                captured[key] = torch.cat([captured[key], tau], dim=0)
            else:
                captured[key] = tau

        return hook

    try:
        for key, shrink in shrinkage_units(model).items():
            handles.append(shrink.threshold.register_forward_hook(make_hook(key)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def threshold_summary(thresholds: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean threshold per stage (over its units, samples and channels), keyed ``"stage1"`` ...

    Units whose name holds no ``stageN`` are grouped under ``"other"``; ``"all"`` is the mean over
    every captured value. The keys are ready for ``mlflow.log_metrics`` (prefix them as needed).
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, tau in thresholds.items():
        group = stage_of(name) or "other"
        for key in (group, "all"):
            sums[key] = sums.get(key, 0.0) + float(tau.double().sum())
            counts[key] = counts.get(key, 0) + tau.numel()
    order = sorted((k for k in sums if k != "all"), key=lambda k: (len(k), k))
    return {k: sums[k] / counts[k] for k in [*order, "all"] if k in sums}
