"""The manifest of a generic dataset: read it, and check every row before any recording is read.

A manifest is a CSV file with one row per recording (format: ``docs/own-data.md``). Mistakes in it
used to pass silently: a misspelled path dropped the recording with a log line, a label typo became a
class of its own, ``load_hp=heavy`` became NaN, a rate the ``.mat`` file contradicts was resampled
without a word. :func:`check_manifest` therefore looks at every row first and collects every problem:

- structure (unreadable file, a required column absent, a reserved or repeated column name, no rows,
  a recording listed twice): :class:`ManifestError` at once, since no row can be trusted;
- per row, each naming the manifest, the line (1-based, as an editor shows it: the header is line 1)
  and the column, and saying what was expected: an empty required value; ``fs_hz`` that is not a
  positive integer; ``load_hp`` that is not a number (or empty where ``data.split=load`` /
  ``data.loads`` select by it); ``sha256`` that is not 64 hex digits; a label outside
  ``data.classes`` (with the closest declared class when there is one); a file that is absent, of an
  unsupported format or unreadable; a sampling rate the file records about itself (a scalar ``fs``
  variable, or the CWRU catalogue's rate for a CWRU file) that differs from ``fs_hz``.

All row problems are raised together (:class:`ManifestValidationError`, the first
:data:`MAX_LISTED_PROBLEMS` listed). With ``data.lenient=true`` the rows with problems are dropped
instead, each named in a warning kept in :attr:`CheckedManifest.warnings` (the dataset's ``missing``
record, which ``fd-data summary`` shows).

Without ``data.classes`` every distinct label is a class; labels that look like near-misses of each
other (a case difference, or a difflib similarity of at least :data:`NEAR_MISS_CUTOFF`, digits aside
so that ``IR007``/``IR014`` are not flagged) only produce a warning: they may be deliberate, and
declaring ``data.classes`` is how a user says which labels exist (and silences the warning).
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fault_diag.data.config import DataConfig
from fault_diag.data.errors import (
    ConfigError,
    ManifestError,
    ManifestValidationError,
    MissingDataFolderError,
    RecordingReadError,
)
from fault_diag.data.readers import SUPPORTED_SUFFIXES, recorded_rate

log = logging.getLogger(__name__)

MANIFEST_REQUIRED = ("file", "label", "fs_hz")
MANIFEST_OPTIONAL = ("channel", "load_hp", "sha256")
RESERVED_META = {
    "split",
    "start",
    "stop",
    "start_orig",
    "stop_orig",
    "class_name",
    "variable",
    "fs_orig_hz",
    "file_number",
}
#: Problems shown in one error (the rest are counted): enough to see a pattern, short enough to read.
MAX_LISTED_PROBLEMS = 10
#: difflib ratio from which two labels count as a near-miss ('iner'/'inner' is 0.89).
NEAR_MISS_CUTOFF = 0.8
# problem(row, column, message, missing_file=False): how the checks report what they find
_Report = Callable[..., None]
LINE = "_line"  # column of the parsed table holding each row's line number in the manifest
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class ManifestProblem:
    """One problem of one manifest row."""

    manifest: Path
    line: int  # 1-based line of the row in the manifest (the header is line 1)
    column: str | None  # None: the row as a whole
    message: str  # what is wrong and what was expected
    file: str | None = None  # the row's ``file`` entry, to name a dropped row
    missing_file: bool = False  # the recording is absent (listed with the dataset's missing files)

    def describe(self, with_manifest: bool = True) -> str:
        """``manifest.csv, line 4, column 'label': ...`` (without the manifest: ``line 4, ...``)."""
        col = f", column {self.column!r}" if self.column else ""
        where = f"{self.manifest}, line {self.line}" if with_manifest else f"line {self.line}"
        return f"{where}{col}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the dataset's ``missing`` record)."""
        return {
            "line": self.line,
            "column": self.column,
            "file": self.file,
            "problem": self.message,
        }


