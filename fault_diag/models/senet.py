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

from typing import Any

from torch import nn

from fault_diag.models.backbone import (
    ResidualNet1d,
    check_positive,
    register_skeleton_model,
    residual_network,
    sequential_stage,
)
from fault_diag.models.blocks import FELU, PreActResidualUnit, SqueezeExcite
from fault_diag.models.errors import ModelParamError


def _se_network(
    name: str, reduction: int, felu_alpha: float | None, skeleton: dict[str, Any]
) -> ResidualNet1d:
    check_positive(name, se_reduction=reduction)

    def unit(i: int, o: int, s: int, k: int) -> nn.Module:
        act = FELU(felu_alpha) if felu_alpha is not None else nn.ReLU()
        return PreActResidualUnit(i, o, s, k, transform=SqueezeExcite(o, reduction, act))

    return residual_network(name, stage=sequential_stage(unit), **skeleton)


def _se_felu(skeleton: dict[str, Any], se_reduction: int, felu_alpha: float) -> ResidualNet1d:
    alpha = felu_alpha
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha > 0:
        raise ModelParamError(
            f"se_felu_resnet1d: parameter 'felu_alpha' must be a positive number; got {alpha!r}"
        )
    return _se_network("se_felu_resnet1d", se_reduction, float(alpha), skeleton)


se_resnet1d = register_skeleton_model(
    "se_resnet1d",
    lambda skeleton, se_reduction: _se_network("se_resnet1d", se_reduction, None, skeleton),
    doc="SE-ResNet: the DRSN skeleton whose units re-weight the residual's channels (SE, ReLU).",
    se_reduction=(int, 1),
)
se_felu_resnet1d = register_skeleton_model(
    "se_felu_resnet1d",
    _se_felu,
    doc="SE-ResNet whose excitation activation is FELU (non-dying; see :class:`FELU`).",
    se_reduction=(int, 1),
    felu_alpha=(float, 0.1),
)
