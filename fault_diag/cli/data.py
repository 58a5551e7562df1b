"""``fd-data``: download, verify and summarise the recordings (thin layer over ``fault_diag.data``).

    fd-data download [--source cwru] [--setup cwru10] [--files 97 105 ...] [--base-url URL] [--dir DIR]
    fd-data verify   [--source cwru] [--setup cwru10] [--files ...] [--strict] [--json]
    fd-data summary  [--source cwru] [--setup cwru10] [--split time|load|condition] [--config YAML]
                     [--set key=value ...] [--plot PROFILE.png|.svg] [--no-cache] [--json]
    fd-data catalogue [--source cwru] [--group 12k_DE] [--json]

``--source`` names a data source (``cwru``, ``hit_sm``; ``fault_diag.data.sources``); without it the
setup's source is used (default ``cwru``). ``--files`` takes the source's file keys (CWRU: numbers).

Exit codes: 0 ok; 1 a check failed (hash mismatch, unusable setup, failed download); 2 bad arguments
(an unknown setup or file number, a missing or malformed --config, a --set value that is not YAML, a
setting out of range). Every error is one line ``fd-data <command>: error: <message>`` on stderr;
``--debug`` (or ``FAULT_DIAG_DEBUG=1``) adds the traceback. See :mod:`fault_diag.cli.errors`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fault_diag import paths
from fault_diag.cli.errors import (
    NEARLY_FULL,
    add_debug_argument,
    debug_requested,
    free_bytes,
    run_cli,
    yaml_error_text,
)
from fault_diag.data.config import DataConfig
from fault_diag.data.errors import ConfigError, DataError

log = logging.getLogger("fault_diag.cli.data")


# ----------------------------------------------------------------------------- logic (importable)


def setup_file_keys(source: Any, setup: str, loads: Sequence[Any] | None = None) -> list[str]:
    """File keys of every recording of ``setup`` of ``source`` (optionally only the values
    ``loads`` of the source's primary condition: CWRU's load in HP)."""
    cat = source.setup_catalogue(setup)
    if loads is not None:
        cat = cat[cat[source.primary_condition().column].isin(list(loads))]
    return sorted({str(k) for k in cat["file"]})


def source_of(source: str | None, setup: str | None) -> Any:
    """The data source of the command: ``--source`` (checked against ``--setup``), else the setup's,
    else CWRU. An unknown source lists the known ones; a setup of another source is refused."""
    from fault_diag.data.sources import get_source, source_for_setup

    if source is None:
        return source_for_setup(setup) if setup and setup != "generic" else get_source("cwru")
    src = get_source(source)
    if setup is not None and setup not in src.setup_names():
        raise ConfigError(
            f"--setup {setup}: not a setup of source {src.name!r} (its setups: "
            f"{', '.join(src.setup_names())})"
        )
    return src


def _key_name(key: Any) -> str:
    return key if isinstance(key, str) else f"{key}.mat"


def download_source_files(
    source: Any,
    keys: Sequence[str],
    *,
    folder: str | None = None,
    base_url: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`download_files` for any source (file keys instead of CWRU numbers)."""
    override = source.data_dir_override() if folder is None else None
    report = source.fetch(keys, folder=folder, base_url=base_url, progress=progress)
    where = override or (Path(folder).resolve() if folder else source.download_dir())
    env = source.dir_env or paths.DATA_DIR_ENV
    return {
        "folder": str(where),
        "source": f"{env} (never downloads)" if override else "download",
        "data_source": source.name,
        "files": {_key_name(k): str(p) for k, p in report.paths.items()},
        "errors": {_key_name(k): msg for k, msg in report.errors.items()},
    }