@dataclass
class CheckedManifest:
    """A manifest after :func:`check_manifest`: the usable rows and what was said about the rest."""

    path: Path
    root: Path
    table: pd.DataFrame  # usable rows, typed; column ``_line`` holds each row's line number
    class_names: list[str]
    all_rows: pd.DataFrame  # every row (dropped and unselected ones too), same columns
    dropped: list[ManifestProblem] = field(default_factory=list)  # lenient: the rows left out
    warnings: list[str] = field(default_factory=list)  # every warning, as logged

    def missing_files(self) -> list[ManifestProblem]:
        """Dropped rows whose recording file is absent (lenient only)."""
        return [p for p in self.dropped if p.missing_file]


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest and check its structure (not its rows: see :func:`check_manifest`).

    Returns one row per record, the values as written (stripped of surrounding blanks), with
    ``fs_hz``/``load_hp`` still text and grouping columns typed as pandas infers them, plus the
    column ``_line``. Raises :class:`ManifestError` naming the manifest (and the line) when the file
    cannot be read or its header is wrong.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    try:
        # utf-8-sig: spreadsheet programs often start a CSV export with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"manifest {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
        ) from exc
    except OSError as exc:
        raise ManifestError(f"manifest {path}: cannot be read ({exc})") from exc
    header, records = _records(path, text)
    if not header:
        raise ManifestError(
            f"manifest {path} is empty: expected a header row {list(MANIFEST_REQUIRED)}"
        )
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ManifestError(f"manifest {path}, line 1: column(s) {repeated} appear more than once")
    absent = [c for c in MANIFEST_REQUIRED if c not in header]
    if absent:
        raise ManifestError(
            f"manifest {path}: missing column(s) {absent}; required: {list(MANIFEST_REQUIRED)}, "
            f"optional: {list(MANIFEST_OPTIONAL)}, any other column is kept as a grouping column"
        )
    clash = sorted(RESERVED_META & set(header))
    if clash:
        raise ManifestError(
            f"manifest {path}: column names {clash} are reserved for window metadata"
        )
    if not records:
        raise ManifestError(f"manifest {path} lists no recordings")
    lines = [line for line, _ in records]
    width = len(header)
    # Re-serialise (stripped, one record per line) and let pandas type the grouping columns exactly
    # as it did when it read manifests itself; a row with too many fields is cut to the header's
    # width here and reported by check_manifest (too few are padded, as pandas pads them).
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for _, values in records:
        writer.writerow((values + [""] * width)[:width])
    text = buf.getvalue()
    df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    extra = [c for c in header if c not in (*MANIFEST_REQUIRED, *MANIFEST_OPTIONAL)]
    if extra:  # grouping columns: typed by pandas, empty cells missing, as before
        df[extra] = pd.read_csv(io.StringIO(text), usecols=extra)[extra]
    df[LINE] = lines
    df.attrs["field_counts"] = [len(values) for _, values in records]
    df.attrs["width"] = width
    return df


def _records(path: Path, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, values)]) of the CSV ``text``; blank lines skipped."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] = []
    records: list[tuple[int, list[str]]] = []
    last = 0  # line number where the previous record ended
    try:
        for values in reader:
            first = last + 1  # a quoted field may span lines: the record starts after the last one
            last = reader.line_num
            if not values or all(not v.strip() for v in values) and len(values) == 1:
                continue
            values = [v.strip() for v in values]
            if not header:
                header = values
            else:
                records.append((first, values))
    except csv.Error as exc:
        raise ManifestError(
            f"manifest {path}, line {reader.line_num}: not valid CSV ({exc})"
        ) from exc
    return header, records


