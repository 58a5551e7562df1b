"""The training engine: one step, one epoch, one member state, one runtime setup.

Every training path runs through this module: the single-run trainer
(:func:`fault_diag.training.loop.train`), the concurrent trainer
(:func:`fault_diag.training.concurrent.train_concurrent`, K members stacked with ``vmap``) and the
benchmark (``scripts/bench.py``). ``torch.compile`` and bf16 autocast are switches of the one
:class:`TrainStep`, not separate paths:

1. **Runtime** (:func:`setup_runtime`): device, torch threads, determinism, amp and the compile
   mode, checked once before any work.
2. **Epoch inputs built once per epoch, on the device** (:func:`epoch_inputs`): the windows
   gathered in the epoch's order (:func:`epoch_order`) and noised batch by batch from the epoch's
   generator, so the noise stream does not depend on the path. Each batch is then a view.
3. **One step** (:class:`TrainStep`): forward, loss, correct-count, backward, optimizer step, with
   loss and accuracy accumulated on the device (no host synchronisation per batch);
   ``compile=True`` compiles forward + loss (AOTAutograd compiles the backward with it).
   ``compile_mode`` ``auto`` picks ``reduce-overhead`` (CUDA graphs) on CUDA for batches up to
   :data:`CUDA_GRAPH_MAX_BATCH` windows and inductor's ``default`` elsewhere. Stacked members
   (``TrainStep.stacked``) run the same step through ``vmap(functional_call)``.
4. **One member state** (:class:`MemberState`): history, the validation-only model selection
   (:mod:`fault_diag.training.selection`), patience and the NaN check, the same for a single run
   and for each concurrent member.

Evaluation (validation each epoch, the test grid at the end) stays eager on the same module: it is a
few percent of the work and would otherwise compile a second (eval-mode) graph. On this project's
2-core CPU, inductor's code for these small-channel networks trains *slower* than eager (see
docs/benchmarks.md); the compile switch exists for GPUs, where the eager step is launch bound.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor, nn

from fault_diag.config import COMPILE_MODES, TrainerConfig
from fault_diag.noise import TrainingNoise, make_noise, noise_generator, scale_noise_to_snr
from fault_diag.training.selection import ModelSelector

log = logging.getLogger(__name__)

#: Largest batch for which ``auto`` uses CUDA graphs (``reduce-overhead``). A heuristic, not a
#: measurement: above it a DRSN step launches as many kernels but each does 8x more work.
CUDA_GRAPH_MAX_BATCH = 1024
#: torch.compile modes that capture CUDA graphs.
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


class DeviceError(RuntimeError):
    """The requested training device is not available."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error, raised early."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"trainer.device={name!r} but torch {torch.__version__} sees no CUDA device; "
                "use trainer.device=cpu (or auto), or install a CUDA build of torch "
                "(make install TORCH_SPEC='torch>=2.4,<3')"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"trainer.device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return device


def configure_threads(num_threads: int | None) -> int:
    """Set torch intra-op threads (default: at most 2, the per-job share on a 2-core machine)."""
    n = num_threads if num_threads else max(1, min(2, os.cpu_count() or 1))
    torch.set_num_threads(n)
    return n


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


@dataclass(frozen=True)
class Runtime:
    """Where and how a training runs, resolved once by :func:`setup_runtime`."""

    device: torch.device
    amp: bool  # bf16 autocast, as applied on this device
    compile: bool
    compile_mode: str  # as configured (``auto`` is resolved per step by batch size)
    threads: int

    def step(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, batch_size: int
    ) -> TrainStep:
        """The :class:`TrainStep` of one model under this runtime."""
        return TrainStep(
            model,
            optimizer,
            device=self.device,
            amp=self.amp,
            compile=self.compile,
            compile_mode=self.compile_mode,
            batch_size=batch_size,
        )


def setup_runtime(trainer: TrainerConfig) -> Runtime:
    """Device, threads, determinism, amp and compile mode of ``trainer``; refuses a bad setting
    (a missing GPU, a CUDA-graph mode on the CPU) before any work."""
    device = resolve_device(trainer.device)
    threads = configure_threads(trainer.num_threads)
    if trainer.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    amp = resolve_amp(bool(trainer.amp), device)
    if trainer.compile:
        resolve_compile_mode(trainer.compile_mode, device, trainer.batch_size)
        if device.type == "cpu":
            log.info(
                "trainer.compile=true on the CPU: compiling takes minutes, and for these models "
                "the compiled step measured slower than eager (docs/benchmarks.md)"
            )
    return Runtime(device, amp, bool(trainer.compile), str(trainer.compile_mode), threads)


