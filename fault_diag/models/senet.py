"""Squeeze-and-excitation residual networks on the DRSN skeleton.

- ``se_resnet1d``: SE block (Hu et al., CVPR 2018) re-weighting the channels of the residual ``r``
  before the identity addition (the SE-ResNet placement), GAP -> FC -> ReLU -> FC -> sigmoid.
- ``se_felu_resnet1d``: the same with a non-dying excitation activation
  (:class:`~fault_diag.models.blocks.FELU`, ``x`` for x > 0, ``felu_alpha * (exp(x) - 1)`` otherwise).

``se_reduction`` defaults to 1 (hidden width = C): the paper's r = 16 would leave 0-1 hidden units
at 4-16 channels, and r = 1 gives the excitation the same FC(C->C) width as DRSN-CW's threshold
branch, so the comparison is about the mechanism, not capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from fault_diag.models.backbone import (
    ResidualNet1d,
    check_positive,
    residual_network,
    sequential_stage,
)
from fault_diag.models.blocks import FELU, PreActResidualUnit, SqueezeExcite
from fault_diag.models.errors import ModelParamError
from fault_diag.models.registry import register_model


def _se_network(
    name: str, reduction: int, felu_alpha: float | None, skeleton: dict[str, Any]
) -> ResidualNet1d:
    check_positive(name, se_reduction=reduction)

    def unit(i: int, o: int, s: int, k: int) -> nn.Module:
        act = FELU(felu_alpha) if felu_alpha is not None else nn.ReLU()
        return PreActResidualUnit(i, o, s, k, transform=SqueezeExcite(o, reduction, act))

    return residual_network(name, stage=sequential_stage(unit), **skeleton)


@register_model("se_resnet1d")
def se_resnet1d(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    stem_channels: int = 4,
    stage_channels: Sequence[int] = (4, 8, 16),
    units_per_stage: int | Sequence[int] = 4,
    kernel_size: int = 3,
    stem_stride: int = 2,
    stage_strides: int | Sequence[int] = (2, 2, 2),
    se_reduction: int = 1,
) -> ResidualNet1d:
    """SE-ResNet: the DRSN skeleton whose units re-weight the residual's channels (SE, ReLU)."""
    skeleton = dict(locals())  # exactly the keyword arguments above
    reduction = skeleton.pop("se_reduction")
    return _se_network("se_resnet1d", reduction, None, skeleton)


@register_model("se_felu_resnet1d")
def se_felu_resnet1d(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    stem_channels: int = 4,
    stage_channels: Sequence[int] = (4, 8, 16),
    units_per_stage: int | Sequence[int] = 4,
    kernel_size: int = 3,
    stem_stride: int = 2,
    stage_strides: int | Sequence[int] = (2, 2, 2),
    se_reduction: int = 1,
    felu_alpha: float = 0.1,
) -> ResidualNet1d:
    """SE-ResNet whose excitation activation is FELU (non-dying; see :class:`FELU`)."""
    skeleton = dict(locals())  # exactly the keyword arguments above
    reduction = skeleton.pop("se_reduction")
    alpha = skeleton.pop("felu_alpha")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha > 0:
        raise ModelParamError(
            f"se_felu_resnet1d: parameter 'felu_alpha' must be a positive number; got {alpha!r}"
        )
    return _se_network("se_felu_resnet1d", reduction, float(alpha), skeleton)