def verify_report(
    keys: Sequence[str] | None = None, folder: str | None = None, source: Any = None
) -> dict[str, Any]:
    """Status (ok / missing / hash_mismatch / unverified) of each catalogue file of ``source``
    (default: CWRU) in the folder (``keys``: the source's file keys; default: all)."""
    if source is None:
        from fault_diag.data.sources import get_source

        source = get_source("cwru")
    statuses = source.verify(keys, folder)
    where = Path(folder).resolve() if folder else source.recordings_dir()
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.status] = counts.get(s.status, 0) + 1
    return {
        "folder": str(where),
        "counts": counts,
        "files": [s.to_dict() for s in statuses],
    }


def spectral_report(ds: Any, plot: str | None = None) -> dict[str, Any]:
    """Band power profile and flags of a built dataset's training windows (plot it to ``plot``).

    The training split is what a model learns its shortcuts from, and looking only at it keeps the
    test windows untouched until the end, even by a data-processing decision such as ``band_hz``.
    Returns shares in percent (classes x bands) and the flags (see :mod:`fault_diag.data.spectral`).
    """
    from fault_diag.data.spectral import band_power_profile, flag_rule, flag_spectral_outliers

    x, y = ds.split("train")
    profile = band_power_profile(x, y, ds.class_names, ds.fs_hz)
    flags = flag_spectral_outliers(profile)
    nyq = ds.fs_hz / 2
    band = ds.protocol.get("band_hz")
    rep: dict[str, Any] = {
        "windows": "train",
        "n_windows": int(sum(profile.n_windows)),
        "description": (
            f"training split, {len(y)} clean windows"
            f"{'' if band is None else f' band-limited to {band[0]:g}-{band[1]:g} Hz'}; per class, "
            f"the mean of each window's share of its 0-{nyq:g} Hz power (rfft, mean removed)"
        ),
        "bands_hz": [list(b) for b in profile.bands_hz],
        "band_labels": profile.band_labels(),
        "shares_percent": {
            name: [None if np.isnan(v) else round(float(v) * 100, 6) for v in row]
            for name, row in zip(profile.class_names, profile.shares, strict=True)
        },
        "class_windows": dict(zip(profile.class_names, profile.n_windows, strict=True)),
        "rule": flag_rule(),
        "flags": [{**f.to_dict(), "text": f.describe()} for f in flags],
        "plot": None,
    }
    if plot:
        from fault_diag.viz import plot_band_profile, save_figure  # lazy: matplotlib only here

        title = f"{ds.protocol.get('setup')}: band power profile of the training windows"
        if band is not None:
            title += f" (band_hz {band[0]:g}-{band[1]:g})"
        rep["plot"] = str(save_figure(plot_band_profile(profile, flags, title=title), plot))
    return rep


def summary_report(
    cfg: DataConfig, *, use_cache: bool = True, plot: str | None = None
) -> dict[str, Any]:
    """Build ``cfg``'s dataset and describe it (windows per class x split, rates, missing, audit,
    healthy class, band filter, band power profile + flags; the profile plot goes to ``plot``)."""
    from fault_diag.data.dataset import build_dataset
    from fault_diag.data.levels import level_report

    ds = build_dataset(cfg, use_cache=use_cache)
    table = ds.summary()
    x_train, y_train = ds.split("train")
    rates = sorted({int(r) for r in ds.meta["fs_orig_hz"].unique()})
    return {
        "setup": cfg.setup,
        "split": cfg.split,
        "n_windows": len(ds),
        "window_length": ds.window_length,
        "fs_hz": ds.fs_hz,
        "source_rates_hz": rates,
        "resampling": sorted(set(ds.protocol["resampling"].values())),
        "channel": ds.channel,
        "class_names": ds.class_names,
        "windows": {
            str(c): {str(k): int(v) for k, v in row.items()} for c, row in table.iterrows()
        },
        "missing": ds.missing,
        "audit": ds.audit.to_dict(),
        "healthy_class": ds.healthy_class,
        "band_hz": ds.protocol.get("band_hz"),
        "band_filter": ds.protocol.get("band_filter"),
        "spectral": spectral_report(ds, plot),
        "levels": level_report(x_train, y_train, ds.class_names),
        "from_cache": ds.from_cache,
        "protocol": {k: v for k, v in ds.protocol.items() if k not in ("recordings", "resampling")},
    }


