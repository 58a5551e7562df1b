"""Evaluation machinery: metrics that expose a sink class, K test draws, AdaBN, model selection.

Fast unit tests on small inputs; the real-data path is covered by tests/test_train.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fault_diag.noise import noise_generator, realised_snr_db
from fault_diag.noise_config import NoiseConfigError, validate_noise_config
from fault_diag.training.evaluation import (
    adapt_batchnorm,
    evaluate_condition,
    has_batchnorm,
    noisy_test_copies,
    score_predictions,
)
from fault_diag.training.selection import ModelSelector

# ------------------------------------------------------------------------------------ metrics


def test_balanced_accuracy_and_healthy_share_expose_a_sink_class() -> None:
    # 4 healthy windows (class 0) and 32 per fault class (1, 2), as on CWRU's test split: a model
    # that sends every window of fault class 2 to "healthy" ...
    labels = np.array([0] * 4 + [1] * 32 + [2] * 32)
    pred = labels.copy()
    pred[labels == 2] = 0
    metrics, recall, cm, correct, healthy = score_predictions(labels, pred[None, :], 3, 0)
    assert metrics["acc"] == pytest.approx(36 / 68)
    assert metrics["bal_acc"] == pytest.approx((1 + 1 + 0) / 3)
    assert recall.tolist() == [1.0, 1.0, 0.0]
    # ... and half of the fault windows went to the healthy class.
    assert metrics["healthy_share"] == pytest.approx(0.5)
    assert cm[2, 0] == 32 and correct.shape == (68,) and healthy[labels == 2].tolist() == [1.0] * 32


def test_metrics_over_draws_count_every_window_draw() -> None:
    labels = np.array([0, 1, 1, 1])
    preds = np.array([[0, 1, 1, 1], [0, 0, 1, 1]])  # draw 2 sends window 1 to class 0
    metrics, recall, cm, correct, healthy = score_predictions(labels, preds, 2, 0)
    assert cm.sum() == 8
    assert correct.tolist() == [1.0, 0.5, 1.0, 1.0]
    assert recall.tolist() == [1.0, pytest.approx(5 / 6)]
    assert metrics["bal_acc"] == pytest.approx((1 + 5 / 6) / 2)
    assert metrics["healthy_share"] == pytest.approx(1 / 6)


def test_without_a_healthy_class_the_share_is_nan() -> None:
    metrics, *_ = score_predictions(np.array([0, 1]), np.array([[0, 1]]), 2, None)
    assert math.isnan(metrics["healthy_share"]) and metrics["bal_acc"] == 1.0


# ------------------------------------------------------------------------------- test draws


def test_test_draws_are_independent_cpu_draws_and_draw_zero_is_the_old_single_draw() -> None:
    from fault_diag.noise import add_noise

    x = torch.randn(6, 1, 256)
    copies = noisy_test_copies(x, "pink", -4.0, 1234, 3)
    assert len(copies) == 3
    # Draw 0 is what one fixed test draw was before K existed: generator (seed, kind, snr, split).
    old = add_noise(x, -4.0, "pink", generator=noise_generator(1234, "pink", -4.0, "test"))
    assert torch.equal(copies[0], old)
    assert not torch.equal(copies[0], copies[1]) and not torch.equal(copies[1], copies[2])
    for c in copies:  # every draw at the exact SNR
        assert torch.allclose(
            realised_snr_db(x, c), torch.full((6, 1), -4.0, dtype=torch.float64), atol=1e-3
        )
    # Identical for every model and call: fixed by the seed.
    again = noisy_test_copies(x, "pink", -4.0, 1234, 3)
    assert all(torch.equal(a, b) for a, b in zip(copies, again, strict=True))
    assert noisy_test_copies(x, "none", None, 1234, 3) == [x]


def test_band_limited_test_noise_has_no_power_outside_the_band() -> None:
    x = torch.randn(4, 1, 1024)
    (noisy,) = noisy_test_copies(x, "gaussian", 0.0, 7, 1, band=(0.0, 1 / 3))
    spec = torch.fft.rfft(noisy - x).abs().square()
    freq = torch.fft.rfftfreq(1024)
    assert float(spec[..., freq > 1 / 3].sum()) < 1e-6 * float(spec.sum())
    assert torch.allclose(
        realised_snr_db(x, noisy), torch.zeros(4, 1, dtype=torch.float64), atol=1e-3
    )


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_bad_test_draws_name_the_key(bad: object) -> None:
    with pytest.raises(NoiseConfigError, match=r"noise\.test_draws"):
        validate_noise_config({"test_draws": bad})


# ------------------------------------------------------------------------------------- AdaBN


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(-1))


def test_adabn_reestimates_batchnorm_statistics_on_a_copy_and_nothing_else() -> None:
    torch.manual_seed(0)
    model = _Net().eval()
    model.bn.running_mean.fill_(5.0)  # statistics of another condition
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(64, 1, 32) * 3.0 + 1.0
    adapted = adapt_batchnorm(model, [x[:32], x[32:]], batch_size=16)
    # The original is untouched; the copy's BN statistics are those of x; parameters unchanged.
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with torch.no_grad():
        feats = model.conv(x)
    assert torch.allclose(adapted.bn.running_mean, feats.mean(dim=(0, 2)), atol=1e-5)
    assert torch.allclose(adapted.bn.running_var, feats.var(dim=(0, 2), unbiased=True), rtol=0.05)
    for name, p in adapted.named_parameters():
        assert torch.equal(p, dict(model.named_parameters())[name])
    assert not adapted.training and adapted.bn.momentum == model.bn.momentum


def test_adabn_recovers_a_model_whose_statistics_do_not_fit_the_test_condition() -> None:
    # A model trained on inputs of scale 1, tested on scale 10: its BN statistics are wrong there.
    torch.manual_seed(0)
    model = _Net()
    x = torch.randn(512, 1, 32)
    y = (x.mean(-1).squeeze(1) > 0).long()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    shifted = x * 10.0 + 3.0
    plain = evaluate_condition(
        model,
        [shifted],
        y,
        name="c",
        kind="x",
        snr_db=0.0,
        num_classes=2,
        healthy_index=None,
        batch_size=128,
    )
    adapted = evaluate_condition(
        model,
        [shifted],
        y,
        name="c/adabn",
        kind="x",
        snr_db=0.0,
        num_classes=2,
        healthy_index=None,
        batch_size=128,
        adabn=True,
    )
    assert adapted.metrics["bal_acc"] > plain.metrics["bal_acc"] + 0.2
    assert adapted.adabn and not plain.adabn


def test_models_without_batchnorm_are_detected() -> None:
    assert has_batchnorm(_Net())
    assert not has_batchnorm(nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU()))


# --------------------------------------------------------------------------------- selection


def _metrics(loss: float, acc: float) -> dict[str, float]:
    return {"val/loss": loss, "val/acc": acc}


def test_val_acc_ties_go_to_the_later_annealed_epoch() -> None:
    model = nn.Linear(1, 1)
    sel = ModelSelector("val_acc")
    for epoch, (loss, acc) in enumerate([(0.5, 0.9), (0.2, 1.0), (0.1, 1.0), (0.05, 1.0)], 1):
        sel.update(epoch, _metrics(loss, acc), model)
    assert sel.best_epoch == 4  # the strict ">" rule kept epoch 2


def test_val_loss_picks_the_lowest_loss_and_counts_patience() -> None:
    model = nn.Linear(1, 1)
    sel = ModelSelector("val_loss")
    for epoch, loss in enumerate([0.5, 0.2, 0.3, 0.25], 1):
        sel.update(epoch, _metrics(loss, 1.0), model)
    assert sel.best_epoch == 2 and sel.since_best == 2 and sel.best_val_loss == 0.2
    sel2 = ModelSelector("last")
    for epoch in (1, 2, 3):
        sel2.update(epoch, _metrics(9.0, 0.0), model)
    assert sel2.best_epoch == 3


def test_selector_state_round_trips_through_a_checkpoint() -> None:
    model = nn.Linear(1, 1)
    sel = ModelSelector("val_loss")
    sel.update(1, _metrics(0.4, 0.5), model)
    sel.update(2, _metrics(0.6, 0.9), model)
    restored = ModelSelector("val_loss")
    restored.load_state_dict(sel.state_dict())
    restored.update(3, _metrics(0.5, 0.9), model)
    assert restored.best_epoch == 1 and restored.since_best == 2


def test_an_unknown_selection_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="trainer.select"):
        ModelSelector("test_acc")
