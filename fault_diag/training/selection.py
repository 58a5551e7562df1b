"""Model selection on the validation split: which epoch's weights are kept for the final test.

Rules (``trainer.select``):

- ``val_loss`` (default): the epoch with the lowest validation cross-entropy. On CWRU the validation
  accuracy saturates (1.000 at epoch 3 of 20 under the paper's lr 0.1, matched 0 dB) long before the
  learning rate is annealed, while the validation loss keeps falling through the 0.01 and 0.001
  stages; accuracy cannot tell those epochs apart, the loss can.
- ``val_acc``: the epoch with the highest validation accuracy (the rule before this option existed,
  except for ties, below).
- ``last``: the last epoch trained (no selection; the paper's protocol).

Ties go to the *later* epoch: with a saturated score the later, annealed weights win, instead of the
strict ``>`` rule that kept the first epoch to reach 1.000. The test split is never consulted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from fault_diag.config import SELECT_RULES


@dataclass
class ModelSelector:
    """Tracks the best epoch under ``rule`` and keeps a copy of its weights."""

    rule: str = "val_loss"
    best_score: float = -math.inf  # higher is better (the negated loss for val_loss)
    best_epoch: int = -1
    best_val_acc: float = -1.0
    best_val_loss: float = math.inf
    since_best: int = 0
    best_state: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rule not in SELECT_RULES:
            raise ValueError(
                f"trainer.select={self.rule!r} is not one of: {', '.join(SELECT_RULES)}"
            )

    def score(self, epoch: int, metrics: dict[str, float]) -> float:
        """The selection score of an epoch (higher is better)."""
        if self.rule == "val_loss":
            loss = metrics["val/loss"]
            return -loss if math.isfinite(loss) else -math.inf
        if self.rule == "val_acc":
            return metrics["val/acc"]
        return float(epoch)

    def update(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool:
        """Consider ``epoch`` (1-based) with its validation ``metrics``; True when it is kept."""
        score = self.score(epoch, metrics)
        if score >= self.best_score:  # ties: the later (more annealed) epoch wins
            self.best_score, self.best_epoch, self.since_best = score, epoch, 0
            self.best_val_acc, self.best_val_loss = metrics["val/acc"], metrics["val/loss"]
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return True
        self.since_best += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores to resume selection exactly."""
        return {
            "select": self.rule,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_val_acc": self.best_val_acc,
            "best_val_loss": self.best_val_loss,
            "since_best": self.since_best,
            "best_model": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (checkpoint keys)."""
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.best_val_acc = float(state["best_val_acc"])
        self.best_val_loss = float(state.get("best_val_loss", math.inf))
        self.since_best = int(state["since_best"])
        self.best_state = state["best_model"]

    def describe(self) -> str:
        """One line for the run record and the model card."""
        what = {
            "val_loss": "lowest val/loss",
            "val_acc": "highest val/acc",
            "last": "last epoch",
        }[self.rule]
        return f"{what} (validation split only; ties go to the later epoch)"


__all__ = ["SELECT_RULES", "ModelSelector"]