# ----------------------------------------------------------------------------- presentation


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _text_summary(rep: dict[str, Any]) -> str:
    proto = rep["protocol"]
    split = rep["split"]
    if split == "condition":
        split = (
            f"condition split on {proto.get('condition')}: train {proto.get('train_conditions')}, "
            f"test {proto.get('test_conditions')}"
        )
    elif split == "load":
        split = f"load split: train {proto.get('train_loads')}, test {proto.get('test_loads')}"
    else:
        split += " split"
    lines = [
        f"setup {rep['setup']} ({split}): {rep['n_windows']} windows of "
        f"{rep['window_length']} samples at {rep['fs_hz']} Hz, channel {rep['channel']}",
        f"source rates: {rep['source_rates_hz']} Hz; resampling: {'; '.join(rep['resampling'])}",
        "",
    ]
    if proto.get("source"):
        lines.insert(0, f"source {proto['source']}")
    rows = rep["windows"]
    cols = ["train", "val", "test", "total"]
    width = max(len(c) for c in rows) + 2
    lines.append("class".ljust(width) + "".join(c.rjust(8) for c in cols))
    for name, row in rows.items():
        lines.append(name.ljust(width) + "".join(str(row[c]).rjust(8) for c in cols))
    miss = rep["missing"]
    what = miss.get("condition", "loads")
    lines.append("")
    if miss["files"]:
        lines.append(f"missing files: {', '.join(miss['files'])} (in {miss['folder']})")
        for cls, loads in miss["loads"].items():
            lines.append(f"  {cls}: {what} {loads} absent")
    else:
        lines.append("missing files: none")
    for cls, loads in miss.get("not_published", {}).items():
        lines.append(f"  {cls}: {what} {loads} not published")
    if miss["classes"]:
        lines.append(f"missing classes: {', '.join(miss['classes'])}")
    # data.lenient=true: the manifest rows that were dropped, and what the check warned about
    dropped = miss.get("dropped_rows") or []
    if dropped:
        lines.append(f"manifest rows dropped (data.lenient=true): {len(dropped)}")
        for row in dropped:
            column = f", column {row['column']!r}" if row.get("column") else ""
            lines.append(f"  line {row['line']}{column}: {row['problem']}")
    for warning in miss.get("warnings") or []:
        if not warning.endswith("row dropped (data.lenient=true)"):  # listed just above
            lines.append(f"manifest warning: {warning}")
    a = rep["audit"]
    verdict = "PASSED" if a["passed"] else "FAILED"
    lines.append(
        f"leak audit: {verdict} ({a['n_files']} files, {a['n_val_windows']} val + "
        f"{a['n_test_windows']} test windows checked against {a['n_train_windows']} training "
        f"windows, margin {a['margin_samples']} samples, closest eval window "
        f"{a['min_gap_samples']} samples from training)"
    )
    hop = rep["protocol"].get("eval_hop")
    overlap = "overlapping" if rep["protocol"].get("eval_windows_overlap") else "non-overlapping"
    lines.append(
        f"evaluation windows: {overlap} (eval_hop {hop}); distinct samples: val "
        f"{a.get('n_val_samples_distinct')}, test {a.get('n_test_samples_distinct')}"
    )
    lines.append(f"healthy class: {rep['healthy_class'] or 'none'}")
    lines.append(f"band filter: {rep['band_filter'] or 'none (data.band_hz: null)'}")
    lines.append("")
    lines.extend(_text_spectral(rep["spectral"]))
    if rep.get("levels"):
        from fault_diag.data.levels import level_lines

        lines.append("")
        lines.extend(level_lines(rep["levels"]))
    lines.append(f"(from cache: {rep['from_cache']})")
    return "\n".join(lines)


