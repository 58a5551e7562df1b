"""The data configuration: one dataclass that is both the Python API and the Hydra schema (group ``data``).

OmegaConf 2.3 structured configs accept ``Optional[X]``, ``list[...]`` and ``dict[...]`` only (no
``Literal``, no ``X | None``), hence the typing style here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from fault_diag.data.errors import ConfigError

SPLITS = ("time", "load", "condition")
BALANCES = ("none", "undersample")
CWRU_CHANNELS = ("DE", "FE", "BA")


@dataclass
class DataConfig:
    """What to read, how to split it and how to cut windows.

    Sample counts (``window_length``, hops, ``guard_gap``) are at the task rate ``fs_hz``, after
    resampling. The default protocol is leak-free: each recording is split by time into contiguous
    train / val / test regions separated by a guard gap, and windows are cut inside each region.
    """

    # cwru10 | cwru4 | hit_mfs7 | hit_selfbuilt7 | hit_sm7 | generic (fault_diag.data.setups.list_setups())
    setup: str = "cwru10"
    channel: str = (
        "DE"  # CWRU: DE | FE | BA; generic: default variable/column/key when the manifest has none
    )
    fs_hz: int = 12000  # task sampling rate; recordings are resampled to it (anti-aliased)
    window_length: int = 2048  # samples
    train_hop: int = 512  # samples between training window starts (overlap only inside train)
    # None = window_length (val/test windows never overlap). Smaller (>= 1): val/test windows overlap
    # each other inside their own region only; the audit counts the distinct samples they hold.
    eval_hop: Optional[int] = None
    split: str = "time"  # time | load | condition
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    guard_gap: Optional[int] = None  # samples between regions; None = window_length
    loads: Optional[list[int]] = None  # None = every load available (time split)
    train_loads: list[int] = field(default_factory=lambda: [0, 1, 2])  # load split only
    test_loads: list[int] = field(default_factory=lambda: [3])  # load split only
    # Condition split (split=condition): the condition (the source's: CWRU load; HIT-SM speed, rig),
    # the values whose recordings are split by time into train | gap | val, and the values whose
    # recordings are all test (e.g. speed, [600, 900], [1200]: leave one speed out). The CWRU load
    # split is the same split with condition=load, train_loads and test_loads.
    condition: Optional[str] = None
    train_conditions: Optional[list[Any]] = None
    test_conditions: Optional[list[Any]] = None
    balance: str = "none"  # none | undersample (to the smallest class, per split, seeded)
    seed: int = 0
    # Subset (and order) of the setup's classes; None = all. Generic: the classes, and a manifest
    # row with another label is an error (a typo must not become a class, nor vanish unseen).
    classes: Optional[list[str]] = None
    manifest: Optional[str] = None  # generic setup: path to the manifest CSV
    root: Optional[str] = None  # recordings folder override (else paths.recordings_dir())
    verify_hashes: bool = (
        True  # check each recording's SHA-256 (catalogue / manifest) on a cold build
    )
    # generic setup: problems in manifest rows (missing file, unparsable value, undeclared label, a
    # rate the file contradicts) stop the build, all listed at once. True: the rows are dropped
    # instead, each named in a warning that the dataset summary lists (dataset.missing).
    lenient: bool = False
    # [low, high] Hz at fs_hz: keep only this band of every recording (sharp zero-phase FIR, applied
    # after resampling, before splitting; see fault_diag.data.filters). None = no filter.
    band_hz: Optional[list[float]] = None
    # The setup's healthy class (the "sink" noisy fault windows fall into). None = the setup's own
    # (cwru10/cwru4: normal; generic: a class named normal or healthy, if any).
    healthy_class: Optional[str] = None

    @property
    def effective_eval_hop(self) -> int:
        """Hop of validation/test windows (``window_length`` unless set)."""
        return self.window_length if self.eval_hop is None else int(self.eval_hop)

    @property
    def effective_guard_gap(self) -> int:
        """Samples left unused between two split regions (``window_length`` unless set)."""
        return self.window_length if self.guard_gap is None else int(self.guard_gap)

    def condition_split(self) -> tuple[str, list[Any], list[Any]] | None:
        """(condition, training values, test values) of a load or condition split; None for time."""
        if self.split == "load":
            return "load", list(self.train_loads), list(self.test_loads)
        if self.split == "condition":
            return (
                str(self.condition),
                list(self.train_conditions or []),
                list(self.test_conditions or []),
            )
        return None

    def validate(self) -> DataConfig:
        """Raise :class:`ConfigError` (naming the key) when a value is out of range; return self."""

        def bad(key: str, value: Any, expected: str) -> ConfigError:
            return ConfigError(f"data.{key}={value!r} is invalid: expected {expected}")

        if int(self.fs_hz) <= 0:
            raise bad("fs_hz", self.fs_hz, "a positive sampling rate in Hz")
        if int(self.window_length) < 2:
            raise bad("window_length", self.window_length, "at least 2 samples")
        if int(self.train_hop) < 1:
            raise bad("train_hop", self.train_hop, "a positive number of samples")
        if self.eval_hop is not None and int(self.eval_hop) < 1:
            raise bad(
                "eval_hop",
                self.eval_hop,
                f"a positive number of samples (>= window_length={self.window_length} for "
                "validation/test windows that never overlap), or null",
            )
        if self.guard_gap is not None and int(self.guard_gap) < 0:
            raise bad("guard_gap", self.guard_gap, "a non-negative number of samples, or null")
        if self.split not in SPLITS:
            raise bad("split", self.split, f"one of {list(SPLITS)}")
        if self.balance not in BALANCES:
            raise bad("balance", self.balance, f"one of {list(BALANCES)}")
        fr = [float(f) for f in self.split_fractions]
        if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
            raise bad(
                "split_fractions", list(self.split_fractions), "3 non-negative numbers summing to 1"
            )
        if fr[0] <= 0:
            raise bad("split_fractions", list(self.split_fractions), "a positive training share")
        if self.split == "time" and fr[2] <= 0:
            raise bad("split_fractions", list(self.split_fractions), "a positive test share")
        if self.split == "load":
            train, test = set(self.train_loads), set(self.test_loads)
            if not train or not test:
                raise bad(
                    "train_loads/test_loads",
                    (list(self.train_loads), list(self.test_loads)),
                    "two non-empty lists",
                )
            if train & test:
                raise bad(
                    "test_loads",
                    list(self.test_loads),
                    f"loads disjoint from train_loads {sorted(train)} (shared: {sorted(train & test)})",
                )
        if self.split == "condition":
            if not self.condition:
                raise bad("condition", self.condition, "a condition name for split=condition")
            train_values = [str(v) for v in self.train_conditions or []]
            test_values = [str(v) for v in self.test_conditions or []]
            if not train_values or not test_values:
                raise bad(
                    "train_conditions/test_conditions",
                    (self.train_conditions, self.test_conditions),
                    "two non-empty lists for split=condition",
                )
            if set(train_values) & set(test_values):
                raise bad(
                    "test_conditions",
                    list(self.test_conditions or []),
                    f"values disjoint from train_conditions {list(self.train_conditions or [])}",
                )
        if self.setup != "generic":
            from fault_diag.data.errors import UnknownSetupError
            from fault_diag.data.sources import source_for_setup  # lazy: sources are imported late

            try:
                source = source_for_setup(self.setup)
            except UnknownSetupError:
                source = None  # resolution reports it, listing the known setups
            if source is not None:
                source.validate_config(self)
                if self.split == "condition":
                    source.condition(str(self.condition))
        if self.setup == "generic" and not self.manifest:
            raise bad("manifest", self.manifest, "a path to a manifest CSV for setup=generic")
        if self.band_hz is not None:
            from fault_diag.data.filters import band_filter  # lazy: scipy.signal only when set

            band_filter(self.fs_hz, self.band_hz)  # ConfigError naming data.band_hz and the range
        if self.healthy_class is not None and (
            not isinstance(self.healthy_class, str) or not self.healthy_class
        ):
            raise bad("healthy_class", self.healthy_class, "a class name, or null")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_any(cls, cfg: Any) -> DataConfig:
        """Build from a DataConfig, a mapping, or an OmegaConf node (e.g. ``cfg.data`` under Hydra).

        Unknown keys raise :class:`ConfigError` naming them.
        """
        if isinstance(cfg, cls):
            return cfg
        if not isinstance(cfg, Mapping):
            try:
                from omegaconf import OmegaConf  # lazy: only Hydra users have a node to convert

                cfg = OmegaConf.to_container(cfg, resolve=True)
            except Exception as exc:  # noqa: BLE001 - anything not convertible is a config error
                raise ConfigError(f"cannot read a data config from {type(cfg).__name__}") from exc
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ConfigError(f"unknown data config keys {unknown}; known keys: {sorted(names)}")
        values: dict[str, Any] = {
            str(k): (list(v) if isinstance(v, list | tuple) else v) for k, v in cfg.items()
        }
        return cls(**values)


def store_schema(group: str = "data", name: str = "base_data") -> None:
    """Register :class:`DataConfig` in Hydra's ConfigStore (``defaults: [base_data, _self_]``)."""
    from hydra.core.config_store import ConfigStore  # lazy: Hydra is only needed by the CLIs

    ConfigStore.instance().store(group=group, name=name, node=DataConfig)
