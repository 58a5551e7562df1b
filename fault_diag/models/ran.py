"""Residual Attention Network (Wang et al., CVPR 2017), 1D, on the DRSN skeleton.

Each stage is one attention module with the paper's p = 1, t = 2, r = 1 layout when
``units_per_stage = 4``: a pre-processing unit (which also does the stage's stride and width
change), a trunk ``T`` of ``units_per_stage - 2`` residual units, a bottom-up top-down soft mask
``M`` (:class:`~fault_diag.models.blocks.SoftMask1d`, ``mask_depths[i]`` max-pool levels) on the same
input, the attention residual learning output ``(1 + M) * T``, and a post-processing unit.
The default ``mask_depths = (3, 2, 1)`` follows the paper's fewer down-samplings at lower
resolution; at a 2048 window every mask bottoms out at length 64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fault_diag.models.backbone import (
    ResidualNet1d,
    check_positive,
    register_skeleton_model,
    residual_network,
)
from fault_diag.models.blocks import PreActResidualUnit, SoftMask1d
from fault_diag.models.errors import ModelParamError


class AttentionStage(nn.Module):
    """pre unit -> ``(1 + M(x)) * T(x)`` -> post unit."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        num_units: int,
        kernel_size: int,
        mask_depth: int,
    ) -> None:
        super().__init__()
        self.pre = PreActResidualUnit(in_channels, out_channels, stride, kernel_size)
        self.trunk = nn.Sequential(
            *(
                PreActResidualUnit(out_channels, out_channels, 1, kernel_size)
                for _ in range(num_units - 2)
            )
        )
        self.mask = SoftMask1d(out_channels, mask_depth, kernel_size)
        self.post = PreActResidualUnit(out_channels, out_channels, 1, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        t = self.trunk(x)
        return self.post(torch.addcmul(t, self.mask(x), t))  # (1 + M) * T in one kernel


def _ran1d(skeleton: dict[str, Any], mask_depths: Sequence[int]) -> ResidualNet1d:
    stage_channels = skeleton["stage_channels"]
    units_per_stage, stage_strides = skeleton["units_per_stage"], skeleton["stage_strides"]
    stem_stride = skeleton["stem_stride"]
    depths = list(mask_depths)
    n = len(stage_channels)
    if len(depths) != n:
        raise ModelParamError(
            f"ran1d: parameter 'mask_depths' needs one depth per stage ({n}); got {depths}"
        )
    check_positive("ran1d", mask_depths=depths)
    units = [units_per_stage] * n if isinstance(units_per_stage, int) else list(units_per_stage)
    if any(isinstance(u, int) and u < 3 for u in units):
        raise ModelParamError(
            f"ran1d: parameter 'units_per_stage' must be >= 3 (pre-processing unit, trunk, "
            f"post-processing unit); got {units_per_stage!r}"
        )
    strides = [stage_strides] * n if isinstance(stage_strides, int) else list(stage_strides)

    # each mask pools its stage's resolution down `depth` times: needs >= 2**depth samples there
    min_length = 0
    factor = stem_stride
    for stride, depth in zip(strides, depths, strict=False):
        factor *= stride if isinstance(stride, int) else 1
        min_length = max(min_length, factor * 2**depth)

    def stage(i: int, in_ch: int, out_ch: int, s: int, num: int, k: int) -> nn.Module:
        return AttentionStage(in_ch, out_ch, s, num, k, depths[i])

    return residual_network("ran1d", stage=stage, min_length=min_length, **skeleton)


ran1d = register_skeleton_model(
    "ran1d",
    _ran1d,
    doc="1D Residual Attention Network; needs ``units_per_stage >= 3`` (pre, >= 1 trunk, post).",
    mask_depths=(Sequence[int], (3, 2, 1)),
)
