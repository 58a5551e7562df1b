"""ResNet with adaptively parametric ReLUs (Zhao, Zhong, Fu, Tang, Pecht; IEEE TIE 2020,
DOI 10.1109/TIE.2020.2972458) on the DRSN skeleton.

Every ReLU inside the residual units is an :class:`~fault_diag.models.blocks.APReLU` (its own
weights per unit and position): BN -> APReLU -> Conv -> BN -> APReLU -> Conv, plus the identity
shortcut. The stem and the BN-ReLU-GAP head are the skeleton's, as for every other model here.
"""

from __future__ import annotations

from functools import partial

from fault_diag.models.backbone import register_skeleton_model, residual_network, sequential_stage
from fault_diag.models.blocks import APReLU, PreActResidualUnit

resnet1d_aprelu = register_skeleton_model(
    "resnet1d_aprelu",
    lambda skeleton: residual_network(
        "resnet1d_aprelu",
        stage=sequential_stage(partial(PreActResidualUnit, activation=APReLU)),
        **skeleton,
    ),
    doc="ResNet-APReLU: pre-activation residual units whose two ReLUs are APReLUs.",
)
