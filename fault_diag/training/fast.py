"""The fast training path: whole-epoch inputs on the device, one fused step, optional ``torch.compile``.

The eager loop in :mod:`fault_diag.training.loop` is the reference. With ``trainer.compile=true`` the
loop runs each epoch through this module instead:

1. **Epoch inputs built once per epoch, on the device** (:func:`epoch_inputs`). The eager loop gathers a
   batch and calls :func:`~fault_diag.noise.add_noise` per batch; that costs ~10 small kernels and two
   host-device synchronisations (the NaN / tiny-power checks) per batch, which is what limits a GPU
   at these model sizes. Here the windows are gathered in the epoch's order in one indexing call, the
   noise is drawn batch by batch from the same generator (same shapes, same order: the same random
   stream) and rescaled to the exact SNR for the whole epoch in one call. On the CPU the noisy
   windows are bit-identical to the eager loop's (a test checks it); each batch is then a view.
2. **One step function** (:class:`TrainStep`): forward, loss, correct-count, backward, optimizer step,
   with the loss and accuracy accumulated on the device (no ``.item()`` per batch).
3. **torch.compile** of forward + loss (AOTAutograd compiles the backward with it). ``compile_mode``
   ``auto`` picks ``reduce-overhead`` (CUDA graphs) on CUDA for batches up to
   :data:`CUDA_GRAPH_MAX_BATCH` windows, where kernel launches dominate, and inductor's ``default``
   elsewhere. bf16 autocast (``trainer.amp``) applies inside the compiled region, on CUDA and on
   CPUs with native bf16 (:func:`bf16_supported`).

Evaluation (validation each epoch, the test grid at the end) stays eager on the same module: it is a
few percent of the work and would otherwise compile a second (eval-mode) graph.

On this project's 2-core CPU, inductor's code for these small-channel networks trains *slower* than
eager (see docs/benchmarks.md); the switch exists for GPUs, where the eager loop is launch bound.
"""

from __future__ import annotations

import logging
from typing import Optional

import torch
from torch import Tensor, nn

from fault_diag.noise import TrainingNoise, make_noise, scale_noise_to_snr

log = logging.getLogger(__name__)

