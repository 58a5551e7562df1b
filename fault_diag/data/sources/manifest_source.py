"""The user's own recordings, listed in a manifest CSV (setup ``generic``; docs/own-data.md).

Its catalogue is the manifest itself (``data.manifest``), so it has nothing to download or verify
against a published hash list; :mod:`fault_diag.data.manifest` checks every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fault_diag.data.errors import ConfigError
from fault_diag.data.sources.base import Condition, DataSource

if TYPE_CHECKING:
    from fault_diag.data.config import DataConfig
    from fault_diag.data.setups import Resolution, Setup


class ManifestSource(DataSource):
    """A manifest CSV of the user's recordings (setup ``generic``)."""

    name = "manifest"
    title = "manifest"
    description = "your own recordings, listed in a manifest CSV (data.manifest)"
    default_setup = "generic"
    conditions = (Condition("load", "load_hp", "loads", "the manifest's load_hp column"),)
    channels = None

    def setup_names(self) -> list[str]:
        return ["generic"]

    def setups(self) -> dict[str, Setup]:
        return {}

    def file_keys(self, setup: str | None = None) -> list[str]:
        raise ConfigError(
            "source 'manifest' has no catalogue of its own: its files are the rows of your "
            "manifest (check them with `fd-data summary --setup generic --set manifest=PATH`)"
        )

    def recordings_dir(self) -> Path:
        from fault_diag import paths

        return paths.recordings_dir()

    def resolve(self, cfg: DataConfig) -> Resolution:
        from fault_diag.data.setups import resolve_manifest

        return resolve_manifest(cfg)
