"""Names of the evaluation metrics a run logs, built and parsed in one place.

A training run is evaluated under several *conditions* (the training condition, the clean test set,
every (kind, SNR) point of the test grid), each with and without AdaBN (BatchNorm statistics
re-estimated on the unlabelled windows of that condition). The MLflow metric of one number is::

    test/<metric>                         at the training condition
    test/<metric>/clean                   on the clean test windows
    test/<metric>/<kind>/<snr>dB          at one grid point (MLflow forbids '@' in names)
    ... + "/adabn"                        the same after AdaBN

with ``<metric>`` one of :data:`CONDITION_METRICS`. A DRSN run also logs its learned thresholds as
``threshold/<unit>`` (:func:`threshold_metric_name`), ``<unit>`` being a key of
:func:`fault_diag.models.threshold_summary` (``stage2``, ``all``) or a unit's module name
(:func:`stage_of` gives the ``stageN`` either lies in). This module
imports nothing heavy, so the report can parse names without torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

#: Per-condition metrics. ``healthy_share``: share of the *fault* windows predicted as the setup's
#: healthy class (the sink a noisy window falls into on CWRU, see data/README.md); NaN when the
#: setup names no healthy class.
CONDITION_METRICS: tuple[str, ...] = ("acc", "bal_acc", "macro_f1", "healthy_share")
#: The headline metric of tables and comparisons.
HEADLINE_METRIC = "bal_acc"
ADABN = "adabn"
PLAIN = "plain"

_NAME = re.compile(
    r"^test/(?P<metric>" + "|".join(CONDITION_METRICS) + r")"
    r"(?:/(?P<clean>clean)|/(?P<kind>[a-z_]+)/(?P<snr>-?\d+(?:\.\d+)?)dB)?"
    r"(?:/(?P<variant>" + ADABN + r"))?$"
)

_THRESHOLD_PREFIX = "threshold/"
_STAGE = re.compile(r"(stage\d+)")


@dataclass(frozen=True)
class MetricKey:
    """One parsed metric name.

    ``scope``: ``train`` (the training condition), ``clean`` or ``grid``; ``kind``/``snr_db`` are set
    for ``grid`` only; ``variant``: ``plain`` or ``adabn``.
    """

    metric: str
    scope: str
    kind: Optional[str] = None
    snr_db: Optional[float] = None
    variant: str = PLAIN


def condition_suffix(kind: str | None, snr_db: float | None, *, clean: bool = False) -> str:
    """``""`` (training condition), ``"clean"`` or ``"<kind>/<snr>dB"``."""
    if clean:
        return "clean"
    if kind is None:
        return ""
    if snr_db is None:
        raise ValueError(f"grid condition of kind {kind!r} needs an SNR")
    return f"{kind}/{float(snr_db):g}dB"


def metric_name(
    metric: str,
    kind: str | None = None,
    snr_db: float | None = None,
    *,
    clean: bool = False,
    adabn: bool = False,
) -> str:
    """The MLflow name of ``metric`` under one condition (see the module docstring)."""
    if metric not in CONDITION_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {CONDITION_METRICS}")
    suffix = condition_suffix(kind, snr_db, clean=clean)
    name = f"test/{metric}" + (f"/{suffix}" if suffix else "")
    return name + (f"/{ADABN}" if adabn else "")


def parse_metric_name(name: str) -> MetricKey | None:
    """The :class:`MetricKey` of a per-condition metric name, or None for any other name."""
    m = _NAME.match(name)
    if m is None:
        return None
    variant = ADABN if m["variant"] else PLAIN
    if m["clean"]:
        return MetricKey(m["metric"], "clean", variant=variant)
    if m["kind"]:
        return MetricKey(m["metric"], "grid", m["kind"], float(m["snr"]), variant)
    return MetricKey(m["metric"], "train", variant=variant)


def recall_metric_name(class_name: str) -> str:
    """``test/recall/<class>`` at the training condition; characters MLflow refuses (``@`` in
    ``OR007@6``) become ``_``."""
    return "test/recall/" + re.sub(r"[^A-Za-z0-9_\-. :/]", "_", class_name)


def threshold_metric_name(unit: str) -> str:
    """``threshold/<unit>``: the mean learned threshold of one shrinkage unit (module name)."""
    return _THRESHOLD_PREFIX + unit


def parse_threshold_metric_name(name: str) -> str | None:
    """The unit of a :func:`threshold_metric_name`, or None for any other name."""
    if name.startswith(_THRESHOLD_PREFIX) and len(name) > len(_THRESHOLD_PREFIX):
        return name[len(_THRESHOLD_PREFIX) :]
    return None


def stage_of(unit: str) -> str | None:
    """The ``stageN`` a module name lies in (``stages.stage2.unit1.transform`` -> ``stage2``)."""
    match = _STAGE.search(unit)
    return match.group(1) if match else None


#: Artifact with per-window scores of every evaluated condition (for window-level bootstrap).
def curve_metric_name(metric: str, kind: str, *, adabn: bool = False) -> str:
    """The dashboard curve of ``metric`` against SNR for one noise kind, logged with the SNR in dB
    as its step: ``curve/bal_acc/gaussian``, after AdaBN ``curve/bal_acc_adabn/gaussian`` (MLflow's
    UI groups charts by the name up to its last ``/``: one section per metric and variant, one chart
    per kind). Not parsed by :func:`parse_metric_name`: the grid's own metrics stay the record."""
    return f"curve/{metric}" + (f"_{ADABN}" if adabn else "") + f"/{kind}"


WINDOW_SCORES_ARTIFACT = "window_scores.npz"

__all__ = [
    "ADABN",
    "CONDITION_METRICS",
    "HEADLINE_METRIC",
    "PLAIN",
    "WINDOW_SCORES_ARTIFACT",
    "MetricKey",
    "condition_suffix",
    "metric_name",
    "parse_metric_name",
    "parse_threshold_metric_name",
    "recall_metric_name",
    "stage_of",
    "threshold_metric_name",
]
