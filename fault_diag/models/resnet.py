"""The DRSN paper's baselines: ResNet (no threshold branch) and ConvNet (no identity shortcuts).

Both use the DRSN Table II skeleton (:mod:`fault_diag.models.backbone`) with plain pre-activation
units, so they differ from ``drsn_cs``/``drsn_cw`` only in what the paper says they differ in.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from fault_diag.models.backbone import ResidualNet1d, residual_network, sequential_stage
from fault_diag.models.blocks import PreActResidualUnit
from fault_diag.models.registry import register_model


@register_model("resnet1d")
def resnet1d(
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
    """Pre-activation 1D ResNet: the DRSN network without the threshold branch."""
    skeleton = dict(locals())  # exactly the keyword arguments above
    return residual_network(
        "resnet1d",
        **skeleton,
        stage=sequential_stage(PreActResidualUnit),
    )


@register_model("convnet1d")
def convnet1d(
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
    """Plain 1D ConvNet: the ResNet baseline without identity shortcuts (BN-ReLU-Conv pairs)."""
    skeleton = dict(locals())  # exactly the keyword arguments above
    return residual_network(
        "convnet1d",
        **skeleton,
        stage=sequential_stage(partial(PreActResidualUnit, shortcut=False)),
        identity_shortcuts=False,
    )
