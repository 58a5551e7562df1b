"""Convert CWRU ``.mat`` recordings to plain CSV files, as a stand-in for "your own data".

Used by the worked example of docs/own-data.md: a data-acquisition system usually exports one CSV per
recording, one column per accelerometer and no sampling rate inside the file. This script writes
exactly that from CWRU files: columns ``de_g`` (drive end) and ``fe_g`` (fan end), acceleration in g,
one row per sample, at the file's original rate (the normal baseline 97-100 is 48 kHz, the 12 kHz
drive-end fault files 12 kHz); the rate is printed, to be written into the manifest.

    python scripts/cwru_to_csv.py --out ~/my_rig 97=healthy/run1.csv 105=inner/run1.csv

Each ``NUMBER=PATH`` pair reads CWRU file NUMBER (from ``$FAULT_DIAG_DATA_DIR``, else the download
folder, downloading it when missing) and writes PATH under ``--out``. Files are written atomically
(temporary file in the same folder, then renamed), so an interrupted run leaves no half-written CSV.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fault_diag.data import DataError, fetch_file, file_info, read_mat
from fault_diag.io import atomic_write

COLUMNS = {"DE": "de_g", "FE": "fe_g"}


class ConversionError(ValueError):
    """A ``NUMBER=PATH`` argument is malformed or names an unusable output path."""


def parse_pair(text: str) -> tuple[int, Path]:
    """``"105=inner/run1.csv"`` -> ``(105, Path("inner/run1.csv"))``; raises :class:`ConversionError`."""
    number, sep, rel = text.partition("=")
    if not sep or not number.strip().isdigit() or not rel.strip():
        raise ConversionError(
            f"{text!r}: expected NUMBER=PATH, e.g. 105=inner/run1.csv (a CWRU file number, then "
            "the CSV path to write, relative to --out)"
        )
    path = Path(rel.strip())
    if path.is_absolute() or ".." in path.parts or path.suffix.lower() != ".csv":
        raise ConversionError(f"{text!r}: PATH must be a relative path ending in .csv inside --out")
    return int(number), path


def convert(number: int, target: Path) -> tuple[int, int, list[str]]:
    """Write CWRU file ``number`` to ``target`` as CSV; returns (samples, rate in Hz, columns)."""
    source = fetch_file(number)
    columns: dict[str, np.ndarray] = {}
    for channel, name in COLUMNS.items():
        try:
            columns[name] = read_mat(source, channel).data
        except DataError:
            if channel == "DE":  # the drive-end channel is the one the example needs
                raise
    n = min(v.size for v in columns.values())  # channels of one file have the same length
    table = np.column_stack([v[:n] for v in columns.values()])
    # 8 significant digits keep the .mat doubles' information (the sensor gives ~5).
    atomic_write(
        target,
        lambda fh: np.savetxt(
            fh, table, fmt="%.8g", delimiter=",", header=",".join(columns), comments=""
        ),
        binary=False,
    )
    return n, int(file_info(number)["sampling_rate_hz"]), list(columns)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad arguments or unreadable source)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder the CSV paths start from")
    parser.add_argument("pairs", nargs="+", metavar="NUMBER=PATH", help="CWRU file -> CSV path")
    args = parser.parse_args(argv)
    try:
        jobs = [parse_pair(p) for p in args.pairs]
        for number, rel in jobs:
            n, fs_hz, cols = convert(number, args.out.expanduser() / rel)
            print(f"{number}.mat -> {rel}: {n} samples at {fs_hz} Hz, columns {','.join(cols)}")
    except (ConversionError, DataError, KeyError) as exc:
        print(f"cwru_to_csv: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
