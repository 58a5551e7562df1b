"""Data sources: the datasets the project knows by name (the seam of issue 16).

A source is one module with one :class:`~fault_diag.data.sources.base.DataSource` subclass: its
catalogue (files, labels, conditions, sha256, where each file comes from), how to read one file, and
the setups (named class sets) it offers. Everything else (``build_dataset``, the cache, the audit,
``fd-data``, ``fd-predict``) reaches a dataset through :func:`get_source` / :func:`source_for_setup`
and never sees a CWRU file number or a HIT-SM variable name.

Built in: ``cwru`` (CWRU Bearing Data Center), ``hit_sm`` (HIT-SM, two rigs x 3 speeds) and
``manifest`` (the user's own recordings listed in a manifest CSV, setup ``generic``). A third source
is a module defining a subclass and one call to :func:`register_source` (docs/own-data.md).

This module is import-light (no pandas, scipy or torch): sources are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from fault_diag.data.errors import UnknownSetupError, UnknownSourceError

if TYPE_CHECKING:
    from fault_diag.data.sources.base import DataSource

#: name -> "module:Class" of the built-in sources (imported lazily).
_BUILTIN: dict[str, str] = {
    "cwru": "fault_diag.data.sources.cwru:CWRUSource",
    "hit_sm": "fault_diag.data.sources.hit_sm:HITSMSource",
    "manifest": "fault_diag.data.sources.manifest_source:ManifestSource",
}
_LOADED: dict[str, DataSource] = {}


def register_source(source: DataSource) -> DataSource:
    """Make ``source`` known under ``source.name`` (replacing a source of that name); returns it."""
    _LOADED[source.name] = source
    _BUILTIN.pop(source.name, None)
    return source


def list_sources() -> list[str]:
    """Names of every known source."""
    return sorted(set(_BUILTIN) | set(_LOADED))


def get_source(name: str) -> DataSource:
    """The source called ``name``; :class:`UnknownSourceError` lists the known ones."""
    if name in _LOADED:
        return _LOADED[name]
    if name not in _BUILTIN:
        raise UnknownSourceError(
            f"unknown data source {name!r}; known sources: {', '.join(list_sources())}"
        )
    module, cls = _BUILTIN[name].split(":")
    source: DataSource = getattr(importlib.import_module(module), cls)()
    _LOADED[name] = source
    return source


def all_sources() -> list[DataSource]:
    """Every known source (imports the built-in ones)."""
    return [get_source(n) for n in list_sources()]


def source_for_setup(setup: str) -> DataSource:
    """The source that offers ``setup``; :class:`UnknownSetupError` lists every known setup."""
    for source in all_sources():
        if setup in source.setup_names():
            return source
    raise UnknownSetupError(f"unknown data setup {setup!r}; known setups: {all_setup_names()}")


def all_setup_names() -> list[str]:
    """Every setup of every source (the generic manifest setup last)."""
    names: list[str] = []
    for source in all_sources():
        names.extend(n for n in source.setup_names() if n not in names)
    generic = [n for n in names if n == "generic"]
    return sorted(n for n in names if n != "generic") + generic


def known_rate(path: object) -> tuple[int, str] | None:
    """(sampling rate, which catalogue) of a file some source's catalogue knows, else None."""
    from pathlib import Path

    for source in all_sources():
        rate = source.known_rate(Path(str(path)))
        if rate is not None:
            return rate, source.title
    return None


__all__ = [
    "all_setup_names",
    "all_sources",
    "get_source",
    "known_rate",
    "list_sources",
    "register_source",
    "source_for_setup",
]
