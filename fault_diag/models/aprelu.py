"""ResNet with adaptively parametric ReLUs (Zhao, Zhong, Fu, Tang, Pecht; IEEE TIE 2020,
DOI 10.1109/TIE.2020.2972458) on the DRSN skeleton.

Every ReLU inside the residual units is an :class:`~fault_diag.models.blocks.APReLU` (its own
weights per unit and position): BN -> APReLU -> Conv -> BN -> APReLU -> Conv, plus the identity
shortcut. The stem and the BN-ReLU-GAP head are the skeleton's, as for every other model here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from fault_diag.models.backbone import ResidualNet1d, residual_network, sequential_stage
from fault_diag.models.blocks import APReLU, PreActResidualUnit
from fault_diag.models.registry import register_model


@register_model("resnet1d_aprelu")
def resnet1d_aprelu(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    stem_channels: int = 4,
    stage_channels: Sequence[int] = (4, 8, 16),
    units_per_stage: int | Sequence[int] = 4,
    kernel_size: int = 3,
    stem_stride: int = 2,
    stage_strides: int | Sequence[int] = (2, 2, 2),
) -> ResidualNet1d:
    """ResNet-APReLU: pre-activation residual units whose two ReLUs are APReLUs."""
    skeleton = dict(locals())  # exactly the keyword arguments above
    unit = partial(PreActResidualUnit, activation=APReLU)
    return residual_network("resnet1d_aprelu", stage=sequential_stage(unit), **skeleton)