def _text_spectral(sp: dict[str, Any]) -> list[str]:
    labels = sp["band_labels"]
    shares = sp["shares_percent"]
    width = max(len(c) for c in shares) + 2
    col = max(7, *(len(b) + 1 for b in labels))
    lines = [
        f"band power profile, % ({sp['description']}):",
        "class".ljust(width) + "".join(b.rjust(col) for b in labels),
    ]
    for name, row in shares.items():
        cells = ("-" if v is None else f"{v:.1f}" for v in row)
        lines.append(name.ljust(width) + "".join(c.rjust(col) for c in cells))
    if sp["flags"]:
        lines.append(f"spectral flags ({len(sp['flags'])}; rule: {sp['rule']}):")
        lines.extend(f"  {f['text']}" for f in sp["flags"])
    else:
        lines.append(f"spectral flags: none (rule: {sp['rule']})")
    if sp.get("plot"):
        lines.append(f"profile plot: {sp['plot']}")
    return lines


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. --set window_length=1024)")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"--set {item!r}: the value is not valid YAML ({yaml_error_text(exc)}); quote a "
                "list as --set 'classes=[a, b]'"
            ) from exc
    return out


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fd-data", description="Download, verify and summarise vibration recordings."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_debug_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    def debug(p: argparse.ArgumentParser) -> None:
        # also accepted after the command; SUPPRESS keeps the subparser from resetting the
        # top-level value (fd-data --debug summary)
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="traceback on error"
        )

    def common(p: argparse.ArgumentParser, setup_default: str | None) -> None:
        p.add_argument(
            "--source", help="data source (cwru, hit_sm; default: the setup's, else cwru)"
        )
        p.add_argument(
            "--setup",
            default=setup_default,
            help="class setup (cwru10, cwru4, hit_mfs7, hit_selfbuilt7, hit_sm7)",
        )
        p.add_argument("--json", action="store_true", help="machine-readable output")
        debug(p)

    p = sub.add_parser("download", help="fetch the files of a setup (or --files)")
    common(p, None)  # default: the source's default setup (cwru10)
    p.add_argument("--files", nargs="+", metavar="F", help="file keys (CWRU: numbers, e.g. 97 105)")
    p.add_argument("--loads", nargs="+", type=int, metavar="HP", help="CWRU: only these loads")
    p.add_argument(
        "--base-url", help="mirror base URL (default $FAULT_DIAG_<SOURCE>_BASE_URL or the official)"
    )
    p.add_argument("--dir", help="target folder (default: paths.download_dir())")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("verify", help="check each local file: ok / missing / hash mismatch")
    common(p, None)
    p.add_argument("--files", nargs="+", metavar="F")
    p.add_argument("--dir", help="folder to check (default: the recordings folder)")
    p.add_argument("--strict", action="store_true", help="also fail when files are missing")

    p = sub.add_parser("summary", help="build a setup and show windows per class and split")
    common(p, None)  # default: the --config file's setup, else DataConfig's (cwru10)
    p.add_argument("--split", choices=["time", "load", "condition"], help="override data.split")
    p.add_argument("--config", help="a data YAML (e.g. conf/data/cwru10_load_split.yaml)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="DataConfig fields")
    p.add_argument("--no-cache", action="store_true", help="rebuild, do not read/write the cache")
    p.add_argument(
        "--plot", metavar="PATH", help="write the band power profile plot (.png or .svg)"
    )

    p = sub.add_parser("catalogue", help="list a source's catalogue (default CWRU)")
    p.add_argument("--source", default="cwru", help="data source (cwru, hit_sm)")
    p.add_argument("--group", help="CWRU: normal | 12k_DE | 48k_DE | 12k_FE")
    p.add_argument("--json", action="store_true")
    debug(p)
    return parser


def _config_from_args(args: argparse.Namespace) -> DataConfig:
    source = getattr(args, "source", None)
    values: dict[str, Any] = {}
    if source is not None:
        src = source_of(source, args.setup)
        values.update(src.config_defaults)
        values["setup"] = src.default_setup
    if args.config:
        path = Path(args.config).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"--config {args.config}: no such file (a data YAML such as "
                "conf/data/cwru10_load_split.yaml)"
            )
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            detail = yaml_error_text(exc) if isinstance(exc, yaml.YAMLError) else str(exc)
            raise ConfigError(f"--config {args.config}: not valid YAML ({detail})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"--config {args.config}: expected a mapping of data settings, got "
                f"{type(loaded).__name__}"
            )
        loaded.pop("defaults", None)
        if source is not None and loaded.get("setup"):
            source_of(source, str(loaded["setup"]))  # a config of another source: refused
        values.update(loaded)
    if args.setup:
        values["setup"] = args.setup
        if source is None and "channel" not in values:
            # a setup of another source than CWRU starts from that source's defaults
            src = source_of(None, args.setup)
            values = {**src.config_defaults, **values}
    if args.split:
        values["split"] = args.split
    values.update(_parse_set(args.set))
    return DataConfig.from_any(values).validate()


