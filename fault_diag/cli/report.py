"""``fd-report``: tables, intervals, paired comparisons and accuracy-vs-SNR plots from MLflow.

    fd-report --sweep SWEEP_ID|SWEEP_DIR|latest [--filter "tags.model = 'drsn_cw'"] [--out DIR]
    fd-report --experiment NAME [--filter ...] [--out DIR]
              [--baseline MODEL|none] [--seed N] [--n-boot B]
              [--tracking-uri URI] [--no-log] [--include-unfinished] [--json] [-q]

Writes runs.csv (tidy), summary.csv (per cell, with 95 % bootstrap intervals), comparisons.csv
(paired tests against the baseline), report.md, accuracy_vs_snr.png/.svg, matched_grid_vs_snr.png/.svg
(matched runs on their whole test grid) and thresholds_vs_snr.png/.svg (DRSN models) to DIR (default <root>/outputs/reports/<sweep id>) and logs them under ``report/``
of the sweep's parent run. See docs/report.md.

Exit codes: 0 ok; 1 the machine failed (full disk); 2 nothing to report / bad arguments / no or
unusable store. Errors are one line on stderr (``--debug`` or ``FAULT_DIAG_DEBUG=1``: with the
traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence

from fault_diag.cli.errors import add_debug_argument, debug_requested, run_cli


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(prog="fd-report", description="Results report from MLflow runs.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--sweep", help="sweep id (tag sweep_id), a sweep folder, or 'latest'")
    which.add_argument("--experiment", help="MLflow experiment name")
    p.add_argument(
        "--filter",
        dest="filter_string",
        default=None,
        help="MLflow filter string, e.g. \"tags.noise = 'pink'\"",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else the project's sqlite)",
    )
    p.add_argument(
        "--out", default=None, help="output folder (default <root>/outputs/reports/<sweep id>)"
    )
    p.add_argument(
        "--no-log", action="store_true", help="do not log the report to the sweep's parent run"
    )
    p.add_argument(
        "--include-unfinished", action="store_true", help="also report runs that did not finish"
    )
    p.add_argument(
        "--baseline",
        default="auto",
        help="model every other model is compared with ('none': no comparison; "
        "default: resnet1d when the selection has it)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="bootstrap seed (default 0: reports regenerate exactly)"
    )
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates (default 2000)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    add_debug_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fd-report``."""
    console = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def store() -> str | None:
        from fault_diag.tracking import resolve_tracking_uri

        return resolve_tracking_uri(args.tracking_uri)

    return run_cli(
        "fd-report",
        lambda: _report(args),
        debug=args.debug or debug_requested(argv),
        where=lambda: args.out or "the report folder",
        store=store,
        console=console,
    )


def _report(args: argparse.Namespace) -> int:
    from fault_diag.report import (
        ReportError,
        build_report,
        comparisons_markdown,
        pivot_markdown,
        result_json,
    )

    if args.n_boot < 1:
        raise ReportError(f"--n-boot must be positive, got {args.n_boot}")
    started = time.monotonic()

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"fd-report: {line} ({time.monotonic() - started:.1f} s)", file=sys.stderr)

    # ReportError, MlflowException for a malformed filter: one line, exit 2 (run_cli)
    result = build_report(
        sweep=args.sweep,
        experiment=args.experiment,
        filter_string=args.filter_string,
        tracking_uri=args.tracking_uri,
        out_dir=args.out,
        log_to_parent=not args.no_log,
        include_unfinished=args.include_unfinished,
        baseline=args.baseline,
        n_boot=args.n_boot,
        seed=args.seed,
        progress=progress,
    )
    if args.json:
        print(json.dumps(result_json(result), indent=2))
        return 0
    sel = result.selection
    print(f"{sel.title}: {result.table['run_id'].nunique()} runs")
    if sel.skipped:
        print(f"left out (not finished): {', '.join(sel.skipped)}")
    print(pivot_markdown(result.summary))
    if result.baseline is not None:
        print(f"\npaired comparisons against {result.baseline}:")
        print(comparisons_markdown(result.comparisons, result.baseline))
    print(f"report: {result.out_dir} ({', '.join(p.name for p in result.files)})")
    if result.logged_to:
        print(f"logged under report/ of the sweep's parent run {result.logged_to}")
    print(
        f"next: read {result.out_dir / 'report.md'}; export a model with fd-export <run id or run "
        "folder> --out bundle (run ids: runs.csv), then fd-predict bundle <recording>"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
