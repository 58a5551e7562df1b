"""Per-window normalisation, kept as a module so that it travels inside exported graphs.

Noise is added to the raw signal first (docs/design-notes.md section 3); the network then sees each window
standardised on its own (zero mean, unit variance per window and channel), which also removes the DC
offset of the CWRU drive-end channel (about +0.003 to +0.03 g).
"""

from __future__ import annotations

from torch import Tensor, nn


class WindowStandardize(nn.Module):
    """(x - mean) / (std + eps), statistics over the last axis of each window and channel."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        centred = x - mean
        std = centred.pow(2).mean(dim=-1, keepdim=True).sqrt()
        return centred / (std + self.eps)


class Classifier(nn.Module):
    """The deployed classifier: raw window (batch, channels, length) -> normalisation -> network logits."""

    def __init__(self, network: nn.Module, normalize: bool = True) -> None:
        super().__init__()
        self.normalize: nn.Module = WindowStandardize() if normalize else nn.Identity()
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        return self.network(self.normalize(x))


def standardize(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Functional form of :class:`WindowStandardize`."""
    return WindowStandardize(eps)(x)


__all__ = ["Classifier", "WindowStandardize", "standardize"]
