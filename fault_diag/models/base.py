"""Common base of every network in the zoo: one cheap, export-friendly input check."""

from __future__ import annotations

import torch
from torch import nn

from fault_diag.models.errors import InputShapeError


class FaultDiagNet(nn.Module):
    """Base class: maps ``(batch, in_channels, length)`` windows to ``(batch, num_classes)`` logits.

    ``min_length`` is the shortest window the network can reduce without a layer receiving fewer
    samples than its stride/pool size. The check reads only ``x.dim()``, ``x.shape[1]`` and
    ``x.shape[-1]`` against constants, so it adds no kernel launch and does not touch the batch
    dimension (``torch.export`` with a dynamic batch is unaffected).
    """

    def __init__(self, name: str, in_channels: int, num_classes: int, min_length: int) -> None:
        super().__init__()
        self.model_name = name
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.min_length = min_length

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputShapeError` unless ``x`` is ``(batch, in_channels, >= min_length)``."""
        if x.dim() != 3 or x.shape[1] != self.in_channels or x.shape[-1] < self.min_length:
            raise InputShapeError(
                f"{self.model_name} expects input (batch, {self.in_channels}, length >= "
                f"{self.min_length}); got {tuple(x.shape)}"
            )
