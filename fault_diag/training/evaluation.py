"""Evaluation of a trained classifier under many noise conditions, with metrics that expose a sink.

One *condition* is the clean test set or one (kind, SNR). For each, every test window is scored
under ``K = noise.test_draws`` independent noise draws (fixed by ``noise.seed``, drawn on the CPU so a
GPU run sees exactly the test set a CPU run sees; draw 0 is the draw used before K existed) and the
metrics are taken over all K x windows:

- ``acc``: accuracy;
- ``bal_acc``: balanced accuracy, the mean of the per-class recalls (CWRU's normal class has 4 test
  windows against 32 per fault class: plain accuracy hides what happens to it);
- ``macro_f1``;
- ``healthy_share``: the share of *fault* windows predicted as the setup's healthy class. Broadband
  noise makes fault windows look like CWRU's normal recording (data/README.md), so a model can lose
  accuracy by sending everything to ``normal``; this number shows it directly.

AdaBN (Li et al., "Revisiting Batch Normalization For Practical Domain Adaptation", 2016; used by the
WDCNN paper, Zhang et al., Sensors 2017): BatchNorm running statistics fitted on the training
condition do not fit another SNR. :func:`adapt_batchnorm` re-estimates them on the *unlabelled*
windows of the condition being scored, on a copy of the model; labels are never used. Its results are
always reported under their own names (``.../adabn``), never mixed with plain evaluation.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from fault_diag.metric_names import ADABN
from fault_diag.noise import add_noise, noise_generator
from fault_diag.training.metrics import confusion_matrix, macro_f1


@dataclass
class ConditionResult:
    """Scores of one evaluated condition.

    ``name``: ``"train"``, ``"clean"`` or ``"<kind>/<snr>dB"``, with ``"/adabn"`` appended for the
    AdaBN variant (the text of :mod:`fault_diag.metric_names`).
    """

    name: str
    kind: str  # "none" when clean
    snr_db: float | None
    adabn: bool
    metrics: dict[str, float]  # acc, bal_acc, macro_f1, healthy_share, loss
    recall: np.ndarray  # (classes,) per-class recall (NaN for a class absent from the labels)
    confusion: np.ndarray  # (classes, classes) counts over windows x draws
    correct: np.ndarray  # (windows,) fraction of the draws classified correctly
    healthy: np.ndarray  # (windows,) fraction of the draws predicted as the healthy class


@dataclass
class EvaluationReport:
    """Every condition a run was scored under, in evaluation order."""

    conditions: list[ConditionResult] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    class_names: list[str] = field(default_factory=list)
    healthy_class: str | None = None
    test_draws: int = 1
    adabn_skipped: str | None = None  # why AdaBN was not run, when asked for

    def get(self, name: str) -> ConditionResult | None:
        """The condition called ``name`` (see :class:`ConditionResult`), or None."""
        return next((c for c in self.conditions if c.name == name), None)

    def window_scores(self) -> dict[str, np.ndarray]:
        """Arrays of the ``window_scores.npz`` artifact (see :mod:`fault_diag.metric_names`)."""
        return {
            "labels": self.labels.astype(np.int64),
            "class_names": np.asarray(self.class_names, dtype=str),
            "healthy_class": np.asarray(self.healthy_class or "", dtype=str),
            "conditions": np.asarray([c.name for c in self.conditions], dtype=str),
            "correct": np.stack([c.correct for c in self.conditions]).astype(np.float32)
            if self.conditions
            else np.zeros((0, self.labels.size), np.float32),
            "healthy": np.stack([c.healthy for c in self.conditions]).astype(np.float32)
            if self.conditions
            else np.zeros((0, self.labels.size), np.float32),
            "test_draws": np.asarray(self.test_draws, dtype=np.int64),
        }


def condition_name(
    kind: str, snr_db: float | None, *, train: bool = False, adabn: bool = False
) -> str:
    """``train``, ``clean`` or ``<kind>/<snr>dB`` (+ ``/adabn``)."""
    if train:
        base = "train"
    elif kind == "none" or snr_db is None:
        base = "clean"
    else:
        base = f"{kind}/{float(snr_db):g}dB"
    return f"{base}/{ADABN}" if adabn else base


def noisy_test_copies(
    x_clean: Tensor,
    kind: str,
    snr_db: float | None,
    seed: int,
    draws: int,
    *,
    split: str = "test",
    band: Sequence[float] | None = None,
) -> list[Tensor]:
    """``draws`` noisy copies of an evaluation split, drawn on the CPU, identical for every model.

    Draw 0 uses the generator of ``(seed, kind, snr, split)``, as before test draws existed; draw
    ``d > 0`` adds ``("draw", d)`` to it. Returned on ``x_clean``'s device. A clean condition
    returns ``[x_clean]`` (there is nothing to draw).
    """
    if kind == "none" or snr_db is None:
        return [x_clean]
    x_cpu = x_clean.detach().cpu()
    out = []
    for d in range(int(draws)):
        parts: list[object] = [kind, float(snr_db), split]
        if d > 0:
            parts += ["draw", d]
        gen = noise_generator(seed, *parts, device="cpu")
        out.append(
            add_noise(x_cpu, float(snr_db), kind, generator=gen, band=band).to(x_clean.device)
        )
    return out


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def has_batchnorm(model: nn.Module) -> bool:
    """True when ``model`` holds a BatchNorm layer with running statistics."""
    return bool(_batchnorms(model))


@torch.no_grad()
def adapt_batchnorm(
    model: nn.Module, windows: Sequence[Tensor] | Tensor, batch_size: int = 256
) -> nn.Module:
    """AdaBN: a copy of ``model`` whose BatchNorm statistics are re-estimated on ``windows``.

    The windows are unlabelled inputs of the target condition (raw, as the model takes them). Every
    BatchNorm layer's running mean and variance are reset and replaced by the cumulative average
    over the batches (``momentum=None``); every other layer stays in eval mode, and no parameter
    changes. ``model`` itself is not touched. A model without BatchNorm is returned as a copy.
    """
    adapted = copy.deepcopy(model)
    adapted.eval()
    bns = _batchnorms(adapted)
    if not bns:
        return adapted
    saved = [(bn, bn.momentum) for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: every batch weighs the same
        bn.train()
    xs = [windows] if isinstance(windows, Tensor) else list(windows)
    for x in xs:
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size]
            if chunk.shape[0] < 2:
                continue  # BatchNorm in training mode needs two or more samples
            adapted(chunk)
    for bn, momentum in saved:
        bn.momentum = momentum
        bn.eval()
    return adapted


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int, amp: bool = False) -> Tensor:
    """Logits for ``x`` in eval mode, batched (bf16 autocast when ``amp``)."""
    model.eval()
    outs = []
    for start in range(0, x.shape[0], batch_size):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            outs.append(model(x[start : start + batch_size]).float())
    return torch.cat(outs) if outs else torch.empty(0, device=x.device)


def score_predictions(
    labels: np.ndarray, predictions: np.ndarray, num_classes: int, healthy_index: int | None
) -> tuple[dict[str, float], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Metrics of ``predictions`` (draws, windows) against ``labels`` (windows,).

    Returns ``(metrics, recall, confusion, correct, healthy)``; see :class:`ConditionResult`.
    Balanced accuracy averages the recall of the classes present in ``labels``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.atleast_2d(np.asarray(predictions, dtype=np.int64))
    draws = preds.shape[0]
    cm = confusion_matrix(np.tile(labels, draws), preds.reshape(-1), num_classes)
    support = cm.sum(axis=1)
    recall = np.divide(
        np.diag(cm).astype(float),
        support,
        out=np.full(num_classes, np.nan),
        where=support > 0,
    )
    correct = (preds == labels[None, :]).mean(axis=0)
    if healthy_index is None:
        healthy = np.zeros(labels.size)
        healthy_share = float("nan")
    else:
        healthy = (preds == healthy_index).mean(axis=0)
        faults = labels != healthy_index
        healthy_share = float(healthy[faults].mean()) if faults.any() else float("nan")
    metrics = {
        "acc": float(correct.mean()) if correct.size else float("nan"),
        "bal_acc": float(np.nanmean(recall)) if (support > 0).any() else float("nan"),
        "macro_f1": macro_f1(cm),
        "healthy_share": healthy_share,
    }
    return metrics, recall, cm, correct, healthy


def evaluate_condition(
    model: nn.Module,
    copies: Sequence[Tensor],
    y: Tensor,
    *,
    name: str,
    kind: str,
    snr_db: float | None,
    num_classes: int,
    healthy_index: int | None,
    batch_size: int,
    amp: bool = False,
    adabn: bool = False,
) -> ConditionResult:
    """Score ``model`` on the noisy ``copies`` (one per draw) of the windows whose labels are ``y``.

    With ``adabn`` the BatchNorm statistics are first re-estimated on all the copies (unlabelled).
    """
    scored = adapt_batchnorm(model, copies, batch_size) if adabn else model
    preds, losses = [], []
    for x in copies:
        logits = predict(scored, x, batch_size, amp)
        losses.append(float(nn.functional.cross_entropy(logits, y).item()))
        preds.append(logits.argmax(dim=1).cpu().numpy())
    labels = y.cpu().numpy()
    metrics, recall, cm, correct, healthy = score_predictions(
        labels, np.stack(preds), num_classes, healthy_index
    )
    metrics["loss"] = float(np.mean(losses))
    return ConditionResult(name, kind, snr_db, adabn, metrics, recall, cm, correct, healthy)


__all__ = [
    "ConditionResult",
    "EvaluationReport",
    "adapt_batchnorm",
    "condition_name",
    "evaluate_condition",
    "has_batchnorm",
    "noisy_test_copies",
    "predict",
    "score_predictions",
]
