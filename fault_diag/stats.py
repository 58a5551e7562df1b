"""Statistics of the results report: bootstrap intervals, paired tests, Holm's correction.

Everything here works on plain numpy arrays; :mod:`fault_diag.report` feeds it the MLflow runs.

**Intervals.** A *cell* of the report (protocol, model, test noise, test SNR, variant) holds one run
per seed. Its value is the mean over seeds of a per-run metric. Its 95 % interval is a percentile
bootstrap:

- with every run's per-window scores (``window_scores.npz``): a two-level bootstrap. One replicate
  draws ``S`` seeds with replacement from the ``S`` runs; for each drawn seed it resamples that run's
  test windows with replacement *within each class* (class sizes stay fixed, as in the test split),
  recomputes the run's metric, and averages over the drawn seeds. So both the training randomness
  (seeds) and the finite test set (windows) are in the interval;
- without them: the seeds alone are resampled (``interval = "seeds"``);
- one seed with window scores: windows only (``"windows"``); one seed without: no interval.

The per-class resample is drawn exactly but without touching single windows: the mean of ``n_c``
windows drawn with replacement from a class depends only on how many draws land on each distinct
value, which is multinomial with the class's value frequencies. The window values are fractions of the
``K`` test-noise draws (``0, 1/K, ..., 1``), so a class costs one multinomial draw over at most
``K + 1`` values per replicate instead of ``n_c`` index draws, and a class whose windows all have the
same value (every window right, the common case at high SNR) costs nothing.

**Paired comparisons.** Differences model - baseline are averaged within independent *units* (one
pair of training runs: same seed, same training condition), then the units are compared with the
Wilcoxon signed-rank test and a bootstrap over units; Holm's correction runs over the models of one
family. See :func:`paired_comparison`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

#: Metrics that a run's per-window scores determine (macro-F1 is not a mean over windows).
WINDOW_METRICS = ("acc", "bal_acc", "healthy_share")
DEFAULT_N_BOOT = 2000
CONFIDENCE = 0.95
#: Largest common denominator of window values drawn through their exact class-sum distribution.
_MAX_LATTICE = 1024


@dataclass(frozen=True)
class WindowSample:
    """What one run contributes to a window bootstrap of one metric.

    ``values``: the distinct per-window values (sorted); ``counts[c, l]``: windows of class ``c`` (of
    the classes the metric averages over) with value ``values[l]``; ``weights[c]``: the weight of class
    ``c``'s mean in the metric (they sum to 1); ``draws``: ``K`` when every value is a multiple of
    ``1/K`` (fractions of ``K`` test-noise draws), which allows the fast exact resampling.
    """

    values: np.ndarray
    counts: np.ndarray
    weights: np.ndarray
    draws: int | None = None

    @property
    def class_sizes(self) -> np.ndarray:
        """Windows per class, ``(C,)``."""
        return self.counts.sum(axis=1)

    @property
    def class_means(self) -> np.ndarray:
        """Observed mean value per class, ``(C,)``."""
        return (self.counts @ self.values) / self.class_sizes

    @property
    def metric(self) -> float:
        """The run's observed metric: the weighted mean of its class means."""
        return float(self.class_means @ self.weights)


def window_sample(
    scores: np.ndarray,
    labels: np.ndarray,
    metric: str,
    healthy_label: int | None = None,
    draws: int | None = None,
) -> WindowSample | None:
    """The :class:`WindowSample` of one run and condition, or None where ``metric`` is undefined.

    ``scores``: per-window ``correct`` fractions (``acc``, ``bal_acc``) or ``healthy`` fractions
    (``healthy_share``); ``labels``: true class per window; ``healthy_label``: the healthy class's
    label (``healthy_share`` is the mean over the *other* windows; undefined without one).
    Class weights: ``bal_acc`` equal over the classes present; ``acc`` and ``healthy_share``
    proportional to class size (so the metric is the plain mean over the windows it covers).
    ``draws``: the number ``K`` of test-noise draws the scores are fractions of (checked; 0/1 scores
    are taken as ``K = 1`` without it).
    """
    if metric not in WINDOW_METRICS:
        raise ValueError(f"no window bootstrap for {metric!r}; expected one of {WINDOW_METRICS}")
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(
            f"scores {scores.shape} and labels {labels.shape} must be equal 1-D shapes"
        )
    if metric == "healthy_share":
        if healthy_label is None:
            return None
        keep = labels != healthy_label
        scores, labels = scores[keep], labels[keep]
    if scores.size == 0:
        return None
    if draws is None and np.all((scores == 0.0) | (scores == 1.0)):
        draws = 1
    classes, class_index = np.unique(labels, return_inverse=True)
    if draws is not None:
        steps_f = scores * draws
        steps = np.rint(steps_f).astype(np.intp)
        if draws < 1 or np.any((steps < 0) | (steps > draws) | (np.abs(steps_f - steps) > 1e-4)):
            raise ValueError(f"{metric} window scores are not fractions of {draws} draws")
        present = np.bincount(steps, minlength=draws + 1) > 0
        values = np.flatnonzero(present) / draws  # exact j/K, not the stored float32
        value_index = (np.cumsum(present) - 1)[steps]
    else:
        values, value_index = np.unique(scores, return_inverse=True)
    counts = np.bincount(
        class_index * values.size + value_index, minlength=classes.size * values.size
    ).reshape(classes.size, values.size)
    sizes = counts.sum(axis=1)
    if metric == "bal_acc":
        weights = np.full(classes.size, 1.0 / classes.size)
    else:
        weights = sizes / sizes.sum()
    return WindowSample(values, counts, weights, draws)


