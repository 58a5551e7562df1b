"""WDCNN: deep CNN with wide first-layer kernels (Zhang, Peng, Li, Chen, Zhang; Sensors 17(2) 425,
2017), the standard CWRU baseline.

    Conv(16, k64, stride 16, pad 24) -> BN -> ReLU -> MaxPool(2)
    4 x [Conv(k3, pad 1) -> BN -> ReLU -> MaxPool(2)] with 32 / 64 / 64 / 64 channels
    -> AdaptiveAvgPool(4) -> flatten (256) -> FC 100 -> BN -> ReLU -> FC(num_classes)

At the paper's 2048-sample window the convolutional part ends at length 4, where the adaptive
pooling is the identity, so the network is the paper's (with every conv padded, as specified for
this project; the paper's last conv is unpadded, 3 x 64 features). For other window lengths the
adaptive average pooling maps the final feature map to ``pooled_length`` so the FC layer keeps its
shape. Layers followed by BN have no bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fault_diag.models.backbone import check_positive
from fault_diag.models.base import FaultDiagNet
from fault_diag.models.errors import ModelParamError
from fault_diag.models.registry import register_model


class WDCNN(FaultDiagNet):
    """See the module docstring."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int],
        first_kernel: int,
        first_stride: int,
        first_padding: int,
        hidden_units: int,
        pooled_length: int,
    ) -> None:
        # first conv output n = floor((L + 2p - k) / s) + 1; each of the len(channels) max-pools
        # halves it, so n >= 2**len(channels) keeps every pool input >= 2 samples
        min_length = (2 ** len(channels) - 1) * first_stride + first_kernel - 2 * first_padding
        super().__init__("wdcnn", in_channels, num_classes, max(1, min_length))
        layers: list[nn.Module] = []
        prev = in_channels
        for i, ch in enumerate(channels):
            if i == 0:
                conv = nn.Conv1d(prev, ch, first_kernel, first_stride, first_padding, bias=False)
            else:
                conv = nn.Conv1d(prev, ch, 3, 1, 1, bias=False)
            layers += [conv, nn.BatchNorm1d(ch), nn.ReLU(), nn.MaxPool1d(2)]
            prev = ch
        layers += [nn.AdaptiveAvgPool1d(pooled_length), nn.Flatten(1)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(prev * pooled_length, hidden_units, bias=False),
            nn.BatchNorm1d(hidden_units),
            nn.ReLU(),
            nn.Linear(hidden_units, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(self.features(x))


@register_model("wdcnn")
def wdcnn(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    channels: Sequence[int] = (16, 32, 64, 64, 64),
    first_kernel: int = 64,
    first_stride: int = 16,
    first_padding: int = 24,
    hidden_units: int = 100,
    pooled_length: int = 4,
) -> WDCNN:
    """WDCNN (Zhang et al., Sensors 2017); ``channels`` = first wide conv + the k3 conv blocks."""
    check_positive(
        "wdcnn",
        num_classes=num_classes,
        in_channels=in_channels,
        channels=channels,
        first_kernel=first_kernel,
        first_stride=first_stride,
        hidden_units=hidden_units,
        pooled_length=pooled_length,
    )
    if not isinstance(first_padding, int) or first_padding < 0:
        raise ModelParamError(
            f"wdcnn: parameter 'first_padding' must be an int >= 0; got {first_padding!r}"
        )
    return WDCNN(
        in_channels=in_channels,
        num_classes=num_classes,
        channels=list(channels),
        first_kernel=first_kernel,
        first_stride=first_stride,
        first_padding=first_padding,
        hidden_units=hidden_units,
        pooled_length=pooled_length,
    )