def _exit_code(exc: BaseException) -> int | None:
    """A data check that failed (missing recordings, hash mismatch): 1; a bad setting: 2."""
    if isinstance(exc, DataError) and not isinstance(exc, ConfigError):
        return 1
    return None


def _output_hint(args: argparse.Namespace) -> str | None:
    """What the command writes, named by a full-disk error that carries no file name."""
    if args.command == "summary":
        candidates = {f"the dataset cache {paths.cache_dir()}": str(paths.cache_dir())}
        if args.plot:
            candidates[f"the plot {args.plot}"] = str(Path(args.plot).resolve().parent)
        # name the one on a (nearly) full file system when that can be told
        full = [name for name, p in candidates.items() if free_bytes(p) < NEARLY_FULL]
        return " or ".join(full or candidates)
    if args.command == "download":
        return str(Path(args.dir).resolve() if args.dir else paths.download_dir())
    return None


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (errors are printed as one line, not raised)."""
    console = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return run_cli(
        f"fd-data {args.command}",
        lambda: _dispatch(args),
        debug=bool(getattr(args, "debug", False)) or debug_requested(argv),
        exit_code_for=_exit_code,
        where=lambda: _output_hint(args),
        console=console,
    )


def _next(command: str) -> None:
    """The command that usually comes next, on stderr (stdout stays the report)."""
    print(f"next: {command}", file=sys.stderr)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in ("download", "verify"):
        source = source_of(args.source, args.setup)
        if source.name != "cwru":
            return _dispatch_source(args, source)
        if args.files:
            args.files = source.check_files(args.files)
        if args.command == "download" and not args.setup:
            args.setup = source.default_setup
    if args.command == "download":
        keys = args.files or setup_file_keys(source, args.setup, args.loads)
        rep = download_source_files(
            source, keys, folder=args.dir, base_url=args.base_url, progress=not args.no_progress
        )
        del rep["data_source"]  # CWRU's report keeps the shape it had before sources existed
        if args.files:
            failed = bool(rep["errors"])
        else:  # a setup: fine while every class still has a recording (the build says what is absent)
            failed = any("hash" in m.lower() for m in rep["errors"].values()) or bool(
                _classes_without_files(args.setup, set(rep["files"]))
            )
            rep["classes_without_files"] = _classes_without_files(args.setup, set(rep["files"]))
        if args.json:
            _print_json(rep)
        else:
            print(f"{len(rep['files'])} file(s) available in {rep['folder']} ({rep['source']})")
            for name, msg in rep["errors"].items():
                print(f"  {name}: {msg}")
            if not failed and args.setup:
                _next(f"fd-data summary --setup {args.setup}   (then: fd-train data={args.setup})")
        return 1 if failed else 0
    if args.command == "verify":
        return _verify(args, source, args.files)
    if args.command == "summary":
        if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg"):
            raise DataError(f"--plot {args.plot}: expected a .png or .svg path")
        rep = summary_report(_config_from_args(args), use_cache=not args.no_cache, plot=args.plot)
        if args.json:
            _print_json(rep)
        else:
            print(_text_summary(rep))
            if rep["audit"]["passed"] and getattr(args, "setup", None):
                _next(f"fd-train data={args.setup}   (fd-train --help for the options)")
        return 0 if rep["audit"]["passed"] else 1
    if args.command == "catalogue" and args.source != "cwru":
        from fault_diag.data.sources import get_source

        cat = get_source(args.source).catalogue()
        if args.json:
            _print_json(cat.to_dict(orient="records"))
        else:
            view = cat.drop(columns=[c for c in ("source_path",) if c in cat]).copy()
            view["sha256"] = view["sha256"].map(lambda h: h[:12] + "..." if h else "-")
            print(view.to_string(index=False))
        return 0
    if args.command == "catalogue":
        from fault_diag.data.sources import get_source

        # the catalogue as CWRU publishes it (without the "file" key column every source adds)
        cat = get_source("cwru").catalogue().drop(columns=["file"])
        if args.group:
            cat = cat[cat["group"] == args.group]
        if args.json:
            _print_json(cat.drop(columns=["notes"]).to_dict(orient="records"))
        else:
            cols = ["file_name", "group", "sampling_rate_hz", "class_code", "load_hp", "sha256"]
            view = cat[cols].copy()
            view["sha256"] = view["sha256"].map(lambda h: h[:12] + "..." if h else "-")
            print(view.to_string(index=False))
        return 0
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices


def _dispatch_source(args: argparse.Namespace, source: Any) -> int:
    """download / verify for a source other than CWRU (file keys, no loads)."""
    if getattr(args, "loads", None):
        raise ConfigError(f"--loads is a CWRU option; source {source.name!r} has no loads")
    keys = source.check_files(args.files) if args.files else None
    if args.command == "download":
        setup = args.setup or source.default_setup
        rep = download_source_files(
            source,
            keys or source.file_keys(setup),
            folder=args.dir,
            base_url=args.base_url,
            progress=not args.no_progress,
        )
        if keys:
            failed = bool(rep["errors"])
        else:
            missing = _classes_without_files(setup, set(rep["files"]), key="file")
            rep["classes_without_files"] = missing
            failed = any("hash" in m.lower() for m in rep["errors"].values()) or bool(missing)
        if args.json:
            _print_json(rep)
        else:
            print(f"{len(rep['files'])} file(s) available in {rep['folder']} ({rep['source']})")
            for name, msg in rep["errors"].items():
                print(f"  {name}: {msg}")
            if not failed and args.setup:
                _next(f"fd-data summary --setup {args.setup}   (then: fd-train data={args.setup})")
        return 1 if failed else 0
    return _verify(args, source, keys)


def _verify(args: argparse.Namespace, source: Any, keys: list[str] | None) -> int:
    """``fd-data verify`` of any source: ``keys`` (checked ``--files``), else the setup's files,
    else everything in the folder; exit 1 on a hash mismatch (or, with ``--strict``, a missing file)."""
    keys = keys or (setup_file_keys(source, args.setup) if args.setup else None)
    rep = verify_report(keys, args.dir, source=source)
    if args.json:
        _print_json(rep)
    else:
        print(f"folder {rep['folder']}: {rep['counts']}")
        width = max([9, *(len(str(f["file"])) for f in rep["files"])])
        for f in rep["files"]:
            if args.setup or args.files or f["status"] != "missing":
                print(f"  {f['file']:>{width}}  {f['status']}")
    bad = rep["counts"].get("hash_mismatch", 0) + (
        rep["counts"].get("missing", 0) if args.strict else 0
    )
    return 1 if bad else 0


def _classes_without_files(setup: str, present: set[str], key: str = "file_name") -> list[str]:
    from fault_diag.data.setups import setup_catalogue

    cat = setup_catalogue(setup)
    return sorted(
        str(name)
        for name, grp in cat.groupby("class_name")
        if not set(grp[key].astype(str)) & present
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point ``fd-data``."""
    raise SystemExit(run(argv))


if __name__ == "__main__":
    main()
