"""Building blocks shared by the model families.

Everything works on ``(batch, channels, length)`` tensors. Convolutions use ``padding =
kernel_size // 2`` with odd kernels, so a stride-``s`` convolution maps length ``L`` to
``ceil(L / s)``, exactly the length of the identity shortcut's subsampling ``x[..., ::s]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FELU",
    "APReLU",
    "ActivationFactory",
    "IdentityShortcut",
    "PreActResidualUnit",
    "Shrinkage",
    "SoftMask1d",
    "SqueezeExcite",
    "ThresholdBranch",
    "soft_threshold",
]

ActivationFactory = Callable[[int], nn.Module]
"""Builds the activation of a residual unit from its channel count (``nn.ReLU`` ignores it)."""


def relu_factory(channels: int) -> nn.Module:
    """The default activation: ReLU (channel count unused)."""
    del channels
    return nn.ReLU()


class _SoftThreshold(torch.autograd.Function):
    """``y = r - clamp(r, -tau, tau)`` with a hand-written backward (the training-time form).

    Autograd through ``sign(r) * relu(|r| - tau)`` runs about ten passes over the activation in
    backward (the product rule for ``sign``, whose gradient is zero, the ReLU mask, the broadcast
    sum for ``tau``, the ``abs`` chain). The gradients in closed form need four, from ``y`` alone:
    ``s = sign(y)``; ``dL/dr = g * s^2`` (1 where ``|r| > tau``, else 0) and
    ``dL/dtau = -sum_L(g * s)``. Forward values are bit-identical to the formula (for ``|r| > tau``
    both compute ``r -/+ tau`` in one rounding); the gradients are too, except that the sum for a
    channel-shared ``tau`` runs in another order.
    """

    generate_vmap_rule = True  # torch.func.vmap (stacked sweep members) derives the batched rule

    @staticmethod
    def forward(r: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        return r - r.clamp(-tau, tau)

    @staticmethod
    def setup_context(ctx: object, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        ctx.save_for_backward(output)  # type: ignore[attr-defined]
        ctx.tau_shape = inputs[1].shape  # type: ignore[attr-defined]

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (y,) = ctx.saved_tensors  # type: ignore[attr-defined]
        s = torch.sign(y)
        gs = grad * s
        grad_tau = -gs.sum(dim=-1, keepdim=True)
        tau_shape = ctx.tau_shape  # type: ignore[attr-defined]
        if grad_tau.shape[-2] != tau_shape[-2]:  # channel-shared tau: (B, 1, 1)
            grad_tau = grad_tau.sum(dim=-2, keepdim=True)
        return gs * s, grad_tau


def soft_threshold(
    x: torch.Tensor, tau: torch.Tensor, abs_x: torch.Tensor | None = None
) -> torch.Tensor:
    """``sign(x) * max(|x| - tau, 0)`` (``tau >= 0``, broadcast over the length); ``abs_x`` optional.

    Exactly 0 where ``|x| <= tau``; the gradient w.r.t. ``tau`` is ``-sign(x)`` where ``|x| > tau``.
    When gradients are recorded this runs :class:`_SoftThreshold` (same values, a backward with
    fewer passes: ~5 % off a DRSN-CW training step on the CPU); otherwise (inference, export) the
    plain formula, which every exporter understands.
    """
    if torch.is_grad_enabled() and (x.requires_grad or tau.requires_grad):
        if tau.dtype != x.dtype:  # bf16 autocast: the threshold branch's FCs give float32
            tau = tau.to(x.dtype)
        return _SoftThreshold.apply(x, tau)
    if abs_x is None:
        abs_x = x.abs()
    return torch.sign(x) * F.relu(abs_x - tau)


class ThresholdBranch(nn.Module):
    """DRSN threshold sub-network (Zhao et al., IEEE TII 2020, RSBU-CS / RSBU-CW).

    Input ``|r|`` of shape ``(B, C, L)``. ``m = mean_L |r|`` (C values) -> FC(C->C) -> BN -> ReLU ->
    FC -> sigmoid = ``alpha``.
    - channel-shared (CS): the second FC has 1 output; ``tau = alpha * mean_{C,L} |r|`` (B, 1).
    - channel-wise (CW): the second FC has C outputs; ``tau_c = alpha_c * mean_L |r_c|`` (B, C).
    Returns ``tau`` shaped ``(B, K, 1)`` (K = 1 or C) to broadcast over the length.
    Because ``alpha`` is in (0, 1), ``0 < tau < mean |r|``: the threshold is positive and never
    large enough to zero the whole feature map.
    """

    def __init__(self, channels: int, channel_wise: bool) -> None:
        super().__init__()
        self.channel_wise = channel_wise
        self.fc1 = nn.Linear(channels, channels)
        self.bn = nn.BatchNorm1d(channels)
        self.fc2 = nn.Linear(channels, channels if channel_wise else 1)

    def forward(self, abs_r: torch.Tensor) -> torch.Tensor:
        m = abs_r.mean(dim=-1)  # (B, C): mean of |r| over the length, not of the signed r
        alpha = torch.sigmoid(self.fc2(F.relu(self.bn(self.fc1(m)))))
        scale = m if self.channel_wise else m.mean(dim=1, keepdim=True)
        return (alpha * scale).unsqueeze(-1)


class Shrinkage(nn.Module):
    """Soft thresholding of the residual with a learned threshold (the DRSN 'shrinkage' block)."""

    def __init__(self, channels: int, channel_wise: bool) -> None:
        super().__init__()
        self.threshold = ThresholdBranch(channels, channel_wise)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        abs_r = r.abs()  # shared by the threshold branch and the soft threshold
        return soft_threshold(r, self.threshold(abs_r), abs_r)


class FELU(nn.Module):
    """Non-dying excitation activation used by ``se_felu_resnet1d``.

    ``f(x) = x`` for ``x > 0`` and ``alpha * (exp(x) - 1)`` for ``x <= 0`` (an ELU with a small
    ``alpha``, default 0.1). The source's formula is not recoverable; this one meets its stated
    properties: identity for positive inputs, a small saturating negative value (bounded by
    ``-alpha``) for negative inputs, continuous at 0, and a non-zero gradient ``alpha * exp(x)``
    everywhere, so an excitation unit pushed negative still learns (a ReLU unit would die). The small
    ``alpha`` keeps the negative output a leak, so the gate stays close to SE's ReLU behaviour.
    Implemented with ``F.elu`` (one fused kernel, exports to ONNX ``Elu``).
    """

    def __init__(self, alpha: float = 0.1) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x, alpha=self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018): GAP -> FC -> act -> FC -> sigmoid -> x * s.

    ``hidden = max(1, channels // reduction)``; ``activation`` is ReLU in the paper (FELU for
    ``se_felu_resnet1d``).
    """

    def __init__(self, channels: int, reduction: int = 1, activation: nn.Module | None = None):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.act = activation if activation is not None else nn.ReLU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc2(self.act(self.fc1(x.mean(dim=-1)))))
        return x * s.unsqueeze(-1)


