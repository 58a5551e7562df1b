"""The interface a dataset implements to be one name away (``fd-data --source NAME``, ``data.setup``).

A :class:`DataSource` knows, and is the only code that knows:

- its catalogue: every file (a key such as ``105.mat`` or ``MFS/IR2_1200.mat``), its label columns,
  its conditions (load, speed, rig, ...), its sampling rate and SHA-256 (:meth:`catalogue`);
- its setups: named class sets drawn from the catalogue (:meth:`setup_names`, :meth:`get_setup`);
- where each file comes from (:meth:`url`) and where it is kept (:meth:`recordings_dir`);
- how to read one file (:meth:`read`) and what a recording spec holds (:meth:`spec_for`);
- which conditions a condition split may use (:attr:`conditions`).

Everything generic (resolution against the disk, download with pooch, verification, the split, the
audit, the cache) is written once against this interface. A new dataset subclasses
:class:`DataSource`, ships its catalogue CSV and its ``conf/data/*.yaml``, and is registered with
:func:`fault_diag.data.sources.register_source` (built-ins are listed in ``sources/__init__.py``).

This module imports pandas lazily, so importing a source is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fault_diag import paths
from fault_diag.data.errors import ConfigError, DataError, UnknownSetupError

if TYPE_CHECKING:
    import pandas as pd

    from fault_diag.data.config import DataConfig
    from fault_diag.data.download import FetchReport, FileStatus
    from fault_diag.data.readers import Signal
    from fault_diag.data.setups import RecordingSpec, Resolution, Setup


@dataclass(frozen=True)
class Condition:
    """An operating condition recordings differ in, usable by a condition split.

    ``name`` is what ``data.condition`` says (``speed``), ``column`` the catalogue column holding it
    (``speed_rpm``), ``plural`` how messages name several values (``speeds``).
    """

    name: str
    column: str
    plural: str
    description: str = ""


def norm_value(value: Any) -> Any:
    """A condition value as compared: whole numbers as int (``600``, ``600.0``, ``"600"``), else str."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return int(value) if float(value).is_integer() else float(value)
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def sort_values(values: Iterable[Any]) -> list[Any]:
    """Condition values sorted (numbers first, by value; then text)."""
    return sorted(
        set(values), key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0, str(v))
    )


def source_download_dir(name: str) -> Path:
    """Where a source's downloads go: a ``<name>`` folder beside CWRU's download folder
    (``<root>/data/<name>``; ``$FAULT_DIAG_DOWNLOAD_DIR/../<name>`` when that is set)."""
    return paths.download_dir().parent / name


def sibling_data_dir(name: str) -> Path | None:
    """A ``<name>`` folder beside ``$FAULT_DIAG_DATA_DIR`` (``.../data/cwru`` -> ``.../data/hit_sm``)
    when the variable is set and the folder exists; else None. Sources kept side by side need one
    setting only (CI sets ``FAULT_DIAG_DATA_DIR`` alone)."""
    override = paths.data_dir_override()
    if override is None:
        return None
    folder = override.parent / name
    return folder if folder.is_dir() else None