def check_manifest(cfg: DataConfig) -> CheckedManifest:
    """Read ``cfg.manifest`` and check every row (see the module docstring).

    Raises :class:`ManifestError` for a broken structure, :class:`MissingDataFolderError` when the
    recordings folder is absent, and :class:`ManifestValidationError` listing the row problems
    unless ``cfg.lenient`` (then the rows are dropped and named in ``warnings``).
    """
    if not cfg.manifest:
        raise ConfigError("data.manifest must name a manifest CSV for setup=generic")
    path = Path(cfg.manifest).expanduser().resolve()
    df = read_manifest(path)
    root = Path(cfg.root).expanduser().resolve() if cfg.root else path.parent
    if not root.is_dir():
        raise MissingDataFolderError(
            f"recordings folder {root} (for manifest {path}) does not exist"
        )
    _check_duplicates(path, root, df)
    declared = _declared_classes(cfg)
    problems: list[ManifestProblem] = []

    def problem(
        row: Mapping[str, Any], column: str | None, message: str, missing: bool = False
    ) -> None:
        problems.append(
            ManifestProblem(path, int(row[LINE]), column, message, row["file"] or None, missing)
        )

    by_load = cfg.split == "load" or cfg.loads is not None
    wanted_loads = (
        set(cfg.train_loads) | set(cfg.test_loads) if cfg.split == "load" else set(cfg.loads or [])
    )
    fs_values: list[int | None] = []
    load_values: list[float | None] = []
    selected: list[bool] = []
    counts = df.attrs["field_counts"]
    for i, row in enumerate(df.to_dict("records")):
        if counts[i] > df.attrs["width"]:
            problem(
                row,
                None,
                f"{counts[i]} fields but the header has {df.attrs['width']} (a comma inside a "
                'value? quote the value: "a,b")',
            )
        for col in ("file", "label"):
            if not row[col]:
                problem(row, col, f"empty, expected {_EXPECTED[col]}")
        fs_values.append(_parse_rate(row, problem))
        load_values.append(_parse_load(row, problem, by_load, cfg))
        sha = row.get("sha256") or ""
        if sha and not _HEX64.match(sha):
            problem(row, "sha256", f"{sha!r} is not a SHA-256, expected 64 hex digits or empty")
        label = row["label"]
        if label and declared is not None and label not in declared:
            problem(row, "label", _undeclared(label, declared))
        load = load_values[-1]
        # Rows left out by data.loads / the load split are a selection, not a problem: their files
        # are not looked at (they may not have been recorded yet).
        selected.append(not by_load or (load is not None and load in wanted_loads))
    # File checks last, and only for selected rows: they open the files (headers only).
    for i, row in enumerate(df.to_dict("records")):
        if selected[i] and row["file"]:
            _check_file(row, fs_values[i], root, problem)
    df["fs_hz"] = pd.array(fs_values, dtype="Int64")
    if "load_hp" in df.columns:
        df["load_hp"] = pd.array(load_values, dtype="Float64").astype(float)
    problems.sort(key=lambda p: (p.line, _COLUMN_ORDER.get(p.column, 99)))
    if problems and not cfg.lenient:
        raise _validation_error(path, problems)
    bad_lines = {p.line for p in problems}
    keep = [
        sel and int(line) not in bad_lines for sel, line in zip(selected, df[LINE], strict=True)
    ]
    table = df[keep].reset_index(drop=True)
    table["fs_hz"] = table["fs_hz"].astype("int64")
    # The classes are the labels of every row whose label is fine, whatever else is wrong with it
    # or whether data.loads selects it: a class whose recordings are all absent (or outside the
    # loads) stays a class and the coverage check says it has no recording, rather than the task
    # quietly losing a class.
    bad_label = {p.line for p in problems if p.column == "label"}
    labelled = df[(df["label"] != "") & ~df[LINE].isin(bad_label)]
    names = list(declared) if declared is not None else sorted(set(labelled["label"]))
    if not names:
        raise _validation_error(path, problems, "no row with a usable label is left")
    warnings_ = [f"{p.describe()} - row dropped (data.lenient=true)" for p in problems]
    if declared is None:
        warnings_ += near_miss_labels(path, labelled)
    for w in warnings_:
        log.warning("%s", w)
    return CheckedManifest(path, root, table, names, df, problems, warnings_)


_EXPECTED = {
    "file": "the path of the recording (relative to the manifest's folder or data.root, or absolute)",
    "label": "the class name of the recording",
}
_COLUMN_ORDER = {None: 0, "file": 1, "label": 2, "fs_hz": 3, "load_hp": 4, "sha256": 5}


def _declared_classes(cfg: DataConfig) -> list[str] | None:
    """``data.classes`` checked for repeats, or None when not given."""
    if cfg.classes is None:
        return None
    wanted = [str(c) for c in cfg.classes]
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"data.classes lists a class twice: {wanted}")
    return wanted


def _undeclared(label: str, declared: list[str]) -> str:
    close = difflib.get_close_matches(label, declared, n=1, cutoff=0.6)
    folded = [c for c in declared if c.casefold() == label.casefold()]
    hint = folded or close
    return f"{label!r} is not one of data.classes {declared}" + (
        f" (did you mean {hint[0]!r}?)" if hint else " (add it to data.classes or fix the label)"
    )


def _parse_rate(row: Mapping[str, Any], problem: _Report) -> int | None:
    text = row["fs_hz"]
    expected = "the file's sampling rate, a positive integer in Hz (e.g. 12000)"
    if not text:
        problem(row, "fs_hz", f"empty, expected {expected}")
        return None
    try:
        value = float(text)
    except ValueError:
        problem(row, "fs_hz", f"{text!r} is not a number, expected {expected}")
        return None
    if not (value > 0 and value == int(value)):  # NaN and inf fail here too
        problem(row, "fs_hz", f"{text!r} is not valid, expected {expected}")
        return None
    return int(value)


def _parse_load(
    row: Mapping[str, Any], problem: _Report, by_load: bool, cfg: DataConfig
) -> float | None:
    if "load_hp" not in row:
        return None
    text = row["load_hp"]
    if not text:
        if by_load:
            problem(
                row,
                "load_hp",
                f"empty, but {_selection(cfg)} selects rows by it: expected a number",
            )
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        problem(
            row,
            "load_hp",
            f"{text!r} is not a number, expected the operating condition as a number (load in "
            "HP, speed step, session, ...) or empty",
        )
        return None
    return value


