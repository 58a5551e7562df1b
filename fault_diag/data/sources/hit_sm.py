"""HIT-SM (Harbin Institute of Technology): two rigs x 7 classes x 3 speeds, 51.2 kHz, 42 files.

Files: ``MFS/<class>_<rpm>.mat`` (SpectraQuest MFS rig) and ``SelfBuilt/<class>_<rpm>.mat`` (the
authors' rig), classes ``Normal``, ``IR2``/``IR5``/``IR8``, ``OR2``/``OR5``/``OR8`` (inner / outer race
defect of 2, 5, 8 degrees), speeds 600 / 900 / 1200 rpm, 262,144 samples each. The catalogue
(``fault_diag/data/hit_sm_catalogue.csv``) was made from the dataset's MANIFEST.csv: SHA-256 of every
file, its rig, class, speed, the variable it holds and its path in the authors' repository.

Published by the authors in the GitHub repository ``hitwzc/Bearing-datasets`` (pinned here to commit
:data:`COMMIT`); downloads come from ``https://github.com/hitwzc/Bearing-datasets/raw/<commit>/<path>``
(``$FAULT_DIAG_HIT_SM_BASE_URL`` replaces the part before ``<path>``: a mirror, a loopback test).

Quirks handled here, and only here:

- each file holds exactly one variable, under a name that changes from file to file (``z10_1``,
  ``VarName5``, ``inside2d_600_1``): the reader takes the only name not starting with ``__`` and
  refuses a file with none, several, or one that is not a 1-D signal;
- the amplitude scale differs between recording runs (MFS ``Normal`` about 40x quieter than the MFS
  faults; in SelfBuilt ``IR2``/``IR8``/``OR2``/``OR8`` about 50x quieter than ``IR5``/``OR5``, with a DC
  offset): a classifier can separate classes by gain alone. Models standardise each window
  (:mod:`fault_diag.preprocess`); ``fd-data summary`` reports the per-class level and the spectral
  audit of the training windows.

Setups: ``hit_mfs7`` (MFS rig), ``hit_selfbuilt7`` (SelfBuilt rig), ``hit_sm7`` (both rigs, the same
7 classes; for the cross-rig split). Conditions: ``speed`` (``speed_rpm``) and ``rig``.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from fault_diag.data.errors import NoUsableVariableError
from fault_diag.data.sources.base import Condition, DataSource

if TYPE_CHECKING:
    import pandas as pd

    from fault_diag.data.config import DataConfig
    from fault_diag.data.readers import Signal
    from fault_diag.data.setups import RecordingSpec, Setup

REPOSITORY = "hitwzc/Bearing-datasets"
COMMIT = "12e46cd1b4a40f396c2bd6e245be5bafe18b1989"
OFFICIAL_BASE_URL = f"https://github.com/{REPOSITORY}/raw/{COMMIT}"
CATALOGUE_RESOURCE = "hit_sm_catalogue.csv"
#: fault_diag.data.readers.SINGLE_VARIABLE (spelled out: importing the readers pulls in pandas).
SINGLE_VARIABLE = "single-variable"
CLASSES = ("Normal", "IR2", "IR5", "IR8", "OR2", "OR5", "OR8")
RIGS = {"hit_mfs7": "MFS", "hit_selfbuilt7": "SelfBuilt"}
NOTE = (
    "HIT-SM has one recording per class, speed and rig: the time split keeps windows of one "
    "recording in one split region each (separated by a guard gap), so it still lets a model "
    "recognise the recording; the speed and rig splits test on recordings never seen in training"
)


@functools.lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    import pandas as pd

    with resources.files("fault_diag.data").joinpath(CATALOGUE_RESOURCE).open("r") as fh:
        df = pd.read_csv(
            fh,
            dtype={
                "file": "string",
                "rig": "string",
                "class_code": "string",
                "fault": "string",
                "fault_size_deg": "int64",
                "speed_rpm": "int64",
                "sampling_rate_hz": "int64",
                "n_samples": "int64",
                "variable": "string",
                "source_path": "string",
                "sha256": "string",
            },
            keep_default_na=False,
        )
    return df


@functools.lru_cache(maxsize=1)
def _setups() -> dict[str, Setup]:
    from fault_diag.data.setups import ClassSpec, Setup

    out = {}
    for name, rig in RIGS.items():
        out[name] = Setup(
            name,
            f"HIT-SM {rig} rig, 7 classes: Normal + IR/OR x 2/5/8 degrees, 600/900/1200 rpm",
            tuple(ClassSpec(c, {"rig": (rig,), "class_code": (c,)}) for c in CLASSES),
            healthy_class="Normal",
        )
    out["hit_sm7"] = Setup(
        "hit_sm7",
        "HIT-SM both rigs (MFS + SelfBuilt), the same 7 classes: for cross-rig splits",
        tuple(ClassSpec(c, {"class_code": (c,)}) for c in CLASSES),
        healthy_class="Normal",
    )
    return out


class HITSMSource(DataSource):
    """HIT-SM bearing recordings (see the module docstring)."""

    name = "hit_sm"
    title = "HIT-SM"
    description = (
        "HIT-SM (Harbin Institute of Technology): MFS and SelfBuilt rigs x 7 classes x "
        "600/900/1200 rpm, 51.2 kHz"
    )
    default_setup = "hit_mfs7"
    conditions = (
        Condition("speed", "speed_rpm", "speeds", "shaft speed, rpm (600, 900, 1200)"),
        Condition("rig", "rig", "rigs", "test rig (MFS, SelfBuilt)"),
    )
    channels = (SINGLE_VARIABLE,)
    # 25.6 kHz keeps the 2-10 kHz band where the fault impacts ring (README: envelope analysis).
    config_defaults = {"channel": SINGLE_VARIABLE, "fs_hz": 25600}
    dir_env = "FAULT_DIAG_HIT_SM_DIR"
    base_url_env = "FAULT_DIAG_HIT_SM_BASE_URL"
    note = NOTE

    def catalogue(self) -> pd.DataFrame:
        return _load().copy()

    def setups(self) -> dict[str, Setup]:
        return dict(_setups())

    def validate_config(self, cfg: DataConfig) -> None:
        from fault_diag.data.errors import ConfigError

        if cfg.channel != SINGLE_VARIABLE:
            raise ConfigError(
                f"data.channel={cfg.channel!r} is invalid: expected {SINGLE_VARIABLE!r} for HIT-SM "
                "setups (each file holds one signal, under a name that changes from file to file)"
            )

    def url(self, key: str, base_url: str | None = None) -> str:
        cat = _load()
        rows = cat[cat["file"] == key]
        if not len(rows):
            raise NoUsableVariableError(f"{key} is not a file of the HIT-SM catalogue")
        base = self.base_url(base_url) or OFFICIAL_BASE_URL
        return f"{base}/{quote(str(rows['source_path'].iloc[0]))}"

    def known_rate(self, path: Path) -> int | None:
        key = f"{path.parent.name}/{path.name}"
        cat = _load()
        rows = cat[cat["file"] == key]
        return int(rows["sampling_rate_hz"].iloc[0]) if len(rows) else None

    def spec_for(self, row: pd.Series, root: Path, cfg: DataConfig) -> RecordingSpec:
        from fault_diag.data.setups import RecordingSpec

        return RecordingSpec(
            key=str(row["file"]),
            path=root / str(row["file"]),
            class_name=str(row["class_name"]),
            fs_hz=int(row["sampling_rate_hz"]),
            load_hp=None,
            channel=cfg.channel,
            file_number=None,
            sha256=str(row["sha256"]) or None,
            extra={
                "rig": str(row["rig"]),
                "speed_rpm": int(row["speed_rpm"]),
                "fault": str(row["fault"]),
                "fault_size_deg": int(row["fault_size_deg"]),
            },
            conditions={"speed": int(row["speed_rpm"]), "rig": str(row["rig"])},
            expected_variable=str(row["variable"]),
        )

    def read(self, spec: RecordingSpec) -> Signal:
        return read_single_variable(spec.path, spec.expected_variable)


def read_single_variable(path: str | Path, expected: str | None = None) -> Signal:
    """The one variable of a HIT-SM ``.mat`` file (the only name not starting with ``__``).

    Raises :class:`NoUsableVariableError` when the file holds no such variable or several, and
    :class:`RecordingReadError` when it is not a numeric 1-D signal (``(N,)``, ``(N, 1)``, ``(1, N)``).
    A name other than the catalogue's ``expected`` is noted in the signal, not refused (the name
    carries no meaning; the file's SHA-256 is what identifies it).
    """
    from fault_diag.data.readers import (
        Signal,
        _as_vector,
        _fail,
        _read_mat_values,
        check_finite,
        mat_variables,
    )

    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file does not exist")
    variables = [v for v in mat_variables(path) if not v.name.startswith("__")]
    if len(variables) != 1:
        listed = ", ".join(v.describe() for v in variables) or "none"
        raise NoUsableVariableError(
            f"{path}: a HIT-SM file holds exactly one variable (any name not starting with '__'), "
            f"but this one holds {len(variables)}: {listed}"
        )
    var = variables[0]
    if not var.is_vector:
        raise _fail(
            path,
            f"its only variable {var.describe()} is not a 1-D signal (expected N x 1, 1 x N or N "
            "numbers)",
        )
    values = _read_mat_values(path, [var.name])
    if var.name not in values:
        raise _fail(path, f"variable {var.name!r} is listed but could not be read (truncated?)")
    data = _as_vector(values[var.name], path, var.name)
    check_finite(data, path, var.name)
    notes = []
    if expected and var.name != expected:
        notes.append(f"variable {var.name!r} where the catalogue lists {expected!r}")
    return Signal(data=data, source=str(path), variable=var.name, notes=notes, single_variable=True)