def _common_values(samples: Sequence[WindowSample]) -> tuple[np.ndarray, np.ndarray]:
    """Put the samples on one value grid and one class count: ``(values (L,), counts (S, C, L))``
    with zero-padded classes (weight 0) where runs have fewer classes."""
    values = np.unique(np.concatenate([s.values for s in samples]))
    n_classes = max(s.counts.shape[0] for s in samples)
    counts = np.zeros((len(samples), n_classes, values.size), dtype=np.int64)
    for i, s in enumerate(samples):
        # basic index first (a view), then the value columns: mixing both in one subscript would
        # move the array axis to the front
        counts[i, : s.counts.shape[0]][:, np.searchsorted(values, s.values)] = s.counts
    return values, counts


def _lattice(samples: Sequence[WindowSample]) -> int | None:
    """The common denominator ``K`` of the samples' values (multiples of ``1/K``), or None."""
    draws = [s.draws for s in samples]
    if any(k is None for k in draws):
        return None
    k = math.lcm(*[int(d) for d in draws if d is not None])
    return k if k <= _MAX_LATTICE else None


def _group_sum_pmf(
    freq: np.ndarray, n: np.ndarray, group: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """PMFs of resampled group sums.

    Class ``v`` has windows of value ``j/K`` with frequency ``freq[v, j]``; resampling its ``n[v]``
    windows with replacement gives a sum (in units of 1/K) whose distribution is the ``n[v]``-fold
    convolution of ``freq[v]``; the classes of one group (``group[v]``) are resampled independently,
    so their total is the convolution of the class sums. Convolutions are products in Fourier space.
    Returns ``(pmf (G, width), last (G,))``: row ``g`` is supported on ``0 .. last[g]``. Rounding
    error is about 1e-15, far below what a few thousand replicates resolve.
    """
    k = freq.shape[1] - 1
    last = np.bincount(group, weights=k * n, minlength=n_groups).astype(np.int64)
    width = int(last.max()) + 1
    size = 1 << (width - 1).bit_length()  # FFT length >= width: no wrap-around
    order = np.argsort(group, kind="stable")
    first = np.searchsorted(group[order], np.arange(n_groups))  # every group has a class
    spectrum = np.multiply.reduceat(
        np.fft.rfft(freq[order], size, axis=1) ** n[order, None], first, axis=0
    )
    pmf = np.fft.irfft(spectrum, size, axis=1)[:, :width]
    # Below 1e-13 a value is rounding noise (the mass it can carry in all is < width * 1e-13): zero
    # it, so that the CDF is exactly 0 before the first real support point and inversion does not
    # walk through a noise floor.
    pmf[pmf < 1e-13] = 0.0
    return pmf, last


def _sample_discrete(
    pmf: np.ndarray, last: np.ndarray, dist: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One draw from row ``dist[i]`` of ``pmf`` for every ``i`` (support of row ``d``:
    ``0 .. last[d]``), by inversion of the CDF with a guide table.

    A binomial or multinomial draw costs numpy about 100 ns; inversion is a uniform draw, a table
    look-up and on average about one comparison, with no Python loop over draws.
    """
    n_dist, width = pmf.shape
    rows = np.arange(n_dist)
    cdf = np.cumsum(pmf, axis=1)
    cdf /= cdf[rows, last][:, None]
    # Past the last support point the CDF is 2 > any uniform: every walk stops there at the latest.
    cdf[np.arange(width)[None, :] >= last[:, None]] = 2.0
    # guide[d, g] = #{k: cdf[d, k] <= g/G}, the smallest possible answer for u in [g/G, (g+1)/G),
    # stored as a position in the flattened cdf. One searchsorted for all rows: shifting row d by
    # 3d keeps the flattened array sorted.
    n_guide = min(width, 4096)
    shift = 3.0 * rows[:, None]
    grid = np.arange(n_guide) / n_guide
    guide = np.searchsorted((cdf + shift).ravel(), (grid + shift).ravel(), side="right")
    u = rng.random(dist.size)
    flat = cdf.ravel()
    pos = guide[dist * n_guide + (u * n_guide).astype(np.intp)]
    active = np.flatnonzero(flat[pos] <= u)
    while active.size:  # a few passes over a shrinking set, not one per draw
        pos[active] += 1
        active = active[flat[pos[active]] <= u[active]]
    return pos - dist * width


def _lattice_replicates(
    values: np.ndarray,
    counts: np.ndarray,
    weights: np.ndarray,
    lattice: int,
    seeds: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Metric of each drawn seed after resampling its windows, ``(B, S)``, for values ``j/K``.

    A run's metric is ``sum_c w_c S_c / (K n_c)`` with ``S_c`` the resampled sum of class ``c``.
    Classes with the same coefficient ``w_c / (K n_c)`` (all of them for ``acc`` and
    ``healthy_share``; those of equal size for ``bal_acc``) are drawn as one total from their
    convolved distribution, so a replicate costs one draw per group, not one per class.
    """
    sizes = counts.sum(axis=2)
    observed = (counts @ values) / np.maximum(sizes, 1)
    varies = (counts > 0).sum(axis=2) > 1  # a class of one value resamples to itself
    const = np.where(varies, 0.0, observed * weights).sum(axis=1)  # (S,)
    var_run, var_cls = np.nonzero(varies)
    per_seed = const[seeds].ravel()
    if var_run.size:
        n = sizes[var_run, var_cls]
        coef = weights[var_run, var_cls] / (lattice * n)
        # equal coefficients up to the rounding of w_c = n_c / N: a relative 2**-40 is plenty
        key = np.rint(coef / coef.max() * 2.0**40).astype(np.int64)
        uniq, group = np.unique(var_run * (1 << 41) + key, return_inverse=True)
        n_groups = uniq.size
        group_run = (uniq >> 41).astype(np.intp)
        group_coef = np.bincount(group, weights=coef, minlength=n_groups) / np.bincount(group)
        freq = np.zeros((var_run.size, lattice + 1))
        steps = np.rint(values * lattice).astype(np.intp)
        np.add.at(freq.T, steps, counts[var_run, var_cls].T)  # freq.T: a view of freq
        freq /= n[:, None]
        pmf, last = _group_sum_pmf(freq, n, group, n_groups)
        # the (replicate, position) slots of each run, then one draw per slot and group of that run
        flat_seeds = seeds.ravel()
        slots_of = [np.flatnonzero(flat_seeds == r) for r in range(len(sizes))]
        slots = np.concatenate([slots_of[r] for r in group_run])
        dist = np.repeat(np.arange(group_run.size), [slots_of[r].size for r in group_run])
        sums = _sample_discrete(pmf, last, dist, rng)
        per_seed = per_seed + np.bincount(
            slots, weights=group_coef[dist] * sums, minlength=per_seed.size
        )
    return per_seed.reshape(seeds.shape)


def two_level_bootstrap(
    samples: Sequence[WindowSample], n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_boot`` replicates of the mean over seeds, resampling seeds and, within each drawn seed,
    windows stratified by class (see the module docstring). One seed: windows only.

    Vectorised: no loop over replicates or windows. Values on a lattice ``j/K`` (fractions of the
    test-noise draws) take the fast exact path; other values a multinomial draw per class.
    """
    if not samples:
        raise ValueError("two_level_bootstrap needs at least one run")
    n_runs = len(samples)
    values, counts = _common_values(samples)
    weights = np.zeros(counts.shape[:2])
    for i, s in enumerate(samples):
        weights[i, : s.weights.size] = s.weights
    # Level 1: the seeds of each replicate. One seed: every replicate keeps it.
    seeds = rng.integers(0, n_runs, size=(n_boot, n_runs))
    # Level 2: each drawn seed's metric on its resampled windows.
    lattice = _lattice(samples)
    if lattice is not None:
        per_seed = _lattice_replicates(values, counts, weights, lattice, seeds, rng)
    else:
        sizes = counts.sum(axis=2)
        means = ((counts @ values) / np.maximum(sizes, 1))[seeds]  # (B, S, C), observed
        draw = ((counts > 0).sum(axis=2) > 1)[seeds]  # classes with more than one value
        if draw.any():
            run = np.broadcast_to(seeds[:, :, None], draw.shape)[draw]
            cls = np.broadcast_to(np.arange(counts.shape[1]), draw.shape)[draw]
            n = sizes[run, cls]
            resampled = rng.multinomial(n, counts[run, cls] / n[:, None])
            means[draw] = (resampled @ values) / n
        per_seed = (means * weights[seeds]).sum(axis=2)
    return per_seed.mean(axis=1)


def seed_bootstrap(values: ArrayLike, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` replicates of the mean of ``values`` resampled with replacement (seeds only)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("seed_bootstrap needs at least one value")
    return v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)


def percentile_interval(
    replicates: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of bootstrap replicates."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class CellInterval:
    """Mean over seeds and its bootstrap interval; ``method``: ``seeds+windows``, ``windows``,
    ``seeds`` or ``none`` (one seed without window scores: ``low``/``high`` are NaN)."""

    mean: float
    low: float
    high: float
    method: str


def cell_interval(
    values: ArrayLike,
    samples: Sequence[WindowSample] | None = None,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator,
    confidence: float = CONFIDENCE,
) -> CellInterval:
    """Mean of the per-run ``values`` (one per seed) with a bootstrap interval.

    ``samples`` (one per run, same order) switches on the two-level bootstrap; pass None unless
    *every* run of the cell has window scores, since mixing resampled and fixed runs would give an
    interval that is neither.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or np.isnan(v).any():
        return CellInterval(math.nan, math.nan, math.nan, "none")
    mean = float(v.mean())
    if samples is not None:
        if len(samples) != v.size:
            raise ValueError(f"{len(samples)} window samples for {v.size} runs")
        reps = two_level_bootstrap(samples, n_boot, rng)
        method = "seeds+windows" if v.size > 1 else "windows"
    elif v.size > 1:
        reps = seed_bootstrap(v, n_boot, rng)
        method = "seeds"
    else:
        return CellInterval(mean, math.nan, math.nan, "none")
    low, high = percentile_interval(reps, confidence)
    return CellInterval(mean, low, high, method)


# ------------------------------------------------------------------------------ comparisons


def wilcoxon_p(differences: ArrayLike) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (zeros dropped, scipy's
    default); 1.0 when every difference is zero (scipy would divide by zero), NaN for none."""
    from scipy.stats import wilcoxon

    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        return math.nan
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d).pvalue)


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input order.

    NaN p-values (no test) are left NaN and do not count in the family size.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    # the i-th smallest p is multiplied by (m - i); monotone so that a larger p never gets a
    # smaller adjusted value
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


@dataclass(frozen=True)
class PairedResult:
    """One model against the baseline: differences in the metric's units (the report uses points).

    ``mean``: mean over units of the per-unit mean difference; ``low``/``high``: percentile bootstrap
    over units (NaN with one unit); ``p``: Wilcoxon signed-rank over the unit means.
    """

    n_pairs: int
    n_units: int
    mean: float
    low: float
    high: float
    p: float


def paired_comparison(
    differences: ArrayLike,
    units: Sequence[object],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator,
    confidence: float = CONFIDENCE,
) -> PairedResult:
    """Summarise paired differences that come in correlated groups (``units``).

    The rows of one unit (the grid points of one clean-trained network, say) are the same pair of
    networks measured again, so they are averaged first; the test and the interval see one number
    per unit. Counting them as independent pairs would make 34 grid points of 3 seeds look like 102
    replications.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.size != len(units):
        raise ValueError(f"{d.size} differences for {len(units)} unit labels")
    if d.size == 0:
        return PairedResult(0, 0, math.nan, math.nan, math.nan, math.nan)
    keys: dict[object, int] = {}
    index = np.array([keys.setdefault(u, len(keys)) for u in units])
    unit_means = np.bincount(index, weights=d) / np.bincount(index)
    mean = float(unit_means.mean())
    if unit_means.size > 1:
        low, high = percentile_interval(seed_bootstrap(unit_means, n_boot, rng), confidence)
    else:
        low = high = math.nan
    return PairedResult(int(d.size), int(unit_means.size), mean, low, high, wilcoxon_p(unit_means))


__all__ = [
    "CONFIDENCE",
    "DEFAULT_N_BOOT",
    "WINDOW_METRICS",
    "CellInterval",
    "PairedResult",
    "WindowSample",
    "cell_interval",
    "holm",
    "paired_comparison",
    "percentile_interval",
    "seed_bootstrap",
    "two_level_bootstrap",
    "wilcoxon_p",
    "window_sample",
]
