"""``fd-export``: write a bundle (model.pt2, model.onnx, model_card.json, parity_report.json).

    fd-export SOURCE --out DIR [--tracking-uri URI] [--real-windows require|auto|skip]
              [--n-real-windows 64] [--register NAME [--alias ALIAS]] [--force] [--json]
              [--no-progress]

SOURCE: an MLflow run id (or ``runs:/<id>``), a registered model (``models:/name@alias``,
``models:/name/<version>``), or a run folder (``<hydra run dir>`` or its ``artifacts/``).

Exit codes: 0 bundle written; 1 parity check failed, or the machine failed (full disk); 2 bad
arguments or source (nothing written). On a terminal, the phases (building, ONNX export, parity
check, writing) and their times are shown on stderr; not when stderr is redirected, nor with
``--no-progress``. Errors are one line on stderr (``--debug`` or
``FAULT_DIAG_DEBUG=1``: with the traceback); SIGTERM and Ctrl-C remove the half-written bundle.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from fault_diag.cli.errors import (
    add_debug_argument,
    debug_requested,
    run_cli,
    terminate_as_exception,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs)."""
    p = argparse.ArgumentParser(
        prog="fd-export",
        description="Export a trained classifier as a checked bundle (torch.export .pt2 + ONNX + card).",
    )
    p.add_argument(
        "source",
        help="run id | runs:/<id> | models:/name@alias | models:/name/<version> | run folder",
    )
    p.add_argument(
        "--out", required=True, help="bundle folder to create (must not exist unless --force)"
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else the project's sqlite)",
    )
    p.add_argument(
        "--real-windows",
        choices=["require", "auto", "skip"],
        default="require",
        help="parity on the run's real test windows: require (default; needs the recordings), "
        "auto (skip with a note when unavailable), skip",
    )
    p.add_argument(
        "--n-real-windows", type=int, default=64, help="test windows used for parity (default 64)"
    )
    p.add_argument(
        "--register",
        metavar="NAME",
        default=None,
        help="register the run's logged MLflow model as NAME",
    )
    p.add_argument(
        "--alias", default=None, help="alias to point at the new version (with --register)"
    )
    p.add_argument(
        "--force", action="store_true", help="replace an existing bundle folder (atomically)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the card's export section and the parity report as JSON",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="do not show the export phases on stderr (they are shown only on a terminal anyway)",
    )
    add_debug_argument(p)
    return p


class PhaseDisplay:
    """The export phases on ``stream``, a line as each starts and their times at the end::

        fd-export [2/4] ONNX export ...
        fd-export: done in 12.3 s (building 1.4, ONNX export 8.1, parity check 2.7, writing 0.1)

    Used as ``export_from_source``'s ``progress`` callback; whole lines only, so a warning logged
    during a phase does not break one.
    """

    def __init__(self, stream: TextIO, phases: Sequence[str]) -> None:
        self.stream, self.phases = stream, list(phases)
        self.times: dict[str, float] = {}
        self.current: str | None = None
        self.started = self.t0 = time.perf_counter()

    def __call__(self, phase: str) -> None:
        self._stop()
        self.current, self.started = phase, time.perf_counter()
        n = self.phases.index(phase) + 1 if phase in self.phases else 0
        self.stream.write(f"fd-export [{n}/{len(self.phases)}] {phase} ...\n")
        self.stream.flush()

    def _stop(self) -> None:
        if self.current is not None:
            self.times[self.current] = time.perf_counter() - self.started
            self.current = None

    def close(self, ok: bool) -> None:
        """After the export: on success, the total and each phase's time (an error says the rest)."""
        self._stop()
        if ok:
            each = ", ".join(f"{k} {v:.1f}" for k, v in self.times.items())
            self.stream.write(
                f"fd-export: done in {time.perf_counter() - self.t0:.1f} s ({each})\n"
            )
            self.stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fd-export``."""
    console = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def exit_code(exc: BaseException) -> int | None:
        from fault_diag.export import ParityError

        return 1 if isinstance(exc, ParityError) else None

    def store() -> str | None:
        from fault_diag.tracking import resolve_tracking_uri

        return resolve_tracking_uri(args.tracking_uri)

    # SIGTERM as an exception: export_bundle's cleanup then removes the temporary bundle folder.
    with terminate_as_exception():
        return run_cli(
            "fd-export",
            lambda: _export(args),
            debug=args.debug or debug_requested(argv),
            exit_code_for=exit_code,
            where=lambda: str(args.out),
            store=store,
            console=console,
        )


def _export(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # 3 small files
    from fault_diag.bundle.write import PHASES
    from fault_diag.export import ParityError, export_from_source

    display = (
        PhaseDisplay(sys.stderr, PHASES) if sys.stderr.isatty() and not args.no_progress else None
    )
    ok = False
    try:
        result = export_from_source(
            args.source,
            args.out,
            tracking_uri=args.tracking_uri,
            real_windows=args.real_windows,
            n_real_windows=args.n_real_windows,
            register=args.register,
            alias=args.alias,
            overwrite=args.force,
            progress=display,
        )
        ok = True
    except ParityError as exc:  # exit 1 (see main); the message says that nothing was written
        raise ParityError(f"{exc} (nothing was written)") from exc
    finally:
        if display is not None:
            display.close(ok)
    card = result.card
    if args.json:
        print(
            json.dumps(
                {"bundle": str(result.path), "export": card["export"], "parity": result.parity},
                indent=2,
            )
        )
        return 0
    files = card["export"]["files"]
    lines = [
        f"bundle: {result.path}",
        f"model: {card['model']['name']}, {len(card['labels'])} classes, {card['sampling_rate_hz']} Hz, "
        f"window {card['window_length']} ({card['channel']})",
    ]
    for name, info in files.items():
        lines.append(f"  {name:<12} {info['bytes']:>10,d} bytes  sha256 {info['sha256'][:16]}...")
    lines.append(
        f"  model_card.json, parity_report.json (ONNX opset {card['export']['onnx_opset']})"
    )
    for c in result.parity["checks"]:
        lines.append(
            f"parity {c['runtime']:<20} {c['inputs'][:60]:<60} max|diff| {c['max_abs_diff']:.2e}  "
            f"argmax agree {c['argmax_agreement']:.3f}  {'ok' if c['passed'] else 'FAILED'}"
        )
    rw = result.parity["real_windows"]
    if rw["status"] != "used":
        lines.append(f"warning: parity on real windows skipped: {rw.get('reason')}")
    if result.registered:
        reg = result.registered
        lines.append(f"registered: {reg['name']} version {reg['version']} ({reg['uri']})")
    lines.append(f"next: fd-predict {result.path} <recording: .mat, .csv, .npy or .npz>")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
