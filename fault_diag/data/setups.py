"""Named class setups (which recordings make which class), their resolution against the disk, and the
generic manifest-driven dataset.

Setups belong to data sources (:mod:`fault_diag.data.sources`): CWRU's are defined here,
HIT-SM's in :mod:`fault_diag.data.sources.hit_sm`; :func:`resolve` works for any source through the
source's catalogue (:func:`resolve_catalogue`).

- ``cwru10``: normal + inner race / ball / outer race @6:00 x 0.007 / 0.014 / 0.021 in, 12 kHz drive
  end, loads 0-3 HP (the usual 10-class CWRU task; the normal baseline is 48 kHz and is decimated).
- ``cwru4``: the same recordings as 4 classes: normal / inner_race / ball / outer_race.
- ``generic``: the user's own recordings, listed in a manifest CSV (see data/README.md).

Resolution checks what is on disk: absent files are recorded (and logged) per class and load; the build
goes on while every class still has data, and stops with the list of what is missing otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fault_diag import paths
from fault_diag.data.config import DataConfig
from fault_diag.data.errors import (
    ConfigError,
    MissingClassesError,
    MissingDataFolderError,
    UnknownSetupError,
)
from fault_diag.data.manifest import (  # noqa: F401 - re-exported: the manifest API lived here
    LINE,
    MANIFEST_OPTIONAL,
    MANIFEST_REQUIRED,
    RESERVED_META,
    check_manifest,
    read_manifest,
)
from fault_diag.data.sources.base import DataSource, norm_value, sort_values

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassSpec:
    """One class of a CWRU setup: the catalogue rows whose columns take the listed values."""

    name: str
    query: Mapping[str, tuple[Any, ...]]


@dataclass(frozen=True)
class Setup:
    """A named set of classes drawn from the CWRU catalogue.

    ``healthy_class``: the class of undamaged machines, if the setup has one. Metrics such as the
    share of fault windows predicted healthy (the "sink" noisy windows fall into) need to know it.
    """

    name: str
    description: str
    classes: tuple[ClassSpec, ...]
    healthy_class: str | None = None

    def __post_init__(self) -> None:
        if self.healthy_class is not None and self.healthy_class not in self.class_names:
            raise ConfigError(
                f"setup {self.name!r}: healthy_class {self.healthy_class!r} is not one of its "
                f"classes {self.class_names}"
            )

    @property
    def class_names(self) -> list[str]:
        """Class names in label order."""
        return [c.name for c in self.classes]


@dataclass
class RecordingSpec:
    """One recording to read: where it is, what it is, and what its hash should be."""

    key: str  # provenance id of the recording ("105.mat", or the manifest's file entry)
    path: Path
    class_name: str
    fs_hz: int  # sampling rate of the file on disk
    load_hp: float | None
    channel: str
    file_number: int | None = None
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Operating conditions a condition split may use ({"load": 1}, {"speed": 600, "rig": "MFS"}).
    conditions: dict[str, Any] = field(default_factory=dict)
    expected_variable: str | None = None  # the variable the source's catalogue lists, if any


@dataclass
class Resolution:
    """Recordings found on disk for a config, and what is absent."""

    class_names: list[str]
    recordings: list[RecordingSpec]
    missing: dict[str, Any]
    root: Path
    healthy_class: str | None = None


_DE12 = ("12k_DE",)
_OR6 = ("6:00",)
_SIZES = (0.007, 0.014, 0.021)
_FAULTS = (("IR", "inner_race"), ("B", "ball"), ("OR", "outer_race"))


def _fault_query(fault: str, sizes: tuple[float, ...]) -> dict[str, tuple[Any, ...]]:
    q: dict[str, tuple[Any, ...]] = {"group": _DE12, "fault": (fault,), "fault_size_in": sizes}
    if fault == "outer_race":
        q["or_position"] = _OR6
    return q


_NORMAL = ClassSpec("normal", {"group": ("normal",)})

SETUPS: dict[str, Setup] = {
    "cwru10": Setup(
        "cwru10",
        "CWRU 12 kHz drive end, 10 classes: normal + IR/B/OR@6 x 0.007/0.014/0.021 in",
        (_NORMAL,)
        + tuple(
            ClassSpec(
                f"{code}{round(size * 1000):03d}" + ("@6" if code == "OR" else ""),
                _fault_query(fault, (size,)),
            )
            for code, fault in _FAULTS
            for size in _SIZES
        ),
        healthy_class="normal",
    ),
    "cwru4": Setup(
        "cwru4",
        "CWRU 12 kHz drive end, 4 classes: normal / inner race / ball / outer race @6 (0.007-0.021 in)",
        (_NORMAL,) + tuple(ClassSpec(fault, _fault_query(fault, _SIZES)) for _, fault in _FAULTS),
        healthy_class="normal",
    ),
}
GENERIC = "generic"


def register_setup(setup: Setup) -> None:
    """Add a CWRU setup (e.g. fan-end or 48 kHz classes) under ``setup.name``."""
    SETUPS[setup.name] = setup


def list_setups() -> list[str]:
    """Names accepted by ``DataConfig.setup`` (every source's setups, then ``generic``)."""
    from fault_diag.data.sources import all_setup_names

    return all_setup_names()


def get_setup(name: str) -> Setup:
    """The setup called ``name`` (any source); :class:`UnknownSetupError` lists the known ones."""
    if name in SETUPS:
        return SETUPS[name]
    from fault_diag.data.sources import source_for_setup

    if name == GENERIC:
        raise UnknownSetupError(f"setup {name!r} is a manifest, not a catalogue setup")
    return source_for_setup(name).get_setup(name)


def setup_catalogue(setup: Setup | str) -> pd.DataFrame:
    """Catalogue rows of every file of ``setup`` (any source) with a ``class_name`` column."""
    from fault_diag.data.sources import source_for_setup

    name = setup if isinstance(setup, str) else setup.name
    return source_for_setup(name).setup_catalogue(setup)


def _selected_classes(all_names: list[str], wanted: list[str] | None, setup: str) -> list[str]:
    if wanted is None:
        return list(all_names)
    unknown = [c for c in wanted if c not in all_names]
    if unknown:
        raise ConfigError(
            f"data.classes: {unknown} are not classes of setup {setup!r} ({all_names})"
        )
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"data.classes lists a class twice: {wanted}")
    return list(wanted)


