"""The CWRU Bearing Data Center source: file numbers, ``X<nnn>_DE_time`` variables, loads 0-3 HP.

Everything CWRU-specific lives in this package: the catalogue (``fault_diag/data/cwru_catalogue.csv``,
read by :mod:`.catalogue`), the download from the official site (:mod:`.download`) and the ``.mat``
variable rules (:mod:`.variables`, which the generic reader asks through the
:class:`~fault_diag.data.sources.base.DataSource` hooks). The setups ``cwru10`` / ``cwru4`` are
defined in :mod:`fault_diag.data.setups`. This class is what the rest of the project sees of them;
its submodules are imported on first use (they need pandas).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fault_diag import paths
from fault_diag.data.errors import ConfigError
from fault_diag.data.sources.base import Condition, DataSource

if TYPE_CHECKING:
    import pandas as pd

    from fault_diag.data.config import DataConfig
    from fault_diag.data.download import FetchReport, FileStatus
    from fault_diag.data.setups import RecordingSpec, Setup

#: What the split can and cannot show on CWRU (recorded in every run's protocol).
BEARING_NOTE = (
    "CWRU has one bearing per fault class, so a bearing-wise split is not possible; the time split "
    "keeps windows of one recording in one split region each, separated by a guard gap"
)


class CWRUSource(DataSource):
    """CWRU: 12/48 kHz drive-end and fan-end recordings, 0-3 HP loads."""

    name = "cwru"
    title = "CWRU"
    description = "CWRU Bearing Data Center (Case Western Reserve University), drive-end 12 kHz set"
    default_setup = "cwru10"
    conditions = (Condition("load", "load_hp", "loads", "motor load, HP (0-3)"),)
    channels = ("DE", "FE", "BA")
    config_defaults = {}
    dir_env = paths.DATA_DIR_ENV
    base_url_env = "FAULT_DIAG_CWRU_BASE_URL"
    note = BEARING_NOTE

    def catalogue(self) -> pd.DataFrame:
        from fault_diag.data.sources.cwru.catalogue import load_catalogue

        cat = load_catalogue()
        cat["file"] = cat["file_name"].astype(str)
        return cat

    def setups(self) -> dict[str, Setup]:
        from fault_diag.data.setups import SETUPS

        return dict(SETUPS)

    def setup_catalogue(self, setup: Setup | str) -> pd.DataFrame:
        import pandas as pd

        from fault_diag.data.sources.cwru.catalogue import load_catalogue

        setup = self.get_setup(setup) if isinstance(setup, str) else setup
        cat = load_catalogue()
        parts = []
        for spec in setup.classes:
            mask = pd.Series(True, index=cat.index)
            for col, values in spec.query.items():
                if col == "fault_size_in":
                    mask &= cat[col].round(3).isin([round(float(v), 3) for v in values])
                else:
                    mask &= cat[col].isin(list(values))
            rows = cat[mask].copy()
            rows["class_name"] = spec.name
            parts.append(rows)
        cat = pd.concat(parts).sort_values(["class_name", "load_hp", "file_number"], kind="stable")
        cat["file"] = cat["file_name"].astype(str)
        return cat

    def time_split_values(self, cfg: DataConfig) -> list[Any] | None:
        return None if cfg.loads is None else [int(v) for v in cfg.loads]

    # CWRU's folder is $FAULT_DIAG_DATA_DIR itself, downloads go to $FAULT_DIAG_DOWNLOAD_DIR.
    def data_dir_override(self) -> Path | None:
        return paths.data_dir_override()

    def download_dir(self) -> Path:
        return paths.download_dir()

    def dir_hint(self) -> str:
        return f"set {paths.DATA_DIR_ENV} to a folder that holds the CWRU .mat files (e.g. 105.mat)"

    def check_files(self, items: Sequence[str]) -> list[str]:
        """``105`` or ``105.mat`` -> ``105.mat``; file numbers not in the catalogue are refused."""
        from fault_diag.data.sources.cwru.catalogue import file_number_from_name, load_catalogue

        numbers = []
        for item in items:
            number = file_number_from_name(str(item))
            if number is None:
                raise ConfigError(f"--files {item}: expected a CWRU file number such as 105")
            numbers.append(number)
        known = set(int(n) for n in load_catalogue().index)
        unknown = sorted(set(numbers) - known)
        if unknown:
            raise ConfigError(
                f"--files {' '.join(map(str, unknown))}: not a CWRU file number of the catalogue "
                f"({len(known)} files, numbers {min(known)} to {max(known)} with gaps; "
                "`fd-data catalogue` lists them)"
            )
        return [f"{n}.mat" for n in numbers]

    def url(self, key: str, base_url: str | None = None) -> str:
        from fault_diag.data.sources.cwru.catalogue import base_url as resolve_base_url

        return f"{resolve_base_url(base_url)}/{key}"

    def fetch(
        self,
        keys: Sequence[str],
        *,
        folder: str | Path | None = None,
        base_url: str | None = None,
        progress: bool = True,
    ) -> FetchReport:
        from fault_diag.data.sources.cwru.catalogue import file_number_from_name
        from fault_diag.data.sources.cwru.download import fetch

        numbers = [file_number_from_name(k) for k in keys]
        return fetch(
            [n for n in numbers if n is not None],
            folder=folder,
            base_url=base_url,
            progress=progress,
        )

    def verify(
        self, keys: Sequence[str] | None = None, folder: str | Path | None = None
    ) -> list[FileStatus]:
        from fault_diag.data.sources.cwru.catalogue import file_number_from_name
        from fault_diag.data.sources.cwru.download import verify_files

        numbers = None if keys is None else [file_number_from_name(k) for k in keys]
        return verify_files(
            None if numbers is None else [n for n in numbers if n is not None], folder
        )

    def known_rate(self, path: Path) -> int | None:
        from fault_diag.data.sources.cwru.catalogue import file_number_from_name, load_catalogue

        if path.suffix.lower() != ".mat":
            return None
        number = file_number_from_name(path.name)
        cat = load_catalogue()
        if number is None or number not in cat.index:
            return None
        return int(cat.loc[number, "sampling_rate_hz"])

    def spec_for(self, row: pd.Series, root: Path, cfg: DataConfig) -> RecordingSpec:
        from fault_diag.data.setups import RecordingSpec

        return RecordingSpec(
            key=str(row["file_name"]),
            path=root / str(row["file_name"]),
            class_name=str(row["class_name"]),
            fs_hz=int(row["sampling_rate_hz"]),
            load_hp=int(row["load_hp"]),
            channel=cfg.channel,
            file_number=int(row["file_number"]),
            sha256=str(row["sha256"]) or None,
            extra={"fault": str(row["fault"]), "fault_size_in": float(row["fault_size_in"])},
            conditions={"load": int(row["load_hp"])},
        )

    # ------------------------------------------------------------------ .mat variable rules

    def select_variable(
        self,
        usable: list[str],
        channel: str,
        number: int | None,
        source: str | Path,
        file_name: str | None = None,
    ) -> tuple[str, str | None] | None:
        from fault_diag.data.sources.cwru import variables

        return variables.select(usable, channel, number, source, file_name)

    def owns_variables(self, usable: list[str]) -> bool:
        from fault_diag.data.sources.cwru import variables

        return variables.is_cwru_style(usable)

    def variable_hint(self, channel: str) -> str | None:
        from fault_diag.data.sources.cwru import variables

        return variables.expected_name(channel)

    def companion_rpm(self, variable: str) -> str | None:
        from fault_diag.data.sources.cwru import variables

        return variables.rpm_variable(variable)

    def recorded_rate(self, path: Path, names: list[str]) -> tuple[float, str] | None:
        from fault_diag.data.sources.cwru import variables

        return variables.catalogue_rate(path, names)
