"""Noise protocol configuration: the ``noise`` config group's schema, its validation, and the list
of (kind, SNR) conditions a run trains and is tested under.

This module does not import torch, so configs can be registered and validated cheaply. The noise
functions themselves are in :mod:`fault_diag.noise`, which re-exports everything here.

Two protocols (docs/design-notes.md section 3), always recorded with the result:

``matched``
    Train and test at the same ``kind`` and ``snr_db`` (the DRSN paper's protocol, Zhao et al.,
    IEEE TII 2020). Training noise is redrawn every epoch (``redraw_each_epoch=True``) or drawn once
    and kept. ``kind=none`` is the clean baseline (``snr_db`` must then be null).
``clean_train``
    Train on clean windows, test one model on every SNR of ``test_snr_grid_db`` for every kind of
    ``test_kinds`` (WDCNN's protocol, Zhang et al., Sensors 2017). ``snr_db`` must be null (there is
    no training noise); ``kind`` names the protocol's noise kind (Gaussian for WDCNN) and must be one
    of ``test_kinds``.
``mixed``
    One model for every SNR: each training window gets its own SNR, uniform in dB on
    ``train_snr_db_range``, its own kind from ``train_kinds`` (``train_kind_weights``, equal by
    default), and is left clean with probability ``clean_fraction``; redrawn every epoch.
    Validation is one fixed draw of the same distribution; the test is the clean set plus the grid.
    ``kind`` is ``mixed`` and ``snr_db`` null.

Validation and test noise is always fixed by ``seed`` (see :func:`fault_diag.noise.noise_generator`)
so that every model in a comparison sees the same noisy test set.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Optional

#: Noise kinds that draw noise. ``"none"`` (no noise) is accepted wherever a kind is configured.
NOISE_KINDS: tuple[str, ...] = ("gaussian", "pink", "laplacian")
#: Every value ``NoiseConfig.kind`` may take (``mixed`` only with ``protocol=mixed``).
CONFIG_KINDS: tuple[str, ...] = (*NOISE_KINDS, "none", "mixed")
#: Every value ``NoiseConfig.protocol`` may take.
PROTOCOLS: tuple[str, ...] = ("matched", "clean_train", "mixed")
#: Every value ``NoiseConfig.band`` may take.
NOISE_BANDS: tuple[str, ...] = ("data", "full")


class NoiseError(ValueError):
    """Bad input to the noise functions (SNR, kind, shapes); the message names the value."""


class NoiseConfigError(NoiseError):
    """A ``noise`` config value is invalid; the message names the key, the value and what was expected."""


def _default_grid() -> list[float]:
    # -10, -8, ..., +10 dB: spans the DRSN paper's -5..+5 dB and WDCNN's -4..+10 dB grids.
    return [float(s) for s in range(-10, 11, 2)]


def _default_test_kinds() -> list[str]:
    return list(NOISE_KINDS)


@dataclass
class NoiseConfig:
    """Schema of the Hydra config group ``noise`` (registered by the lead as ``base_noise``).

    Attributes:
        kind: ``gaussian`` | ``pink`` | ``laplacian`` | ``none``.
        snr_db: training (and matched test) SNR in dB; null with ``kind=none`` and with
            ``protocol=clean_train``.
        protocol: ``matched`` | ``clean_train`` (see the module docstring).
        redraw_each_epoch: matched protocol: fresh training noise every epoch (True) or one fixed
            draw kept for the whole training (False).
        test_snr_grid_db: test SNRs in dB of the clean-train grid (and of any cross-SNR evaluation).
        test_kinds: noise kinds evaluated on that grid.
        seed: seeds validation and test noise (and fixed training noise); kept the same across the
            models of a comparison.
        test_draws: K, the number of independent noise draws each test window is evaluated under
            (fixed by ``seed``, drawn on the CPU so every model and device sees the same test set);
            metrics are over all K x windows. More draws tighten the estimate without new windows.
        band: ``data``: when the data setup is band-limited (``data.band_hz``), noise is confined
            to the same band, so the SNR is the in-band SNR and training sees what a deployed,
            equally filtered sensor would; ``full``: broadband noise whatever the data band
            (asks how a model copes with out-of-band noise it was never shown).
        train_snr_db_range: mixed protocol: ``[low, high]`` in dB, per-window SNR uniform on it.
        train_kinds: mixed protocol: the kinds training windows are drawn from (null: test_kinds).
        train_kind_weights: mixed protocol: relative frequency of each of ``train_kinds``
            (null: equal).
        clean_fraction: mixed protocol: share of training windows left clean, in [0, 1].
    """

    kind: str = "gaussian"
    snr_db: Optional[float] = 0.0
    protocol: str = "matched"
    redraw_each_epoch: bool = True
    test_snr_grid_db: list[float] = field(default_factory=_default_grid)
    test_kinds: list[str] = field(default_factory=_default_test_kinds)
    seed: int = 1234
    test_draws: int = 3
    band: str = "data"
    train_snr_db_range: Optional[list[float]] = None
    train_kinds: Optional[list[str]] = None
    train_kind_weights: Optional[list[float]] = None
    clean_fraction: float = 0.0


@dataclass(frozen=True)
class NoiseCondition:
    """One noise condition: a kind (``"none"`` for clean) and an SNR in dB (None when clean)."""

    kind: str
    snr_db: Optional[float]

    @property
    def is_clean(self) -> bool:
        """True for the no-noise condition."""
        return self.kind == "none"

    @property
    def tag(self) -> str:
        """A short name usable in metric keys, e.g. ``gaussian_m4db``, ``pink_10db``, ``clean``."""
        if self.kind == "mixed":
            return "mixed"
        if self.is_clean or self.snr_db is None:
            return "clean"
        value = f"{abs(self.snr_db):g}".replace(".", "p")
        return f"{self.kind}_{'m' if self.snr_db < 0 else ''}{value}db"


_KEYS = tuple(f.name for f in fields(NoiseConfig))


def _get(cfg: Any, key: str) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key, getattr(NoiseConfig(), key))
    return getattr(cfg, key, getattr(NoiseConfig(), key))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite_db(key: str, value: Any) -> float:
    if not _is_number(value):
        raise NoiseConfigError(
            f"noise.{key}={value!r} is not a number; expected a finite SNR in dB"
        )
    out = float(value)
    if not math.isfinite(out):
        raise NoiseConfigError(f"noise.{key}={value!r} is not finite; expected a finite SNR in dB")
    return out


def validate_noise_config(cfg: Any) -> NoiseConfig:
    """Check a ``noise`` config and return it as a typed, canonical :class:`NoiseConfig`.

    Args:
        cfg: a :class:`NoiseConfig`, an OmegaConf ``DictConfig`` or a plain mapping; missing keys
            take the schema defaults, unknown keys (in a mapping) are an error.

    Returns:
        A new :class:`NoiseConfig` with SNRs as floats and lists copied.

    Raises:
        NoiseConfigError: naming the key and the value, for an unknown kind or protocol (listing the
            choices), a NaN/inf/non-numeric SNR, an SNR given where none is allowed (``kind=none``,
            ``protocol=clean_train``) or missing where one is needed, an empty or non-finite test
            grid, an unknown test kind, a non-integer seed, a non-boolean ``redraw_each_epoch``.
    """
    if isinstance(cfg, Mapping):
        unknown = sorted(str(k) for k in cfg if k not in _KEYS)
        if unknown:
            raise NoiseConfigError(
                f"unknown noise config key(s) {unknown}; expected keys: {', '.join(_KEYS)}"
            )
    elif not isinstance(cfg, NoiseConfig) and not all(hasattr(cfg, k) for k in _KEYS):
        raise NoiseConfigError(
            f"noise config of type {type(cfg).__name__} is neither a NoiseConfig nor a mapping"
        )

    kind = _get(cfg, "kind")
    if kind not in CONFIG_KINDS:
        raise NoiseConfigError(
            f"noise.kind={kind!r} is not a known noise kind; expected one of: {', '.join(CONFIG_KINDS)}"
        )
    protocol = _get(cfg, "protocol")
    if protocol not in PROTOCOLS:
        raise NoiseConfigError(
            f"noise.protocol={protocol!r} is not a known protocol; expected one of: {', '.join(PROTOCOLS)}"
        )

    raw_snr = _get(cfg, "snr_db")
    snr_db: Optional[float]
    if (kind == "mixed") != (protocol == "mixed"):
        raise NoiseConfigError(
            f"noise.kind={kind} with noise.protocol={protocol}: kind=mixed goes with protocol=mixed "
            "(use conf/noise/mixed.yaml, i.e. `noise=mixed`)"
        )
    if protocol == "mixed":
        if raw_snr is not None:
            raise NoiseConfigError(
                f"noise.snr_db={raw_snr!r} is set but noise.protocol=mixed draws each window's SNR "
                "from noise.train_snr_db_range; set noise.snr_db=null"
            )
        snr_db = None
    elif kind == "none":
        if raw_snr is not None:
            raise NoiseConfigError(
                f"noise.snr_db={raw_snr!r} is set but noise.kind=none adds no noise; set noise.snr_db=null"
            )
        if protocol != "matched":
            raise NoiseConfigError(
                f"noise.kind=none with noise.protocol={protocol}: the clean-train test grid needs a noise "
                f"kind; use one of {', '.join(NOISE_KINDS)} (or protocol=matched for a clean baseline)"
            )
        snr_db = None
    elif protocol == "clean_train":
        if raw_snr is not None:
            raise NoiseConfigError(
                f"noise.snr_db={raw_snr!r} is set but noise.protocol=clean_train trains without noise; "
                "set noise.snr_db=null (the test SNRs come from noise.test_snr_grid_db)"
            )
        snr_db = None
    else:
        if raw_snr is None:
            raise NoiseConfigError(
                f"noise.snr_db is null but noise.kind={kind} with protocol=matched needs a training SNR "
                "in dB (or use noise.kind=none)"
            )
        snr_db = _finite_db("snr_db", raw_snr)

    redraw = _get(cfg, "redraw_each_epoch")
    if not isinstance(redraw, bool):
        raise NoiseConfigError(f"noise.redraw_each_epoch={redraw!r} must be true or false")

    raw_grid = _get(cfg, "test_snr_grid_db")
    if isinstance(raw_grid, str | bytes) or not hasattr(raw_grid, "__iter__"):
        raise NoiseConfigError(
            f"noise.test_snr_grid_db={raw_grid!r} must be a list of SNRs in dB, e.g. [-4, 0, 4]"
        )
    grid = [_finite_db(f"test_snr_grid_db[{i}]", v) for i, v in enumerate(raw_grid)]
    if protocol == "clean_train" and not grid:
        raise NoiseConfigError(
            "noise.test_snr_grid_db is empty but protocol=clean_train is evaluated on that grid"
        )

    raw_kinds = _get(cfg, "test_kinds")
    if isinstance(raw_kinds, str | bytes) or not hasattr(raw_kinds, "__iter__"):
        raise NoiseConfigError(
            f"noise.test_kinds={raw_kinds!r} must be a list of noise kinds from {', '.join(NOISE_KINDS)}"
        )
    test_kinds = list(raw_kinds)
    for i, k in enumerate(test_kinds):
        if k not in NOISE_KINDS:
            raise NoiseConfigError(
                f"noise.test_kinds[{i}]={k!r} is not a known noise kind; expected one of: "
                f"{', '.join(NOISE_KINDS)}"
            )
    if protocol == "clean_train" and kind not in test_kinds:
        raise NoiseConfigError(
            f"noise.kind={kind} is not in noise.test_kinds={test_kinds}; protocol=clean_train tests "
            "the protocol's kind on the grid, so add it"
        )

    seed = _get(cfg, "seed")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or int(seed) < 0:
        raise NoiseConfigError(f"noise.seed={seed!r} must be a non-negative integer")

    draws = _get(cfg, "test_draws")
    if not isinstance(draws, numbers.Integral) or isinstance(draws, bool) or int(draws) < 1:
        raise NoiseConfigError(
            f"noise.test_draws={draws!r} must be an integer >= 1 (noise draws per test window)"
        )
    band = _get(cfg, "band")
    if band not in NOISE_BANDS:
        raise NoiseConfigError(f"noise.band={band!r} is not one of: {', '.join(NOISE_BANDS)}")

    mixed = _mixed_fields(cfg, protocol, test_kinds)

    return NoiseConfig(
        kind=str(kind),
        snr_db=snr_db,
        protocol=str(protocol),
        redraw_each_epoch=redraw,
        test_snr_grid_db=grid,
        test_kinds=[str(k) for k in test_kinds],
        seed=int(seed),
        test_draws=int(draws),
        band=str(band),
        **mixed,
    )


def _mixed_fields(cfg: Any, protocol: str, test_kinds: list[str]) -> dict[str, Any]:
    """Check the mixed-protocol keys (always their types; their presence when protocol=mixed)."""
    raw_range = _get(cfg, "train_snr_db_range")
    raw_kinds = _get(cfg, "train_kinds")
    raw_weights = _get(cfg, "train_kind_weights")
    raw_clean = _get(cfg, "clean_fraction")
    if not _is_number(raw_clean) or not 0.0 <= float(raw_clean) <= 1.0:
        raise NoiseConfigError(
            f"noise.clean_fraction={raw_clean!r} must be a number in [0, 1] "
            "(the share of training windows left clean)"
        )
    snr_range: Optional[list[float]] = None
    if raw_range is not None:
        if isinstance(raw_range, str | bytes) or not hasattr(raw_range, "__iter__"):
            raise NoiseConfigError(
                f"noise.train_snr_db_range={raw_range!r} must be [low, high] in dB, e.g. [-10, 10]"
            )
        values = [_finite_db(f"train_snr_db_range[{i}]", v) for i, v in enumerate(raw_range)]
        if len(values) != 2:
            raise NoiseConfigError(
                f"noise.train_snr_db_range={list(raw_range)} must hold exactly two SNRs "
                "[low, high] in dB, e.g. [-10, 10]"
            )
        if values[0] > values[1]:
            raise NoiseConfigError(
                f"noise.train_snr_db_range={values} is reversed: expected [low, high] with "
                "low <= high"
            )
        snr_range = values
    kinds: Optional[list[str]] = None
    if raw_kinds is not None:
        if isinstance(raw_kinds, str | bytes) or not hasattr(raw_kinds, "__iter__"):
            raise NoiseConfigError(
                f"noise.train_kinds={raw_kinds!r} must be a list of kinds from {', '.join(NOISE_KINDS)}"
            )
        kinds = [str(k) for k in raw_kinds]
        if not kinds:
            raise NoiseConfigError("noise.train_kinds is empty; list at least one noise kind")
        for i, k in enumerate(kinds):
            if k not in NOISE_KINDS:
                raise NoiseConfigError(
                    f"noise.train_kinds[{i}]={k!r} is not a known noise kind; expected one of: "
                    f"{', '.join(NOISE_KINDS)}"
                )
    weights: Optional[list[float]] = None
    if raw_weights is not None:
        if isinstance(raw_weights, str | bytes) or not hasattr(raw_weights, "__iter__"):
            raise NoiseConfigError(
                f"noise.train_kind_weights={raw_weights!r} must be a list of non-negative numbers"
            )
        weights = []
        for i, w in enumerate(raw_weights):
            if not _is_number(w) or not math.isfinite(float(w)) or float(w) < 0:
                raise NoiseConfigError(
                    f"noise.train_kind_weights[{i}]={w!r} must be a finite number >= 0"
                )
            weights.append(float(w))
        n_kinds = len(kinds if kinds is not None else test_kinds)
        if len(weights) != n_kinds:
            raise NoiseConfigError(
                f"noise.train_kind_weights={weights} has {len(weights)} values but "
                f"noise.train_kinds={kinds if kinds is not None else test_kinds} has {n_kinds}; "
                "give one weight per kind"
            )
        if sum(weights) <= 0:
            raise NoiseConfigError(
                f"noise.train_kind_weights={weights} sum to 0; at least one kind needs a weight > 0"
            )
    if protocol == "mixed":
        if snr_range is None:
            raise NoiseConfigError(
                "noise.protocol=mixed needs noise.train_snr_db_range=[low, high] in dB"
            )
        if kinds is None:
            kinds = list(test_kinds)
            if not kinds:
                raise NoiseConfigError(
                    "noise.protocol=mixed needs noise.train_kinds (or a non-empty noise.test_kinds)"
                )
    return {
        "train_snr_db_range": snr_range,
        "train_kinds": kinds,
        "train_kind_weights": weights,
        "clean_fraction": float(raw_clean),
    }


def train_condition(cfg: Any) -> NoiseCondition:
    """The noise applied to training windows: ``(kind, snr_db)`` for matched, clean for clean_train."""
    c = validate_noise_config(cfg)
    if c.protocol == "mixed":
        return NoiseCondition("mixed", None)
    if c.protocol == "clean_train" or c.kind == "none":
        return NoiseCondition("none", None)
    return NoiseCondition(c.kind, c.snr_db)


def grid_conditions(cfg: Any) -> list[NoiseCondition]:
    """Every ``(kind, snr_db)`` of ``test_kinds`` x ``test_snr_grid_db``, kinds outermost."""
    c = validate_noise_config(cfg)
    return [NoiseCondition(k, s) for k in c.test_kinds for s in c.test_snr_grid_db]
