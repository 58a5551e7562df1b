"""The DRSN paper's baselines: ResNet (no threshold branch) and ConvNet (no identity shortcuts).

Both use the DRSN Table II skeleton (:mod:`fault_diag.models.backbone`) with plain pre-activation
units, so they differ from ``drsn_cs``/``drsn_cw`` only in what the paper says they differ in.
"""

from __future__ import annotations

from functools import partial

from fault_diag.models.backbone import register_skeleton_model, residual_network, sequential_stage
from fault_diag.models.blocks import PreActResidualUnit

resnet1d = register_skeleton_model(
    "resnet1d",
    lambda skeleton: residual_network(
        "resnet1d", **skeleton, stage=sequential_stage(PreActResidualUnit)
    ),
    doc="Pre-activation 1D ResNet: the DRSN network without the threshold branch.",
)
convnet1d = register_skeleton_model(
    "convnet1d",
    lambda skeleton: residual_network(
        "convnet1d",
        **skeleton,
        stage=sequential_stage(partial(PreActResidualUnit, shortcut=False)),
        identity_shortcuts=False,
    ),
    doc="Plain 1D ConvNet: the ResNet baseline without identity shortcuts (BN-ReLU-Conv pairs).",
)