class APReLU(nn.Module):
    """Adaptively parametric ReLU (Zhao et al., IEEE TIE 2020, DOI 10.1109/TIE.2020.2972458).

    ``z = concat(GAP(max(x, 0)), GAP(min(x, 0)))`` (2C) -> FC(2C->C) -> BN -> ReLU -> FC(C->C) -> BN ->
    sigmoid = ``alpha`` (per sample and channel); ``y = max(x, 0) + alpha * min(x, 0)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2 * channels, channels)
        self.bn1 = nn.BatchNorm1d(channels)
        self.fc2 = nn.Linear(channels, channels)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = F.relu(x)
        neg = x - pos  # min(x, 0)
        z = torch.cat([pos.mean(dim=-1), neg.mean(dim=-1)], dim=1)
        alpha = torch.sigmoid(self.bn2(self.fc2(F.relu(self.bn1(self.fc1(z))))))
        return torch.addcmul(pos, alpha.unsqueeze(-1), neg)


class IdentityShortcut(nn.Module):
    """Parameter-free shortcut of the DRSN paper: subsample by the stride, zero-pad the channels.

    ``x[..., ::stride]`` has length ``ceil(L / stride)``, the output length of the residual branch's
    stride-``s`` convolution. New channels are zeros, split as ``(out - in) // 2`` before and the rest
    after (the original Keras code pads half on each side, which breaks for odd differences).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"identity shortcut cannot reduce channels ({in_channels} -> {out_channels}): "
                "zero-padding only adds channels"
            )
        self.stride = stride
        extra = out_channels - in_channels
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[..., :: self.stride]
        if self.pad != (0, 0):
            x = F.pad(x, (0, 0, self.pad[0], self.pad[1]))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels={self.pad}"


