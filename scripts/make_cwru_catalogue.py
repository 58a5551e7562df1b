"""Generate ``fault_diag/data/cwru_catalogue.csv``: every file the CWRU Bearing Data Center publishes.

The file-number tables below are transcribed from the CWRU Bearing Data Center pages
(https://engineering.case.edu/bearingdatacenter): "Normal Baseline Data", "12k Drive End Bearing Fault
Data", "48k Drive End Bearing Fault Data" and "12k Fan End Bearing Fault Data" (161 files). The SHA-256
column comes from a hash list of the published files (``cwru_sha256.csv``: columns file, sha256,
sampling_rate_hz, location, fault, fault_size_in, load_hp, or_position); files it does not cover keep an
empty hash (downloaded without a check, reported as "unverified").

Run once, when the tables or the hash list change::

    python scripts/make_cwru_catalogue.py --sha256-csv ../shared/data/cwru_sha256.csv

The script refuses to write when the hash list disagrees with the tables (number, rate, location, fault,
size, load, outer-race position), so the two sources check each other.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from fault_diag.io import atomic_write_bytes

OFFICIAL_URL = "https://engineering.case.edu/sites/default/files/{n}.mat"

# Nominal motor speed per load (CWRU site tables); the RPM stored in each file differs slightly.
RPM_NOMINAL = {0: 1797, 1: 1772, 2: 1750, 3: 1730}

FAULT_NAMES = {"N": "normal", "IR": "inner_race", "B": "ball", "OR": "outer_race"}

# (class code, file numbers at 0/1/2/3 HP; None where the site has no file for that load)
_Row = tuple[str, tuple[int | None, int | None, int | None, int | None]]

NORMAL: list[_Row] = [("N", (97, 98, 99, 100))]

DE_12K: list[_Row] = [
    ("IR007", (105, 106, 107, 108)),
    ("B007", (118, 119, 120, 121)),
    ("OR007@6", (130, 131, 132, 133)),
    ("OR007@3", (144, 145, 146, 147)),
    ("OR007@12", (156, 158, 159, 160)),
    ("IR014", (169, 170, 171, 172)),
    ("B014", (185, 186, 187, 188)),
    ("OR014@6", (197, 198, 199, 200)),
    ("IR021", (209, 210, 211, 212)),
    ("B021", (222, 223, 224, 225)),
    ("OR021@6", (234, 235, 236, 237)),
    ("OR021@3", (246, 247, 248, 249)),
    ("OR021@12", (258, 259, 260, 261)),
    ("IR028", (3001, 3002, 3003, 3004)),
    ("B028", (3005, 3006, 3007, 3008)),
]

DE_48K: list[_Row] = [
    ("IR007", (109, 110, 111, 112)),
    ("B007", (122, 123, 124, 125)),
    ("OR007@6", (135, 136, 137, 138)),
    ("OR007@3", (148, 149, 150, 151)),
    ("OR007@12", (161, 162, 163, 164)),
    ("IR014", (174, 175, 176, 177)),
    ("B014", (189, 190, 191, 192)),
    ("OR014@6", (201, 202, 203, 204)),
    ("IR021", (213, 214, 215, 217)),
    ("B021", (226, 227, 228, 229)),
    ("OR021@6", (238, 239, 240, 241)),
    ("OR021@3", (250, 251, 252, 253)),
    ("OR021@12", (262, 263, 264, 265)),
]

FE_12K: list[_Row] = [
    ("IR007", (278, 279, 280, 281)),
    ("B007", (282, 283, 284, 285)),
    ("OR007@6", (294, 295, 296, 297)),
    ("OR007@3", (298, 299, 300, 301)),
    ("OR007@12", (302, 305, 306, 307)),
    ("IR014", (274, 275, 276, 277)),
    ("B014", (286, 287, 288, 289)),
    ("OR014@3", (310, 309, 311, 312)),
    ("OR014@6", (313, None, None, None)),
    ("IR021", (270, 271, 272, 273)),
    ("B021", (290, 291, 292, 293)),
    ("OR021@6", (315, None, None, None)),
    ("OR021@3", (None, 316, 317, 318)),
]

# (group, sampling rate, bearing location, rows)
GROUPS = [
    # The site does not state the baseline's rate; its spectra show 48 kHz (see data/README.md).
    ("normal", 48000, "DE", NORMAL),
    ("12k_DE", 12000, "DE", DE_12K),
    ("48k_DE", 48000, "DE", DE_48K),
    ("12k_FE", 12000, "FE", FE_12K),
]

NOTES = {
    97: "normal baseline sampled at 48 kHz (not stated on the site): decimate by 4 for 12 kHz tasks",
    98: "normal baseline sampled at 48 kHz: decimate by 4 for 12 kHz tasks",
    99: "normal baseline at 48 kHz; also holds X098_* variables and a stray 'ans': select by number",
    100: "normal baseline sampled at 48 kHz: decimate by 4 for 12 kHz tasks",
}

COLUMNS = [
    "file_number",
    "file_name",
    "group",
    "sampling_rate_hz",
    "location",
    "fault",
    "fault_size_in",
    "load_hp",
    "rpm_nominal",
    "or_position",
    "class_code",
    "url",
    "sha256",
    "notes",
]


def parse_code(code: str) -> tuple[str, str, str]:
    """Split a class code ``OR007@6`` into (fault, fault size in inches, outer-race position)."""
    if code == "N":
        return "normal", "0", ""
    base, _, pos = code.partition("@")
    kind = base.rstrip("0123456789")
    size = base[len(kind) :]
    return FAULT_NAMES[kind], f"0.{size}", f"{pos}:00" if pos else ""


def catalogue_rows() -> list[dict[str, str]]:
    """Every published file as a dict of strings, sorted by file number."""
    rows = []
    for group, fs_hz, location, table in GROUPS:
        for code, numbers in table:
            fault, size, pos = parse_code(code)
            for load_hp, number in enumerate(numbers):
                if number is None:
                    continue
                rows.append(
                    {
                        "file_number": str(number),
                        "file_name": f"{number}.mat",
                        "group": group,
                        "sampling_rate_hz": str(fs_hz),
                        "location": location,
                        "fault": fault,
                        "fault_size_in": size,
                        "load_hp": str(load_hp),
                        "rpm_nominal": str(RPM_NOMINAL[load_hp]),
                        "or_position": pos,
                        "class_code": code,
                        "url": OFFICIAL_URL.format(n=number),
                        "sha256": "",
                        "notes": NOTES.get(number, ""),
                    }
                )
    rows.sort(key=lambda r: int(r["file_number"]))
    numbers = [r["file_number"] for r in rows]
    if len(set(numbers)) != len(numbers):
        raise SystemExit("duplicate file numbers in the tables")
    return rows


def merge_hashes(rows: list[dict[str, str]], sha_csv: Path) -> int:
    """Fill the sha256 column from ``sha_csv``; raise SystemExit on any metadata disagreement."""
    by_name = {r["file_name"]: r for r in rows}
    problems = []
    with sha_csv.open(newline="") as fh:
        hashed = list(csv.DictReader(fh))
    for h in hashed:
        row = by_name.get(h["file"])
        if row is None:
            problems.append(f"{h['file']}: in the hash list but not in the tables")
            continue
        for key in ("sampling_rate_hz", "location", "fault", "load_hp", "or_position"):
            if h[key] != row[key]:
                problems.append(
                    f"{h['file']}: {key} is {h[key]!r} in the hash list, {row[key]!r} here"
                )
        if float(h["fault_size_in"]) != float(row["fault_size_in"]):
            problems.append(
                f"{h['file']}: fault size {h['fault_size_in']} != {row['fault_size_in']}"
            )
        row["sha256"] = h["sha256"].strip().lower()
    if problems:
        raise SystemExit("hash list disagrees with the tables:\n  " + "\n  ".join(problems))
    return len(hashed)


def main(argv: list[str] | None = None) -> int:
    """Write the catalogue CSV (atomically)."""
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sha256-csv",
        type=Path,
        default=here.parent / "shared" / "data" / "cwru_sha256.csv",
        help="hash list (file,sha256,sampling_rate_hz,location,fault,fault_size_in,load_hp,or_position)",
    )
    parser.add_argument(
        "--out", type=Path, default=here / "fault_diag" / "data" / "cwru_catalogue.csv"
    )
    args = parser.parse_args(argv)
    rows = catalogue_rows()
    n_hashed = merge_hashes(rows, args.sha256_csv)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(args.out, buf.getvalue().encode("utf-8"))
    print(f"wrote {args.out}: {len(rows)} files, {n_hashed} with a sha256", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
