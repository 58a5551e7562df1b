"""CWRU ``.mat`` variable rules: what the generic reader (:mod:`fault_diag.data.readers`) asks the
CWRU source about a MATLAB file.

CWRU ``.mat`` files hold ``X<nnn>_DE_time``, ``X<nnn>_FE_time``, ``X<nnn>_BA_time`` and ``X<nnn>RPM``
with ``nnn`` the file number zero-padded to 3. Some published files break this (a file holding another
number's variables, 99.mat holding both X098_* and X099_* plus a stray ``ans``, files without FE/BA/RPM),
so the variable is chosen by rule, never by hard-coded file numbers:

1. the exact name built from the file number (``X097_DE_time`` for 97.mat);
2. else, if exactly one ``*_<CH>_time`` variable exists, that one (with a warning);
3. else, several candidates and none matches the number: :class:`AmbiguousVariableError` listing them.

A file holding any channel-named variable (``*_DE_time``, ``*_FE_time``, ``*_BA_time``) is CWRU's: the
reader then never falls back to "the file's only signal", so a CWRU file without the asked channel
is an error rather than another channel read in its place.

A CWRU file records no sampling rate; :func:`catalogue_rate` gives the catalogue's rate for a file
named by its number that holds that number's variables.
"""

from __future__ import annotations

import re
from pathlib import Path

from fault_diag.data.errors import AmbiguousVariableError
from fault_diag.data.sources.cwru.catalogue import file_number_from_name

CHANNEL_NAMED = re.compile(r"_(DE|FE|BA)_time$")
_NUMBERED = re.compile(r"^(X\d+)_")


def select(
    usable: list[str],
    channel: str,
    number: int | None,
    source: str | Path,
    file_name: str | None = None,
) -> tuple[str, str | None] | None:
    """Rules 1-3 above: (variable, warning or None), or None when no ``*_<CH>_time`` variable exists.

    ``number`` defaults to the number in ``file_name`` (``105.mat`` -> 105) when that is given.
    """
    if number is None and file_name is not None:
        number = file_number_from_name(file_name)
    if number is not None:
        exact = f"X{number:03d}_{channel}_time"
        if exact in usable:
            return exact, None
    candidates = sorted(n for n in usable if n.endswith(f"_{channel}_time"))
    if len(candidates) == 1:
        reason = (
            f"no variable X{number:03d}_{channel}_time"
            if number is not None
            else "the file name carries no CWRU file number"
        )
        return (
            candidates[0],
            (
                f"{source}: {reason}; using the only {channel} variable {candidates[0]!r} "
                f"(variables: {usable})"
            ),
        )
    if candidates:
        raise AmbiguousVariableError(
            f"{source}: {len(candidates)} candidate {channel} variables {candidates} and none "
            f"matches the file number ({number}); rename the file to its CWRU number or set "
            "the channel to the exact variable name"
        )
    return None


def is_cwru_style(usable: list[str]) -> bool:
    """True when some variable is named after a CWRU channel (``*_DE_time``, ...)."""
    return any(CHANNEL_NAMED.search(n) for n in usable)


def expected_name(channel: str) -> str:
    """The name pattern of a channel's variable, for messages (``X<nnn>_DE_time``)."""
    return f"X<nnn>_{channel}_time"


def rpm_variable(variable: str) -> str | None:
    """The RPM variable that goes with ``variable`` (``X105_DE_time`` -> ``X105RPM``), if any."""
    m = _NUMBERED.match(variable)
    return f"{m.group(1)}RPM" if m else None


def catalogue_rate(path: Path, names: list[str]) -> tuple[float, str] | None:
    """(rate, where from) of a CWRU ``.mat`` named by its file number that holds that number's
    ``X<nnn>_*_time`` variables: the catalogue's rate (CWRU files store only the RPM); else None."""
    number = file_number_from_name(path.name)
    if number is not None and any(
        n.startswith(f"X{number:03d}_") and CHANNEL_NAMED.search(n) for n in names
    ):
        from fault_diag.data.sources.cwru.catalogue import load_catalogue

        cat = load_catalogue()
        if number in cat.index:
            return (
                float(cat.loc[number, "sampling_rate_hz"]),
                f"the CWRU catalogue (the file holds CWRU recording {number}'s variables)",
            )
    return None
