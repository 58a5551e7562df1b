"""``fd-predict``: classify a recording with an exported bundle.

    fd-predict BUNDLE RECORDING [--fs-hz HZ] [--channel CH] [--hop N] [--start N] [--stop N]
               [--runtime onnx|pt2] [--adapt-bn] [--json] [--all]

RECORDING: ``.mat`` (CWRU file numbers take their rate from the catalogue), ``.csv``, ``.npy`` or
``.npz`` (these need ``--fs-hz``). ``--start``/``--stop`` select samples at the recording's own rate.

Exit codes: 0 ok; 2 bad input (unknown or absurd rate, absurd hop, too short, NaN samples, missing or
tampered bundle). Errors are one line on stderr (``--debug`` or ``FAULT_DIAG_DEBUG=1``: with the
traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from fault_diag.cli.errors import add_debug_argument, debug_requested, run_cli


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(
        prog="fd-predict",
        description="Classify a vibration recording window by window with an fd-export bundle.",
    )
    p.add_argument("bundle", help="bundle folder written by fd-export")
    p.add_argument("recording", help=".mat, .csv, .npy or .npz file")
    p.add_argument(
        "--fs-hz",
        type=float,
        default=None,
        help="the recording's sampling rate (required for csv/npy/npz)",
    )
    p.add_argument(
        "--channel",
        default=None,
        help="channel / variable / column (default: the card's, e.g. DE; a file holding a single "
        "signal is read whatever its variable is called)",
    )
    p.add_argument(
        "--hop",
        type=int,
        default=None,
        help="samples between window starts at the model's rate (default: window length)",
    )
    p.add_argument(
        "--start", type=int, default=None, help="first sample to use (recording's own rate)"
    )
    p.add_argument(
        "--stop", type=int, default=None, help="end sample, exclusive (recording's own rate)"
    )
    p.add_argument(
        "--runtime",
        choices=["onnx", "pt2"],
        default="onnx",
        help="onnxruntime (default) or the torch.export program",
    )
    p.add_argument(
        "--adapt-bn",
        action="store_true",
        help="AdaBN: re-estimate BatchNorm statistics on this recording's (unlabelled) windows "
        "before classifying them (torch, from the bundle's .pt2 weights)",
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--all", action="store_true", help="print every window (default: the first 40)")
    add_debug_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fd-predict``."""
    console = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # PredictError, BundleError, DataError (NaN samples, unreadable file): one line, exit 2
    return run_cli(
        "fd-predict",
        lambda: _predict(args),
        debug=args.debug or debug_requested(argv),
        where=lambda: "the standard output",  # the only thing fd-predict writes
        console=console,
    )


def _predict(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)  # one recording: latency is fine, leave the cores to others
    from fault_diag.predict import format_result, predict_recording

    result = predict_recording(
        args.bundle,
        args.recording,
        fs_hz=args.fs_hz,
        channel=args.channel,
        hop=args.hop,
        start=args.start,
        stop=args.stop,
        runtime=args.runtime,
        adapt_bn=args.adapt_bn,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_result(result, None if args.all else 40))
    return 0


if __name__ == "__main__":
    sys.exit(main())