class DataSource:
    """Base class of a dataset source (see the module docstring). Subclasses set the class
    attributes and implement :meth:`catalogue`, :meth:`setups`, :meth:`spec_for` and :meth:`read`."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # for messages: "CWRU", "HIT-SM" ("the HIT-SM catalogue")
    description: ClassVar[str] = ""
    default_setup: ClassVar[str] = ""
    #: Conditions a condition split may use; the first one is the primary (listed in summaries).
    conditions: ClassVar[tuple[Condition, ...]] = ()
    #: Channels ``data.channel`` may take (None: any).
    channels: ClassVar[tuple[str, ...] | None] = None
    #: Settings ``fd-data summary --source NAME`` starts from (before --config / --set).
    config_defaults: ClassVar[dict[str, Any]] = {}
    #: Environment variable naming a folder that already holds this source's files.
    dir_env: ClassVar[str | None] = None
    #: Environment variable overriding the download base URL (a mirror, a loopback test server).
    base_url_env: ClassVar[str | None] = None
    #: What the protocol records about what the split can and cannot show on this data.
    note: ClassVar[str] = ""

    # ------------------------------------------------------------------ catalogue and setups

    def catalogue(self) -> pd.DataFrame:
        """Every file of the source: at least ``file`` (key), ``sampling_rate_hz``, ``sha256``."""
        raise NotImplementedError

    def setups(self) -> dict[str, Setup]:
        """The named setups of the source."""
        raise NotImplementedError

    def setup_names(self) -> list[str]:
        """Names of the source's setups."""
        return list(self.setups())

    def get_setup(self, name: str) -> Setup:
        """The setup ``name``; :class:`UnknownSetupError` when it is not one of this source's."""
        setups = self.setups()
        if name not in setups:
            raise UnknownSetupError(
                f"setup {name!r} does not belong to source {self.name!r} (its setups: "
                f"{', '.join(setups)})"
            )
        return setups[name]

    def setup_catalogue(self, setup: Setup | str) -> pd.DataFrame:
        """Catalogue rows of every file of ``setup`` with a ``class_name`` column."""
        import pandas as pd

        setup = self.get_setup(setup) if isinstance(setup, str) else setup
        cat = self.catalogue()
        parts = []
        for spec in setup.classes:
            mask = pd.Series(True, index=cat.index)
            for col, values in spec.query.items():
                mask &= cat[col].isin(list(values))
            rows = cat[mask].copy()
            rows["class_name"] = spec.name
            parts.append(rows)
        return pd.concat(parts).sort_values(["class_name", "file"], kind="stable")

    def condition(self, name: str) -> Condition:
        """The condition ``name`` (``data.condition``); :class:`ConfigError` lists the known ones."""
        for c in self.conditions:
            if name in (c.name, c.column):
                return c
        known = ", ".join(c.name for c in self.conditions) or "none"
        raise ConfigError(
            f"data.condition={name!r} is not a condition of source {self.name!r} (its conditions: "
            f"{known})"
        )

    def primary_condition(self) -> Condition:
        """The condition summaries list recordings by (CWRU: load)."""
        return self.conditions[0] if self.conditions else Condition("file", "file", "files")

    def time_split_values(self, cfg: DataConfig) -> list[Any] | None:
        """Values of the primary condition a time split keeps (None: all). CWRU: ``data.loads``."""
        if cfg.loads is not None:
            raise ConfigError(
                f"data.loads={list(cfg.loads)} is a CWRU setting; source {self.name!r} has no "
                "loads (set it to null)"
            )
        return None

    # ------------------------------------------------------------------ files on disk

    def download_dir(self) -> Path:
        """Folder downloads go to: ``<download folder of CWRU>/../<name>`` (``<root>/data/<name>``)."""
        return source_download_dir(self.name)

    def data_dir_override(self) -> Path | None:
        """A folder that already holds the files (never downloaded to): ``$<dir_env>``, else a
        ``<name>`` folder beside ``$FAULT_DIAG_DATA_DIR`` when it exists; None otherwise."""
        if self.dir_env and os.environ.get(self.dir_env):
            return Path(os.environ[self.dir_env]).expanduser().resolve()
        return sibling_data_dir(self.name)

    def recordings_dir(self) -> Path:
        """Folder the files are read from: the override if any, else the download folder."""
        return self.data_dir_override() or self.download_dir()

    def dir_hint(self) -> str:
        """How to point the project at a folder of this source's files (for error messages)."""
        env = self.dir_env or paths.DATA_DIR_ENV
        return f"set {env} to a folder that holds them"

    def file_keys(self, setup: str | None = None) -> list[str]:
        """Keys of every file of ``setup`` (default: the whole catalogue)."""
        cat = self.setup_catalogue(setup) if setup else self.catalogue()
        return sorted({str(k) for k in cat["file"]})

    def check_files(self, items: Sequence[str]) -> list[str]:
        """Keys of ``items`` (``fd-data --files``); :class:`ConfigError` names the unknown ones."""
        known = set(self.file_keys())
        unknown = [i for i in items if str(i) not in known]
        if unknown:
            raise ConfigError(
                f"--files {' '.join(map(str, unknown))}: not a file of the {self.title} catalogue "
                f"({len(known)} files, e.g. {sorted(known)[0]}; `fd-data catalogue --source "
                f"{self.name}` lists them)"
            )
        return [str(i) for i in items]

    def expected_sha256(self, key: str) -> str | None:
        """The catalogue SHA-256 of ``key`` (None when unknown)."""
        cat = self.catalogue()
        rows = cat[cat["file"].astype(str) == key]
        value = str(rows["sha256"].iloc[0]) if len(rows) else ""
        return value or None

    def url(self, key: str, base_url: str | None = None) -> str:
        """Where ``key`` is downloaded from (``base_url`` or ``$<base_url_env>`` overrides the host)."""
        raise DataError(f"source {self.name!r} has nothing to download")

    def base_url(self, override: str | None = None) -> str | None:
        """The mirror base URL: ``override``, else ``$<base_url_env>``, else None (official)."""
        env = os.environ.get(self.base_url_env) if self.base_url_env else None
        url = override or env
        return url.rstrip("/") if url else None

    def fetch(
        self,
        keys: Sequence[str],
        *,
        folder: str | Path | None = None,
        base_url: str | None = None,
        progress: bool = True,
    ) -> FetchReport:
        """Obtain ``keys`` (pooch, sha256-checked), collecting failures (see download.py)."""
        from fault_diag.data.download import fetch_source_files

        return fetch_source_files(self, keys, folder=folder, base_url=base_url, progress=progress)

    def verify(
        self, keys: Sequence[str] | None = None, folder: str | Path | None = None
    ) -> list[FileStatus]:
        """Status (ok / missing / hash_mismatch / unverified) of each file in ``folder``."""
        from fault_diag.data.download import verify_entries

        root = Path(folder).expanduser().resolve() if folder is not None else self.recordings_dir()
        keys = list(keys) if keys is not None else self.file_keys()
        return verify_entries([(k, root / k, self.expected_sha256(k)) for k in keys])

    def known_rate(self, path: Path) -> int | None:
        """The catalogue's sampling rate for a file named as one of this source's, else None."""
        return None

    # ------------------------------------------------------------------ variable rules
    # The generic reader (fault_diag.data.readers) asks every source about a MATLAB file whose
    # variable the channel does not name exactly; a source without naming rules keeps the defaults.

    def select_variable(
        self,
        usable: list[str],
        channel: str,
        number: int | None,
        source: str | Path,
        file_name: str | None = None,
    ) -> tuple[str, str | None] | None:
        """The variable of ``channel`` by this source's naming rules: (name, warning or None), or
        None when the rules find none. ``number`` is the recording's number if known (else taken
        from ``file_name`` where the source names files by number); ``source`` names the file in
        messages. May raise :class:`~fault_diag.data.errors.AmbiguousVariableError`."""
        return None

    def owns_variables(self, usable: list[str]) -> bool:
        """True when the variable names follow this source's channel naming: the reader then never
        takes "the file's only signal" in place of an absent channel."""
        return False

    def variable_hint(self, channel: str) -> str | None:
        """How this source names ``channel``'s variable, for error messages (None: no rule)."""
        return None

    def companion_rpm(self, variable: str) -> str | None:
        """The name of the shaft-speed variable stored beside ``variable``, if the source has one."""
        return None

    def recorded_rate(self, path: Path, names: list[str]) -> tuple[float, str] | None:
        """(rate in Hz, where from) for a file of this source that stores no rate of its own but
        is known to the source (e.g. by its catalogue); None otherwise."""
        return None

    # ------------------------------------------------------------------ reading

    def validate_config(self, cfg: DataConfig) -> None:
        """Raise :class:`ConfigError` for a setting this source cannot honour (e.g. its channel)."""
        if self.channels is not None and cfg.channel not in self.channels:
            raise ConfigError(
                f"data.channel={cfg.channel!r} is invalid: expected one of {list(self.channels)} "
                f"for {self.title} setups"
            )

    def spec_for(self, row: pd.Series, root: Path, cfg: DataConfig) -> RecordingSpec:
        """The recording spec of one setup-catalogue row (path under ``root``)."""
        raise NotImplementedError

    def read(self, spec: RecordingSpec) -> Signal:
        """Read one recording (the raw signal at its own rate)."""
        from fault_diag.data.readers import read_recording

        return read_recording(spec.path, spec.channel, spec.file_number)

    def resolve(self, cfg: DataConfig) -> Resolution:
        """The recordings of ``cfg`` found on disk (see :func:`fault_diag.data.setups.resolve`)."""
        from fault_diag.data.setups import resolve_catalogue

        return resolve_catalogue(cfg, self)
