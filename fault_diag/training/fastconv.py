"""A CPU-only speed-up of the compiled training step: stride-1 convolutions whose input gradient is a
forward convolution (see :class:`FastConv1d`). Installed and removed by
:class:`fault_diag.training.engine.TrainStep`; nothing else needs it.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


class _Conv1dStride1(torch.autograd.Function):
    """A stride-1, bias-free ``conv1d`` whose input gradient is computed as a forward convolution.

    The input gradient of a stride-1 convolution is the convolution of the output gradient with the
    flipped, transposed kernel. oneDNN's backward-data kernel for these 4-16-channel layers is
    slow and erratic on the CPU (0.8-9 ms per call for 4 channels at 512 samples, where the forward
    kernel takes 0.3 ms), so the backward here calls the forward kernel for it; the weight gradient
    stays ATen's. Same mathematics, float32 rounding in another order.
    """

    @staticmethod
    def forward(x: Tensor, weight: Tensor, padding: int) -> Tensor:
        return nn.functional.conv1d(x, weight, None, 1, padding)

    @staticmethod
    def setup_context(ctx: object, inputs: tuple[Tensor, Tensor, int], output: Tensor) -> None:
        x, weight, padding = inputs
        ctx.save_for_backward(x, weight)  # type: ignore[attr-defined]
        ctx.padding = padding  # type: ignore[attr-defined]

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> tuple[Optional[Tensor], Optional[Tensor], None]:
        x, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        padding = ctx.padding  # type: ignore[attr-defined]
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        w = weight.to(grad.dtype)  # bf16 autocast: the gradient arrives in bf16, the weight is fp32
        grad_x = grad_w = None
        if needs[0]:
            flipped = w.flip(-1).transpose(0, 1)
            grad_x = nn.functional.conv1d(grad, flipped, None, 1, weight.shape[-1] - 1 - padding)
        if needs[1]:
            grad_w = torch.ops.aten.convolution_backward(
                grad, x.to(grad.dtype), w, None, [1], [padding], [1], False, [0], 1,
                [False, True, False],
            )[1].to(weight.dtype)  # fmt: skip
        return grad_x, grad_w, None


class FastConv1d(nn.Conv1d):
    """``nn.Conv1d`` that trains through :class:`_Conv1dStride1` (same parameters, same state dict).

    Only while training with gradients recorded; evaluation, inference and export run the plain
    ``nn.Conv1d.forward``. Installed by :func:`use_fast_convolutions` on the CPU fast path.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and torch.is_grad_enabled():
            return _Conv1dStride1.apply(x, self.weight, int(self.padding[0]))  # type: ignore[no-any-return]
        return super().forward(x)


def _eligible(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv1d
        and m.stride == (1,)
        and m.dilation == (1,)
        and m.groups == 1
        and m.bias is None
        and m.padding_mode == "zeros"
        and isinstance(m.padding, tuple)
        and m.kernel_size[0] % 2 == 1
        and m.padding[0] == m.kernel_size[0] // 2
    )


def use_fast_convolutions(model: nn.Module) -> int:
    """Make every stride-1, bias-free, same-padded ``nn.Conv1d`` of ``model`` a :class:`FastConv1d`
    (in place: the class changes, the parameters stay). Returns how many were switched."""
    n = 0
    for m in model.modules():
        if _eligible(m):
            m.__class__ = FastConv1d
            n += 1
    return n


def restore_convolutions(model: nn.Module) -> None:
    """Undo :func:`use_fast_convolutions` (plain ``nn.Conv1d`` again, e.g. before export)."""
    for m in model.modules():
        if type(m) is FastConv1d:
            m.__class__ = nn.Conv1d  # type: ignore[assignment]