#: Class names taken as the healthy class of a generic (manifest) dataset when none is configured.
HEALTHY_NAMES = ("normal", "healthy")


def default_healthy_class(setup: str, class_names: list[str]) -> str | None:
    """The healthy class a setup implies for ``class_names`` (before any ``data.healthy_class``).

    CWRU setups: their own (``normal``), or None when ``data.classes`` leaves it out. Generic: the one
    class called ``normal`` or ``healthy`` (any case); None when there is none or more than one.
    """
    if setup != GENERIC:
        own = get_setup(setup).healthy_class
        return own if own in class_names else None
    found = [c for c in class_names if c.lower() in HEALTHY_NAMES]
    if len(found) > 1:
        log.warning(
            "generic setup: classes %s could each be the healthy class; none is used (set "
            "data.healthy_class)",
            found,
        )
    return found[0] if len(found) == 1 else None


def healthy_class_for(cfg: DataConfig, class_names: list[str]) -> str | None:
    """``cfg.healthy_class`` checked against ``class_names``, else the setup's default."""
    if cfg.healthy_class is None:
        return default_healthy_class(cfg.setup, class_names)
    if cfg.healthy_class not in class_names:
        raise ConfigError(
            f"data.healthy_class={cfg.healthy_class!r} is not a class of setup {cfg.setup!r}: "
            f"expected one of {class_names}, or null"
        )
    return cfg.healthy_class


def recordings_root(cfg: DataConfig) -> Path:
    """Folder the recordings of ``cfg`` are read from (``cfg.root``, else the source's folder)."""
    if cfg.root:
        return Path(cfg.root).expanduser().resolve()
    if cfg.setup == GENERIC:
        return paths.recordings_dir()
    from fault_diag.data.sources import source_for_setup

    return source_for_setup(cfg.setup).recordings_dir()


def _missing_folder(root: Path, setup: str, source: DataSource) -> MissingDataFolderError:
    return MissingDataFolderError(
        f"recordings folder {root} does not exist: run `fd-data download --setup {setup}` or "
        f"{source.dir_hint()}"
    )


def resolve(cfg: DataConfig) -> Resolution:
    """Find the recordings of ``cfg`` on disk; record what is missing; stop if a class has none."""
    if cfg.setup == GENERIC:
        return resolve_manifest(cfg)
    from fault_diag.data.sources import source_for_setup

    return source_for_setup(cfg.setup).resolve(cfg)