#: Accepted values of ``trainer.compile_mode``; ``auto`` is resolved by :func:`resolve_compile_mode`.
COMPILE_MODES = ("auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Largest batch for which ``auto`` uses CUDA graphs (``reduce-overhead``). A heuristic, not a
#: measurement: above it a DRSN step launches as many kernels but each does 8x more work.
CUDA_GRAPH_MAX_BATCH = 1024
#: torch.compile modes that capture CUDA graphs.
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


class FastPathError(ValueError):
    """A fast-path setting is invalid; the message names the key and the accepted values."""


def resolve_compile_mode(mode: str, device: torch.device, batch_size: int) -> str:
    """The ``torch.compile`` mode for ``trainer.compile_mode=mode`` on ``device`` at ``batch_size``.

    ``auto``: ``reduce-overhead`` (inductor + CUDA graphs) on CUDA for ``batch_size <=``
    :data:`CUDA_GRAPH_MAX_BATCH`, ``default`` otherwise (CUDA graphs do not exist on the CPU).
    An explicit CUDA-graph mode on the CPU is refused, since it would silently do nothing.
    """
    if mode not in COMPILE_MODES:
        raise FastPathError(f"trainer.compile_mode={mode!r} is not one of {list(COMPILE_MODES)}")
    if mode == "auto":
        if device.type == "cuda" and batch_size <= CUDA_GRAPH_MAX_BATCH:
            return "reduce-overhead"
        return "default"
    if device.type != "cuda" and mode in CUDA_GRAPH_MODES:
        raise FastPathError(
            f"trainer.compile_mode={mode!r} uses CUDA graphs, which need a CUDA device "
            f"(training on {device}); use compile_mode=auto or default"
        )
    return mode


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast has native kernels on ``device``.

    CUDA: always (Ampere and later compute in bf16; older GPUs emulate it). CPU: only with native
    bf16 instructions (AVX512-BF16 or AMX, as oneDNN reports them); elsewhere oneDNN emulates bf16
    and autocast would be slower than float32.
    """
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def resolve_amp(requested: bool, device: torch.device) -> bool:
    """``trainer.amp`` as applied on ``device``: on where bf16 is native, else off with a warning."""
    if not requested:
        return False
    if bf16_supported(device):
        return True
    log.warning(
        "trainer.amp=true is ignored on %s: no native bf16 (needs CUDA, or a CPU with "
        "AVX512-BF16/AMX); training in float32",
        device,
    )
    return False


@torch.no_grad()
def epoch_inputs(
    x_train: Tensor,
    y_train: Tensor,
    order: Tensor,
    batch_size: int,
    noise_kind: str | TrainingNoise = "none",
    snr_db: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
) -> tuple[Tensor, Tensor]:
    """The epoch's training windows in ``order``, noised as the eager loop noises them batch by batch.

    Args:
        x_train: ``(N, channels, length)`` raw training windows, on the training device.
        y_train: ``(N,)`` labels.
        order: ``(N,)`` permutation of the epoch (on the same device).
        batch_size: the training batch size: noise is drawn in chunks of this many windows, exactly
            as :func:`fault_diag.noise.add_noise` draws it for each batch of the eager loop.
        noise_kind: ``gaussian``/``pink``/``laplacian``, ``none`` for clean windows, or a
            :class:`~fault_diag.noise.TrainingNoise` (any protocol: matched, mixed), applied batch
            by batch exactly as the eager loop applies it (``snr_db`` is then ignored).
        snr_db: target SNR of every window (ignored for ``none``).
        generator: the epoch's noise generator (``noise_generator(seed, "train", epoch)``).

    Returns:
        ``(x_epoch, y_epoch)``: new tensors; batch ``i`` of the epoch is rows
        ``i*batch_size:(i+1)*batch_size``. On the CPU ``x_epoch`` equals, bit for bit, the
        concatenation of the eager loop's per-batch ``add_noise(x_train[idx], ...)`` results. On
        CUDA the same holds for gaussian and laplacian noise; pink noise goes through a batched
        inverse FFT whose rounding may depend on the batch count (same distribution, same SNR).
    """
    x = x_train[order]
    y = y_train[order]
    if isinstance(noise_kind, TrainingNoise):
        n = x.shape[0]
        parts = [
            noise_kind.apply(x[s : s + batch_size], generator) for s in range(0, n, batch_size)
        ]
        return (torch.cat(parts) if parts else x), y
    if noise_kind == "none":
        return x, y
    if snr_db is None:
        raise FastPathError(f"noise kind {noise_kind!r} needs an SNR in dB, got None")
    n = x.shape[0]
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    # Same draws as add_noise per batch: make_noise(kind, batch shape, dtype=work, generator).
    chunks = [
        make_noise(
            noise_kind,
            (min(batch_size, n - start), *x.shape[1:]),
            device=x.device,
            dtype=work,
            generator=generator,
        )
        for start in range(0, n, batch_size)
    ]
    noise = torch.cat(chunks) if chunks else torch.empty_like(x, dtype=work)
    scaled = scale_noise_to_snr(x, noise, float(snr_db))  # per window, exact SNR
    return scaled.add_(x), y


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


class TrainStep:
    """One optimisation step on a batch: forward, cross-entropy, backward, optimizer step.

    Returns the batch's mean loss and number of correct predictions as device tensors (no host
    synchronisation). With ``compile=True`` the forward, the loss and the accuracy count are one
    ``torch.compile`` region (``dynamic=False``: a full batch and the epoch's last, smaller batch
    are two graphs, compiled once each).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        device: torch.device,
        amp: bool = False,
        compile: bool = False,
        compile_mode: str = "auto",
        batch_size: int = 128,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.device = device
        self.amp = resolve_amp(amp, device)
        self.mode: Optional[str] = None
        self._fn = self._forward_loss
        self.fast_convolutions = 0
        if compile:
            self.mode = resolve_compile_mode(compile_mode, device, batch_size)
            if device.type == "cpu":
                # oneDNN's backward-data kernel is the slowest part of a compiled CPU step.
                self.fast_convolutions = use_fast_convolutions(model)
            self._fn = torch.compile(self._forward_loss, mode=self.mode, dynamic=False)

    def _forward_loss(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(xb)
            loss = nn.functional.cross_entropy(logits.float(), yb)
        correct = (logits.argmax(dim=1) == yb).sum()
        return loss, correct

    def close(self) -> None:
        """Give the model back as it was built (plain ``nn.Conv1d`` layers)."""
        if self.fast_convolutions:
            restore_convolutions(self.model)
            self.fast_convolutions = 0

    def __call__(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss, n_correct)`` of the batch, detached, on the device; the parameters are updated."""
        if self.mode in CUDA_GRAPH_MODES:
            # CUDA-graph trees reuse output buffers across replays: mark each training iteration.
            torch.compiler.cudagraph_mark_step_begin()
        loss, correct = self._fn(xb, yb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), correct


def run_epoch(
    step: TrainStep, x_epoch: Tensor, y_epoch: Tensor, batch_size: int
) -> tuple[Tensor, Tensor]:
    """Train over the epoch's prepared inputs; returns ``(sum of batch loss x batch size, n correct)``.

    Both are device tensors, read once per epoch by the caller.
    """
    n = x_epoch.shape[0]
    loss_sum = torch.zeros((), device=x_epoch.device)
    correct = torch.zeros((), device=x_epoch.device, dtype=torch.long)
    for start in range(0, n, batch_size):
        xb = x_epoch[start : start + batch_size]
        yb = y_epoch[start : start + batch_size]
        loss, n_correct = step(xb, yb)
        loss_sum += loss * xb.shape[0]
        correct += n_correct
    return loss_sum, correct


__all__ = [
    "COMPILE_MODES",
    "CUDA_GRAPH_MAX_BATCH",
    "FastPathError",
    "FastConv1d",
    "TrainStep",
    "bf16_supported",
    "restore_convolutions",
    "use_fast_convolutions",
    "resolve_amp",
    "epoch_inputs",
    "resolve_compile_mode",
    "run_epoch",
]
