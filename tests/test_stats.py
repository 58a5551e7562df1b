"""fault_diag.stats: window samples, the two-level bootstrap, paired tests, Holm's correction.

Synthetic data whose answer is known: hand-counted metrics, an all-correct cell, coverage on
simulated binomial data, agreement with a naive per-window resampling loop.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fault_diag.stats import (
    WindowSample,
    cell_interval,
    holm,
    paired_comparison,
    seed_bootstrap,
    two_level_bootstrap,
    wilcoxon_p,
    window_sample,
)

# three classes: healthy (label 0, 4 windows) and two faults (10 and 6 windows)
LABELS = np.repeat([0, 1, 2], [4, 10, 6])


def test_window_sample_metrics_and_weights() -> None:
    correct = np.zeros(LABELS.size)
    correct[[0, 1]] = 1.0  # healthy: 2 of 4
    correct[4:12] = 1.0  # fault 1: 8 of 10
    correct[14] = 0.5  # fault 2: one window right in one of 2 draws
    bal = window_sample(correct, LABELS, "bal_acc", draws=2)
    assert bal is not None and bal.draws == 2
    assert bal.metric == pytest.approx((2 / 4 + 8 / 10 + 0.5 / 6) / 3)
    assert bal.weights.tolist() == pytest.approx([1 / 3] * 3)
    acc = window_sample(correct, LABELS, "acc", draws=2)
    assert acc is not None and acc.metric == pytest.approx(10.5 / 20)
    healthy = np.zeros(LABELS.size)
    healthy[[0, 12, 13, 15]] = 1.0  # a healthy window (does not count) and 3 fault windows
    share = window_sample(healthy, LABELS, "healthy_share", healthy_label=0)
    assert share is not None and share.metric == pytest.approx(3 / 16)
    assert share.draws == 1  # 0/1 scores: one draw, without being told
    assert window_sample(healthy, LABELS, "healthy_share", healthy_label=None) is None
    with pytest.raises(ValueError, match="not fractions of 2 draws"):
        window_sample(np.full(LABELS.size, 0.3), LABELS, "bal_acc", draws=2)
    with pytest.raises(ValueError, match="no window bootstrap"):
        window_sample(correct, LABELS, "macro_f1")


def test_all_correct_cell_gives_one_one() -> None:
    ones = window_sample(np.ones(LABELS.size), LABELS, "bal_acc")
    assert ones is not None
    three = cell_interval([1.0, 1.0, 1.0], [ones] * 3, rng=np.random.default_rng(0))
    assert (three.mean, three.low, three.high, three.method) == (1.0, 1.0, 1.0, "seeds+windows")
    one = cell_interval([1.0], [ones], rng=np.random.default_rng(0))
    assert (one.low, one.high, one.method) == (1.0, 1.0, "windows")


def test_seed_only_intervals() -> None:
    rng = np.random.default_rng(0)
    # two seeds: replicates are a, (a+b)/2, b with probabilities 1/4, 1/2, 1/4 -> [a, b]
    two = cell_interval([0.7, 0.9], None, rng=rng)
    assert (two.mean, two.low, two.high, two.method) == (pytest.approx(0.8), 0.7, 0.9, "seeds")
    one = cell_interval([0.7], None, rng=rng)
    assert one.mean == 0.7 and math.isnan(one.low) and one.method == "none"
    assert cell_interval([0.7, math.nan], None, rng=rng).method == "none"


def _naive_two_level(runs: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """The definition, one window at a time: draw seeds, resample each drawn seed's windows within
    class, balanced accuracy, mean over the drawn seeds."""
    reps = np.empty(n_boot)
    for b in range(n_boot):
        per_seed = []
        for r in rng.integers(0, len(runs), len(runs)):
            class_means = []
            for c in np.unique(LABELS):
                x = runs[r][np.equal(LABELS, c)]
                class_means.append(x[rng.integers(0, x.size, x.size)].mean())
            per_seed.append(np.mean(class_means))
        reps[b] = np.mean(per_seed)
    return reps


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_two_level_bootstrap_matches_the_definition(n_seeds: int) -> None:
    """The fast exact path (values j/K), the multinomial path (any values) and a naive loop give the
    same replicate distribution (mean and spread, within Monte Carlo error)."""
    gen = np.random.default_rng(1)
    runs = [gen.binomial(3, gen.uniform(0.3, 0.9, 3)[LABELS]) / 3 for _ in range(n_seeds)]
    lattice = [window_sample(r, LABELS, "bal_acc", draws=3) for r in runs]
    assert all(s is not None for s in lattice)
    fast = two_level_bootstrap(lattice, 20000, np.random.default_rng(2))  # type: ignore[arg-type]
    generic = [WindowSample(s.values, s.counts, s.weights, None) for s in lattice]  # type: ignore[union-attr]
    multinomial = two_level_bootstrap(generic, 20000, np.random.default_rng(3))
    naive = _naive_two_level(runs, 2000, np.random.default_rng(4))
    observed = np.mean([s.metric for s in lattice])  # type: ignore[union-attr]
    for reps in (fast, multinomial):
        assert reps.mean() == pytest.approx(naive.mean(), abs=0.006)
        assert reps.mean() == pytest.approx(observed, abs=0.003)
        assert reps.std() == pytest.approx(naive.std(), rel=0.08)
    # the windows are part of the spread: with one seed it is all of it
    assert fast.std() > 0.02


def test_window_interval_covers_the_truth_about_95_percent() -> None:
    """One seed, Bernoulli windows with known class accuracies: the stratified window bootstrap
    covers the true balanced accuracy in about 95 % of simulated test sets."""
    labels = np.repeat([0, 1, 2], [40, 80, 80])
    p = np.array([0.7, 0.85, 0.9])
    rng = np.random.default_rng(123)
    hits = 0
    n_sim = 1000
    for _ in range(n_sim):
        correct = (rng.random(labels.size) < p[labels]).astype(float)
        sample = window_sample(correct, labels, "bal_acc")
        iv = cell_interval([sample.metric], [sample], n_boot=1000, rng=rng)  # type: ignore[union-attr]
        hits += iv.low <= p.mean() <= iv.high
    assert 0.93 <= hits / n_sim <= 0.97  # 0.952 with this seed


def test_two_level_interval_covers_with_seed_effects() -> None:
    """Seeds that shift every class plus Bernoulli windows: the two-level interval covers the true
    mean at least as often as promised (it resamples the windows on top of seeds whose spread
    already contains them, so it leans wide)."""
    labels = np.repeat([0, 1, 2], [40, 80, 80])
    p = np.array([0.7, 0.85, 0.9])
    rng = np.random.default_rng(7)
    hits = 0
    n_sim = 300
    for _ in range(n_sim):
        samples = []
        for _seed in range(8):
            ps = np.clip(p + rng.normal(0, 0.04), 0, 1)
            correct = (rng.random(labels.size) < ps[labels]).astype(float)
            samples.append(window_sample(correct, labels, "bal_acc"))
        iv = cell_interval([s.metric for s in samples], samples, n_boot=1000, rng=rng)  # type: ignore[union-attr,arg-type]
        hits += iv.low <= p.mean() <= iv.high
    assert 0.93 <= hits / n_sim <= 0.99


def test_bootstrap_is_reproducible_and_vectorised_over_runs_of_different_classes() -> None:
    a = window_sample(
        np.array([1, 0, 1, 1, 0.5, 0]), np.array([0, 0, 1, 1, 2, 2]), "bal_acc", draws=2
    )
    b = window_sample(np.array([1, 1, 0, 1.0]), np.array([0, 0, 1, 1]), "bal_acc")  # 2 classes
    assert a is not None and b is not None
    one = two_level_bootstrap([a, b], 500, np.random.default_rng(5))
    two = two_level_bootstrap([a, b], 500, np.random.default_rng(5))
    assert np.array_equal(one, two)
    # every replicate is a mean of two per-seed balanced accuracies, each within [0, 1]
    assert one.min() >= 0 and one.max() <= 1 and one.std() > 0
    reps = seed_bootstrap([0.2, 0.4], 1000, np.random.default_rng(0))
    assert set(np.round(reps, 12)) == {0.2, 0.3, 0.4}


def test_holm() -> None:
    adjusted = holm([0.01, 0.04, 0.03, math.nan])
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> monotone 0.03, 0.06, 0.06
    assert adjusted[:3].tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])
    assert holm([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])
    assert holm([0.2]).tolist() == [0.2]
    assert holm([]).size == 0


def test_wilcoxon_p() -> None:
    assert wilcoxon_p([0.0, 0.0, 0.0]) == 1.0  # no difference at all
    assert math.isnan(wilcoxon_p([]))
    assert wilcoxon_p([0.1] * 8) == pytest.approx(2 / 2**8)  # exact: all 8 signs positive
    assert wilcoxon_p([0.1, 0.1, 0.1]) == pytest.approx(0.25)  # 3 pairs can never reach 0.05


def test_paired_comparison_averages_within_units() -> None:
    # 2 seeds x 3 grid points of one network pair: 6 pairs but 2 units
    diffs = [1.0, 2.0, 3.0, 3.0, 4.0, 5.0]
    units = ["s0", "s0", "s0", "s1", "s1", "s1"]
    res = paired_comparison(diffs, units, rng=np.random.default_rng(0))
    assert (res.n_pairs, res.n_units) == (6, 2)
    assert res.mean == pytest.approx(3.0)  # mean of the unit means 2 and 4
    assert (res.low, res.high) == (2.0, 4.0)  # two units: [min, max]
    assert res.p == pytest.approx(0.5)  # exact, 2 positive units
    single = paired_comparison([1.0, 2.0], ["a", "a"], rng=np.random.default_rng(0))
    assert single.n_units == 1 and math.isnan(single.low)
    with pytest.raises(ValueError, match="3 differences for 2 unit labels"):
        paired_comparison([1.0, 2.0, 3.0], ["a", "b"], rng=np.random.default_rng(0))
