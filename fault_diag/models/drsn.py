"""Deep residual shrinkage networks (Zhao, Zhong, Fu, Tang, Pecht; IEEE TII 16(7) 2020,
DOI 10.1109/TII.2019.2943898): DRSN-CS (channel-shared threshold) and DRSN-CW (channel-wise).

Defaults reproduce the paper's Table II network: Conv(4, k3, /2) -> 4 RSBUs at 4 ch (first /2) ->
4 at 8 ch (first /2) -> 4 at 16 ch (first /2) -> BN -> ReLU -> GAP -> FC. Each RSBU is a
pre-activation residual unit whose residual ``r`` is soft-thresholded with a learned threshold
(:class:`~fault_diag.models.blocks.Shrinkage`) before the identity shortcut is added.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fault_diag.models.backbone import (
    ResidualNet1d,
    register_skeleton_model,
    residual_network,
    sequential_stage,
)
from fault_diag.models.blocks import PreActResidualUnit, Shrinkage


def rsbu(
    in_channels: int, out_channels: int, stride: int, kernel_size: int, *, channel_wise: bool
) -> PreActResidualUnit:
    """One residual shrinkage building unit (RSBU-CS or RSBU-CW)."""
    return PreActResidualUnit(
        in_channels,
        out_channels,
        stride,
        kernel_size,
        transform=Shrinkage(out_channels, channel_wise=channel_wise),
    )


def _drsn(name: str, channel_wise: bool, skeleton: dict[str, Any]) -> ResidualNet1d:
    def unit(i: int, o: int, s: int, k: int) -> nn.Module:
        return rsbu(i, o, s, k, channel_wise=channel_wise)

    return residual_network(name, stage=sequential_stage(unit), **skeleton)


drsn_cs = register_skeleton_model(
    "drsn_cs",
    lambda skeleton: _drsn("drsn_cs", False, skeleton),
    doc="DRSN-CS: one threshold per sample and unit, ``tau = alpha * mean_{C,L} |r|``.",
)
drsn_cw = register_skeleton_model(
    "drsn_cw",
    lambda skeleton: _drsn("drsn_cw", True, skeleton),
    doc="DRSN-CW: one threshold per sample, unit and channel, ``tau_c = alpha_c * mean_L |r_c|``.",
)