def resolve_catalogue(cfg: DataConfig, source: DataSource) -> Resolution:
    """:func:`resolve` for a source with a catalogue (CWRU, HIT-SM, ...).

    Which recordings: the setup's classes (``data.classes``), at the values of the split's condition
    (a condition split: ``train_conditions`` + ``test_conditions``; the CWRU load split: loads;
    a time split: every value, or ``data.loads`` on CWRU). Absent files are recorded per class and
    condition value; :class:`MissingClassesError` names the class and condition left without data.
    """
    setup = source.get_setup(cfg.setup)
    root = Path(cfg.root).expanduser().resolve() if cfg.root else source.recordings_dir()
    if not root.is_dir():
        raise _missing_folder(root, cfg.setup, source)
    names = _selected_classes(setup.class_names, cfg.classes, cfg.setup)
    healthy = healthy_class_for(cfg, names)  # before any file is looked at: a config error
    cat = source.setup_catalogue(setup)
    cat = cat[cat["class_name"].isin(names)]
    split = cfg.condition_split()
    cond = source.condition(split[0]) if split else source.primary_condition()
    values = cat[cond.column].map(norm_value)
    if split is not None:
        wanted = sort_values(norm_value(v) for v in [*split[1], *split[2]])
        if cfg.split == "condition":
            unknown = [v for v in wanted if v not in set(values)]
            if unknown:
                raise ConfigError(
                    f"data.train_conditions/test_conditions: {unknown} are not {cond.plural} of "
                    f"setup {cfg.setup!r} (its {cond.plural}: {sort_values(values)})"
                )
    else:
        chosen = source.time_split_values(cfg)
        wanted = sort_values(values) if chosen is None else sort_values(map(norm_value, chosen))
    keep = values.isin(wanted)
    cat, values = cat[keep], values[keep]
    recordings, missing_files = [], []
    missing_values: dict[str, list[Any]] = {}
    present: dict[str, list[Any]] = {n: [] for n in names}
    for (_, row), value in zip(cat.iterrows(), values, strict=True):
        spec = source.spec_for(row, root, cfg)
        if spec.path.is_file():
            present[spec.class_name].append(value)
            recordings.append(spec)
        else:
            missing_files.append(spec.key)
            missing_values.setdefault(spec.class_name, []).append(value)
    not_published = {
        n: sort_values(set(wanted) - set(values[cat["class_name"] == n])) for n in names
    }
    not_published = {k: v for k, v in not_published.items() if v}
    missing = _missing_record(names, missing_files, missing_values, not_published, root)
    missing["condition"] = cond.plural
    _check_coverage(cfg, names, present, missing, cat, root, source)
    return Resolution(names, recordings, missing, root, healthy)


def _missing_record(
    names: list[str],
    files: list[str],
    loads: Mapping[str, list[int]],
    not_published: Mapping[str, list[int]],
    root: Path,
) -> dict[str, Any]:
    return {
        "folder": str(root),
        "files": sorted(files, key=lambda f: (len(f), f)),
        "loads": {k: sorted(v) for k, v in loads.items()},
        "not_published": dict(not_published),
        "classes": [],  # filled by _check_coverage when a class has nothing at all
        "n_classes": len(names),
        # generic setup: manifest rows left out (data.lenient) and every manifest warning
        "dropped_rows": [],
        "warnings": [],
    }