class PreActResidualUnit(nn.Module):
    """Pre-activation residual unit, the common skeleton of RSBU / ResNet / ConvNet / SE / APReLU units.

    Residual branch ``r = Conv(k) . act . BN . Conv(k, stride) . act . BN (x)`` (the pre-activation
    order of He et al. 2016, as in the DRSN paper), then ``transform(r)`` (soft thresholding, SE
    re-weighting or nothing), then ``shortcut(x) + transform(r)`` with NO activation after the addition. With
    ``shortcut=False`` (the ConvNet baseline) the unit returns ``transform(r)`` only.
    Convolutions have no bias: each feeds a BatchNorm, directly or through the identity addition.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        kernel_size: int = 3,
        *,
        transform: nn.Module | None = None,
        shortcut: bool = True,
        activation: ActivationFactory = relu_factory,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.bn1 = nn.BatchNorm1d(in_channels)
        self.act1 = activation(in_channels)
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, stride, pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.act2 = activation(out_channels)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, 1, pad, bias=False)
        self.transform = transform
        self.shortcut = IdentityShortcut(in_channels, out_channels, stride) if shortcut else None

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch before ``transform`` (the ``r`` of the DRSN paper)."""
        return self.conv2(self.act2(self.bn2(self.conv1(self.act1(self.bn1(x))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.residual(x)
        if self.transform is not None:
            r = self.transform(r)
        if self.shortcut is None:
            return r
        return self.shortcut(x) + r


class SoftMask1d(nn.Module):
    """Bottom-up top-down soft-mask branch of the Residual Attention Network (Wang et al., CVPR 2017), 1D.

    ``depth`` times: max-pool (k3, s2, p1) then one residual unit (bottom-up); then, back up, linear
    interpolation to the length of the level above, plus the identity skip from that level, then one
    residual unit (top-down); finally BN-ReLU-Conv1x1-BN-ReLU-Conv1x1-sigmoid gives ``M(x)`` in (0, 1)
    with the input's shape.
    """

    def __init__(self, channels: int, depth: int, kernel_size: int = 3) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"soft-mask depth must be >= 1; got {depth}")
        self.down = nn.ModuleList(
            PreActResidualUnit(channels, channels, 1, kernel_size) for _ in range(depth)
        )
        self.up = nn.ModuleList(
            PreActResidualUnit(channels, channels, 1, kernel_size) for _ in range(depth - 1)
        )
        self.out = nn.Sequential(
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 1, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths: list[int] = []
        skips: list[torch.Tensor] = []
        h = x
        for unit in self.down:
            lengths.append(h.shape[-1])
            h = unit(F.max_pool1d(h, 3, 2, 1))
            skips.append(h)
        # back up: level i returns to lengths[i]; the skip of the level above is added first
        for i in range(len(self.down) - 1, 0, -1):
            h = F.interpolate(h, size=lengths[i], mode="linear", align_corners=False)
            h = self.up[i - 1](h + skips[i - 1])
        h = F.interpolate(h, size=lengths[0], mode="linear", align_corners=False)
        return self.out(h)
