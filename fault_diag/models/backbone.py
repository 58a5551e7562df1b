"""One residual-network skeleton shared by DRSN, ResNet, ConvNet, SE, APReLU and RAN models.

The DRSN paper (Zhao et al., IEEE TII 2020, Table II) network, with depth and width as parameters:

    input (in_channels x L)
    -> Conv(stem_channels, k, stride stem_stride)                       "stem"
    -> for each stage i: units_per_stage[i] units at stage_channels[i],  "stage1", "stage2", ...
       the first unit with stride stage_strides[i], the others stride 1
    -> BN -> ReLU -> global average pool -> FC(num_classes)               "head", "fc"

Only the unit differs between the paper's models ("the same network without ..."), which keeps the
comparison fair. Global average pooling makes the network accept any length >= ``min_length``.
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from fault_diag.models.base import FaultDiagNet
from fault_diag.models.errors import ModelParamError
from fault_diag.models.registry import register_model

__all__ = [
    "SKELETON",
    "ResidualNet1d",
    "StageFactory",
    "UnitFactory",
    "register_skeleton_model",
    "residual_network",
    "sequential_stage",
]

UnitFactory = Callable[[int, int, int, int], nn.Module]
"""``(in_channels, out_channels, stride, kernel_size) -> unit``."""

StageFactory = Callable[[int, int, int, int, int, int], nn.Module]
"""``(stage_index, in_channels, out_channels, stride, num_units, kernel_size) -> stage``."""


class ResidualNet1d(FaultDiagNet):
    """Stem -> named stages -> BN-ReLU-GAP head -> FC. Stage ``i`` is the attribute ``stage{i+1}``."""

    def __init__(
        self,
        name: str,
        *,
        in_channels: int,
        num_classes: int,
        min_length: int,
        stem: nn.Module,
        stages: Sequence[nn.Module],
        head_channels: int,
    ) -> None:
        super().__init__(name, in_channels, num_classes, min_length)
        self.stem = stem
        self.stages = nn.Sequential(
            OrderedDict((f"stage{i + 1}", stage) for i, stage in enumerate(stages))
        )
        self.head = nn.Sequential(
            nn.BatchNorm1d(head_channels), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(1)
        )
        self.fc = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.fc(self.head(self.stages(self.stem(x))))


def _as_list(model: str, key: str, value: int | Sequence[int], n: int) -> list[int]:
    values = [value] * n if isinstance(value, int) else list(value)
    if len(values) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ModelParamError(
            f"{model}: parameter {key!r} must be an int or a list of {n} ints "
            f"(one per stage); got {value!r}"
        )
    return values


def check_positive(model: str, **values: int | Sequence[int]) -> None:
    """Raise :class:`ModelParamError` unless every value (or list element) is a positive int."""
    for key, value in values.items():
        items = [value] if isinstance(value, int) else list(value)
        if not items or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items
        ):
            raise ModelParamError(
                f"{model}: parameter {key!r} must be positive int(s); got {value!r}"
            )


def sequential_stage(unit: UnitFactory) -> StageFactory:
    """A stage of ``num_units`` units named ``unit1..``; only the first one changes stride/width."""

    def build(
        index: int, in_ch: int, out_ch: int, stride: int, num_units: int, kernel_size: int
    ) -> nn.Module:
        del index
        units = [unit(in_ch, out_ch, stride, kernel_size)]
        units += [unit(out_ch, out_ch, 1, kernel_size) for _ in range(num_units - 1)]
        return nn.Sequential(OrderedDict((f"unit{j + 1}", u) for j, u in enumerate(units)))

    return build


def residual_network(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    stem_channels: int,
    stage_channels: Sequence[int],
    units_per_stage: int | Sequence[int],
    kernel_size: int,
    stem_stride: int,
    stage_strides: int | Sequence[int],
    stage: StageFactory,
    identity_shortcuts: bool = True,
    min_length: int | None = None,
) -> ResidualNet1d:
    """Validate the skeleton parameters and build a :class:`ResidualNet1d` with ``stage``.

    ``min_length`` defaults to the product of all strides: the shortest window for which every
    strided layer still sees at least ``stride`` samples.
    """
    check_positive(
        name,
        num_classes=num_classes,
        in_channels=in_channels,
        stem_channels=stem_channels,
        stage_channels=stage_channels,
        kernel_size=kernel_size,
        stem_stride=stem_stride,
    )
    n = len(stage_channels)
    units = _as_list(name, "units_per_stage", units_per_stage, n)
    strides = _as_list(name, "stage_strides", stage_strides, n)
    check_positive(name, units_per_stage=units, stage_strides=strides)
    if kernel_size % 2 == 0:
        raise ModelParamError(
            f"{name}: parameter 'kernel_size' must be odd (same-padding keeps the residual and "
            f"shortcut lengths equal); got {kernel_size}"
        )
    widths = [stem_channels, *stage_channels]
    if identity_shortcuts and any(b < a for a, b in zip(widths, widths[1:], strict=False)):
        raise ModelParamError(
            f"{name}: parameter 'stage_channels' must not decrease and start >= stem_channels "
            f"({stem_channels}): the zero-padding identity shortcut only adds channels; "
            f"got {list(stage_channels)}"
        )
    stem = nn.Conv1d(
        in_channels, stem_channels, kernel_size, stem_stride, kernel_size // 2, bias=False
    )
    stages = [
        stage(i, widths[i], widths[i + 1], strides[i], units[i], kernel_size) for i in range(n)
    ]
    total_stride = stem_stride * math.prod(strides)
    return ResidualNet1d(
        name,
        in_channels=in_channels,
        num_classes=num_classes,
        min_length=max(total_stride, min_length or 0),
        stem=stem,
        stages=stages,
        head_channels=widths[-1],
    )


#: The skeleton's keyword arguments, in order, with their (annotation, default): the DRSN paper's
#: Table II network. Every model registered with :func:`register_skeleton_model` takes these first.
SKELETON: dict[str, tuple[Any, Any]] = {
    "num_classes": (int, 10),
    "in_channels": (int, 1),
    "stem_channels": (int, 4),
    "stage_channels": (Sequence[int], (4, 8, 16)),
    "units_per_stage": (int | Sequence[int], 4),
    "kernel_size": (int, 3),
    "stem_stride": (int, 2),
    "stage_strides": (int | Sequence[int], (2, 2, 2)),
}


def register_skeleton_model(
    name: str, build: Callable[..., ResidualNet1d], *, doc: str, **extra: tuple[Any, Any]
) -> Callable[..., ResidualNet1d]:
    """Register model ``name`` on the shared skeleton; return its builder.

    The builder takes the :data:`SKELETON` keywords, then ``extra`` (``name=(annotation,
    default)``), all keyword-only with defaults (its signature is what :func:`get_model` validates
    and records). It calls ``build(skeleton, **extras)``: ``skeleton`` is the dict of the skeleton
    keywords (for :func:`residual_network`), ``extras`` the model's own keywords.
    """
    params = [
        inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        for key, (ann, default) in {**SKELETON, **extra}.items()
    ]
    signature = inspect.Signature(params, return_annotation=ResidualNet1d)

    def builder(**kwargs: Any) -> ResidualNet1d:
        bound = signature.bind(**kwargs)
        bound.apply_defaults()
        args = dict(bound.arguments)
        extras = {key: args.pop(key) for key in extra}
        return build(args, **extras)

    builder.__signature__ = signature  # type: ignore[attr-defined]
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    builder.__module__ = build.__module__
    return register_model(name)(builder)