def _check_coverage(
    cfg: DataConfig,
    names: list[str],
    present_loads: Mapping[str, list[Any]],
    missing: dict[str, Any],
    cat: pd.DataFrame,
    root: Path,
    source: DataSource | None = None,
) -> None:
    """Warn about absent recordings; raise :class:`MissingClassesError` naming the class and the
    condition (load, speed, rig) when a class has no recording at all, or none in a split role."""
    problems = []
    split = cfg.condition_split()
    plural = missing.get("condition", "loads")
    for name in names:
        have = set(present_loads.get(name, []))
        if split is not None:
            for role, wanted in (("train", split[1]), ("test", split[2])):
                values = sort_values(norm_value(v) for v in wanted)
                if not have & set(values):
                    problems.append(f"{name} has no recording at {role} {plural} {values}")
        elif not have:
            problems.append(f"{name} has no recording")
    absent_classes = [n for n in names if not present_loads.get(n)]
    missing["classes"] = absent_classes
    if missing["files"] or missing["not_published"]:
        parts = [f"{k}: {plural} {v} absent" for k, v in missing["loads"].items()]
        parts += [f"{k}: {plural} {v} not published" for k, v in missing["not_published"].items()]
        log.warning(
            "%s: %d recordings missing in %s (%s); files: %s",
            cfg.setup,
            len(missing["files"]),
            root,
            "; ".join(parts),
            ", ".join(missing["files"]),
        )
    if problems:
        files = ", ".join(missing["files"]) or "none"
        if cfg.setup == GENERIC:
            # Manifest rows: there is nothing to download; the rows were dropped (data.lenient)
            # or select no recording of the class at these loads.
            dropped = missing.get("dropped_rows") or []
            lines = ", ".join(str(n) for n in sorted({d["line"] for d in dropped})) or "none"
            advice = (
                f"Missing files: {files}; manifest rows dropped (data.lenient): lines {lines}. "
                f"Fix the manifest {cfg.manifest} or put the files in {root}"
            )
        else:
            env = source.dir_env if source is not None and source.dir_env else paths.DATA_DIR_ENV
            advice = (
                f"Missing files: {files}. Put them in {root} (`fd-data download --setup "
                f"{cfg.setup}`) or set {env}"
            )
        raise MissingClassesError(
            f"cannot build {cfg.setup!r} ({cfg.split} split): "
            + "; ".join(problems)
            + f". {advice}"
        )


# --------------------------------------------------------------------------- generic manifest


def resolve_manifest(cfg: DataConfig) -> Resolution:
    """Recordings listed in ``cfg.manifest`` (paths relative to ``cfg.root`` or the manifest folder).

    Every row is checked first (:func:`fault_diag.data.manifest.check_manifest`): problems stop the
    build, all listed, or with ``data.lenient`` drop their rows, which are then named in the
    resolution's ``missing`` record (``dropped_rows``, ``warnings``; absent files also in ``files``).
    """
    checked = check_manifest(cfg)
    names = checked.class_names
    healthy = healthy_class_for(cfg, names)
    extra_cols = [
        c for c in checked.table.columns if c not in (*MANIFEST_REQUIRED, *MANIFEST_OPTIONAL, LINE)
    ]
    recordings = []
    present_loads: dict[str, list[int]] = {n: [] for n in names}
    for _, row in checked.table.iterrows():
        path = Path(str(row["file"])).expanduser()
        path = path if path.is_absolute() else checked.root / path
        load = row.get("load_hp")
        load_val = None if load is None or pd.isna(load) else float(load)
        present_loads[str(row["label"])].append(_load_key(load_val))  # type: ignore[arg-type]
        channel = row.get("channel")
        sha = row.get("sha256")
        recordings.append(
            RecordingSpec(
                key=str(row["file"]),
                path=path,
                class_name=str(row["label"]),
                fs_hz=int(row["fs_hz"]),
                load_hp=load_val,
                channel=str(channel) if isinstance(channel, str) and channel else cfg.channel,
                file_number=None,
                sha256=str(sha).lower() if isinstance(sha, str) and sha else None,
                extra={c: _plain(row[c]) for c in extra_cols},
                conditions={"load": _load_key(load_val)},
            )
        )
    # Absent files are only ever dropped rows (lenient): list them as the CWRU setups list theirs.
    missing_files: list[str] = []
    missing_loads: dict[str, list[Any]] = {}
    by_line = checked.all_rows.set_index(LINE)
    for p in checked.missing_files():
        missing_files.append(str(p.file))
        row = by_line.loc[p.line]
        load = row.get("load_hp")
        load_val = None if load is None or pd.isna(load) else float(load)
        if row["label"]:  # a row without a label belongs to no class
            missing_loads.setdefault(str(row["label"]), []).append(_load_key(load_val))
    missing = _missing_record(names, missing_files, missing_loads, {}, checked.root)
    missing["dropped_rows"] = [p.to_dict() for p in checked.dropped]
    missing["warnings"] = list(checked.warnings)
    _check_coverage(cfg, names, present_loads, missing, checked.table, checked.root)
    return Resolution(names, recordings, missing, checked.root, healthy)


def _load_key(load: float | None) -> float | int | None:
    """A load as it is listed: 1.0 -> 1 (loads are usually whole numbers), 0.5 stays 0.5."""
    return int(load) if load is not None and float(load).is_integer() else load


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, NaN -> None (for JSON metadata)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value