def make_optimizer(trainer: TrainerConfig, params: Iterable[Any]) -> torch.optim.Optimizer:
    """``trainer.optimizer`` over ``params`` (SGD with momentum, or Adam)."""
    t = trainer
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def make_scheduler(
    trainer: TrainerConfig, opt: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    """Step decay by ``lr_gamma`` at ``lr_milestones`` (fractions of ``epochs``)."""
    t = trainer
    milestones = sorted({max(1, round(f * t.epochs)) for f in t.lr_milestones if f < 1})
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=t.lr_gamma)


def epoch_order(seed: int, epoch: int, n_train: int, device: torch.device) -> Tensor:
    """The shuffling order of ``epoch``: a CPU generator seeded by ``(seed, epoch)``, moved to ``device``.

    Seeded by the epoch, not drawn from a running stream, so a run resumed after epoch ``e``
    continues exactly as an uninterrupted run would.
    """
    order_gen = torch.Generator(device="cpu").manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n_train, generator=order_gen).to(device)


class TrainStep:
    """One optimisation step on a batch: forward, cross-entropy, backward, optimizer step.

    Returns the batch's mean loss and number of correct predictions as device tensors (no host
    synchronisation). With ``compile=True`` the forward, the loss and the accuracy count are one
    ``torch.compile`` region (``dynamic=False``: a full batch and the epoch's last, smaller batch
    are two graphs, compiled once each).

    A stacked step (:meth:`stacked`) trains K members at once: ``xb`` is ``(K, batch, channels,
    length)``, ``yb`` ``(K, batch)``, and the loss and count come back per member, shape ``(K,)``.
    The loss minimised is the sum of the members' mean cross-entropies: member k's gradient is that
    of its own loss, since the members share no parameter.
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
        members: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.device = device
        self.amp = resolve_amp(amp, device)
        self.members = members
        self.mode: Optional[str] = None
        self._fn = self._forward_loss
        self.fast_convolutions = 0
        self._vmodel: Any = None
        if members is not None:
            from torch.func import functional_call, vmap

            def one_member(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor) -> Tensor:
                return functional_call(model, (p, b), (x,))

            self._vmodel = vmap(one_member, in_dims=(0, 0, 0))
        if compile:
            self.mode = resolve_compile_mode(compile_mode, device, batch_size)
            if device.type == "cpu" and members is None:
                from fault_diag.training.fastconv import use_fast_convolutions

                # oneDNN's backward-data kernel is the slowest part of a compiled CPU step.
                self.fast_convolutions = use_fast_convolutions(model)
            self._fn = torch.compile(self._forward_loss, mode=self.mode, dynamic=False)

    @classmethod
    def stacked(
        cls,
        base: nn.Module,
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        optimizer: torch.optim.Optimizer,
        **kwargs: Any,
    ) -> TrainStep:
        """A step over K members stacked by :func:`torch.func.stack_module_state`; ``base`` is
        the members' architecture (e.g. on the ``meta`` device)."""
        return cls(base, optimizer, members=(params, buffers), **kwargs)

    @property
    def batch_axis(self) -> int:
        """The batch axis of this step's inputs (1 for stacked members, after the member axis)."""
        return 0 if self.members is None else 1

    def _forward_loss(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        if self.members is None:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                logits = self.model(xb)
                loss = nn.functional.cross_entropy(logits.float(), yb)
            return loss, (logits.argmax(dim=1) == yb).sum()
        params, buffers = self.members
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self._vmodel(params, buffers, xb)  # (K, batch, classes)
        k, b = yb.shape
        losses = nn.functional.cross_entropy(
            logits.float().flatten(0, 1), yb.flatten(), reduction="none"
        )
        return losses.view(k, b).mean(dim=1), (logits.argmax(dim=-1) == yb).sum(dim=1)

    def close(self) -> None:
        """Give the model back as it was built (plain ``nn.Conv1d`` layers)."""
        if self.fast_convolutions:
            from fault_diag.training.fastconv import restore_convolutions

            restore_convolutions(self.model)
            self.fast_convolutions = 0

    def __call__(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss, n_correct)`` of the batch (per member when stacked), detached, on the device;
        the parameters are updated."""
        if self.mode in CUDA_GRAPH_MODES:
            # CUDA-graph trees reuse output buffers across replays: mark each training iteration.
            torch.compiler.cudagraph_mark_step_begin()
        loss, correct = self._fn(xb, yb)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if self.members is None else loss.sum()).backward()
        self.optimizer.step()
        return loss.detach(), correct


def run_epoch(
    step: TrainStep,
    x_epoch: Tensor,
    y_epoch: Tensor,
    batch_size: int,
    on_batch: Callable[[], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """Train over the epoch's prepared inputs; returns ``(sum of batch loss x batch size, n correct)``.

    Both are device tensors (shape ``(K,)`` for a stacked step), read once per epoch by the caller.
    ``on_batch()`` after each batch (a progress bar; it must not read device values).
    """
    axis = step.batch_axis
    n = x_epoch.shape[axis]
    shape = () if axis == 0 else (x_epoch.shape[0],)
    loss_sum = torch.zeros(shape, device=x_epoch.device)
    correct = torch.zeros(shape, device=x_epoch.device, dtype=torch.long)
    for start in range(0, n, batch_size):
        xb = x_epoch.narrow(axis, start, min(batch_size, n - start))
        yb = y_epoch.narrow(axis, start, min(batch_size, n - start))
        loss, n_correct = step(xb, yb)
        loss_sum += loss * xb.shape[axis]
        correct += n_correct
        if on_batch is not None:
            on_batch()
    return loss_sum, correct


def epoch_metrics(loss_sum: Tensor, correct: Tensor, n_train: int) -> list[dict[str, float]]:
    """Training loss and accuracy of each member's epoch (one dict; K for a stacked step)."""
    losses = (loss_sum.double() / n_train).reshape(-1).tolist()
    accs = (correct.double() / n_train).reshape(-1).tolist()
    return [{"train/loss": a, "train/acc": b} for a, b in zip(losses, accs, strict=True)]


@torch.no_grad()
def validate(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int, amp: bool = False
) -> tuple[float, float, Tensor]:
    """(mean cross-entropy, accuracy, predicted classes) of ``model`` on ``(x, y)``, in eval mode."""
    from fault_diag.training.evaluation import predict

    logits = predict(model, x, batch_size, amp)
    loss = nn.functional.cross_entropy(logits, y).item()
    pred = logits.argmax(dim=1)
    return loss, (pred == y).float().mean().item(), pred


@dataclass
class MemberState:
    """What one trained model keeps between epochs: its history, the validation-only model
    selection (best epoch and weights), patience and the NaN check. The single-run trainer has
    one; the concurrent trainer one per member."""

    selector: ModelSelector
    label: str = ""  # how errors name this member ("" for a single run)
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: bool = False
    stopped_early: bool = False

    @classmethod
    def start(cls, model: nn.Module, select: str, label: str = "") -> MemberState:
        """A fresh state whose fallback best weights are ``model``'s initial ones."""
        selector = ModelSelector(select)
        selector.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return cls(selector=selector, label=label)

    def out_of_patience(self, patience: Optional[int]) -> bool:
        """Mark the member stopped when ``patience`` epochs passed without a better score."""
        if not self.stopped and patience is not None and self.selector.since_best >= patience:
            self.stopped = self.stopped_early = True
        return self.stopped

    def end_epoch(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        """Record ``epoch``'s (1-based) metrics, refuse a NaN/inf loss, update the selection."""
        self.history.append(metrics)
        if not math.isfinite(metrics["train/loss"]):
            prefix = f"{self.label}: " if self.label else ""
            raise FloatingPointError(
                f"{prefix}training loss became {metrics['train/loss']} at epoch {epoch}; "
                "lower trainer.lr or check the data"
            )
        self.selector.update(epoch, metrics, model)

    def state_dict(self) -> dict[str, Any]:
        """The selection state and history, for a checkpoint."""
        return {**self.selector.state_dict(), "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Back to a checkpointed state."""
        self.selector.load_state_dict(state)
        self.history = list(state["history"])


def member_epoch_inputs(
    x_train: Tensor,
    y_train: Tensor,
    noise: TrainingNoise | None,
    *,
    redraw: bool,
    seed: int,
    epoch: int,
    batch_size: int,
) -> tuple[Tensor, Tensor]:
    """One member's epoch: its order and, when its training noise is redrawn, its noise, both from
    generators seeded by ``(seed, epoch)``."""
    device = x_train.device
    order = epoch_order(seed, epoch, int(x_train.shape[0]), device)
    if noise is None or not redraw:
        return epoch_inputs(x_train, y_train, order, batch_size)
    gen = noise_generator(seed, "train", epoch, device=device)
    return epoch_inputs(x_train, y_train, order, batch_size, noise, None, gen)


__all__ = [
    "COMPILE_MODES",
    "CUDA_GRAPH_MAX_BATCH",
    "DeviceError",
    "FastPathError",
    "MemberState",
    "Runtime",
    "TrainStep",
    "bf16_supported",
    "configure_threads",
    "epoch_inputs",
    "epoch_metrics",
    "epoch_order",
    "make_optimizer",
    "make_scheduler",
    "member_epoch_inputs",
    "resolve_amp",
    "resolve_compile_mode",
    "resolve_device",
    "run_epoch",
    "setup_runtime",
    "validate",
]
