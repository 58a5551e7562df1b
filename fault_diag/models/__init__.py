"""Model zoo: DRSN-CS/CW (Zhao et al., IEEE TII 2020) and the networks they are compared with.

Public API::

    get_model(name, **kwargs) -> nn.Module      # with model.fd_spec = {"name", "kwargs"}
    list_models() -> list[str]
    register_model(name)                         # decorator for new builders
    get_model_spec(model) / build_from_spec(spec) / get_model_defaults(name)
    capture_thresholds(model) -> dict[str, Tensor] (context manager), threshold_summary(taus)

Every model maps ``(batch, in_channels, length)`` to ``(batch, num_classes)`` logits and raises
:class:`InputShapeError` (a ``ValueError``) for a wrong channel count or a too short window.
"""

from __future__ import annotations

# importing the family modules registers their builders
from fault_diag.models import aprelu, drsn, ran, resnet, senet, wdcnn  # noqa: F401
from fault_diag.models.base import FaultDiagNet
from fault_diag.models.errors import (
    InputShapeError,
    ModelError,
    ModelParamError,
    UnknownModelError,
)
from fault_diag.models.registry import (
    build_from_spec,
    get_model,
    get_model_defaults,
    get_model_spec,
    list_models,
    register_model,
)
from fault_diag.models.thresholds import capture_thresholds, shrinkage_units, threshold_summary

__all__ = [
    "FaultDiagNet",
    "InputShapeError",
    "ModelError",
    "ModelParamError",
    "UnknownModelError",
    "build_from_spec",
    "capture_thresholds",
    "get_model",
    "get_model_defaults",
    "get_model_spec",
    "list_models",
    "register_model",
    "shrinkage_units",
    "threshold_summary",
]