def _selection(cfg: DataConfig) -> str:
    if cfg.split == "load":
        return f"data.split=load (train_loads {list(cfg.train_loads)}, test_loads {list(cfg.test_loads)})"
    return f"data.loads={list(cfg.loads or [])}"


def _resolve(entry: str, root: Path) -> Path:
    path = Path(entry).expanduser()
    return path if path.is_absolute() else root / path


def _check_duplicates(path: Path, root: Path, df: pd.DataFrame) -> None:
    """A recording listed twice (also as ``./a.csv`` and ``a.csv``): the audit tracks files."""
    seen: dict[Path, int] = {}
    twice: dict[str, list[int]] = {}
    for entry, line in zip(df["file"], df[LINE], strict=True):
        if not entry:
            continue
        where = _resolve(entry, root).resolve()
        if where in seen:
            twice.setdefault(entry, [seen[where]]).append(int(line))
        else:
            seen[where] = int(line)
    if twice:
        lines = "; ".join(f"{k}: lines {', '.join(map(str, v))}" for k, v in twice.items())
        raise ManifestError(
            f"manifest {path}: file(s) listed twice {sorted(twice)} ({lines}); a recording must "
            "appear once so the split audit can track it"
        )


def _check_file(row: Mapping[str, Any], fs: int | None, root: Path, problem: _Report) -> None:
    """Existence, format, readability and recorded rate (vs ``fs``) of the row's recording."""
    where = _resolve(row["file"], root)
    suffix = where.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        problem(
            row,
            "file",
            f"unsupported format {suffix or '(no suffix)'!r}, expected one of "
            f"{list(SUPPORTED_SUFFIXES)}",
        )
        return
    if where.is_dir():
        problem(row, "file", f"{where} is a folder, not a recording file")
        return
    if not where.is_file():
        problem(row, "file", f"no such file: {where}", True)
        return
    try:
        rate = recorded_rate(where)
    except RecordingReadError as exc:
        problem(row, "file", f"unreadable recording ({exc})")
        return
    if rate is not None and fs is not None and round(rate.hz) != fs:
        problem(
            row,
            "fs_hz",
            f"{fs} Hz, but the file records {rate.hz:g} Hz ({rate.source}), expected "
            f"fs_hz={rate.hz:g} (a wrong rate shifts every fault frequency)",
        )


def _validation_error(
    path: Path, problems: list[ManifestProblem], outcome: str | None = None
) -> ManifestValidationError:
    # The header names the manifest once; each line names the row and column. No line ends in a
    # colon and none holds a semicolon, so a CLI that joins the lines with '; ' keeps them apart.
    shown = [p.describe(with_manifest=False) for p in problems[:MAX_LISTED_PROBLEMS]]
    more = len(problems) - len(shown)
    n_rows = len({p.line for p in problems})
    advice = (
        f"{outcome}, fix them"
        if outcome
        else "fix them, or set data.lenient=true to drop these rows with a warning"
    )
    lines = [
        f"manifest {path}: {len(problems)} problem(s) in {n_rows} row(s) ({advice})",
        *(f"  {s}" for s in shown),
    ]
    if more:
        lines.append(f"  ... and {more} more")
    return ManifestValidationError("\n".join(lines), problems)


def near_miss_labels(path: Path, table: pd.DataFrame) -> list[str]:
    """Warnings for pairs of labels that look like one label mistyped (see the module docstring)."""
    rows: dict[str, list[int]] = {}
    for label, line in zip(table["label"], table[LINE], strict=True):
        rows.setdefault(str(label), []).append(int(line))
    out = []
    for a, b in _near_pairs(rows):
        rare, common = sorted((a, b), key=lambda lab: (len(rows[lab]), lab))
        out.append(
            f"manifest {path}: labels {rare!r} ({_lines(rows[rare])}) and {common!r} "
            f"({_lines(rows[common])}) are nearly the same name, and each is a class of its own; "
            f"if {rare!r} is a typo, fix it. Declaring the classes (data.classes=[...]) makes any "
            "other label an error and silences this warning"
        )
    return out


def _near_pairs(rows: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    labels = sorted(rows)
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            fa, fb = a.casefold(), b.casefold()
            # Labels that differ only in their numbers (IR007/IR014, run1/run2) are deliberate.
            if fa != fb and re.sub(r"\d+", "#", fa) == re.sub(r"\d+", "#", fb):
                continue
            if fa == fb or difflib.SequenceMatcher(None, fa, fb).ratio() >= NEAR_MISS_CUTOFF:
                yield a, b


def _lines(lines: list[int]) -> str:
    if len(lines) == 1:
        return f"1 row, line {lines[0]}"
    shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
    return f"{len(lines)} rows, lines {shown}"
