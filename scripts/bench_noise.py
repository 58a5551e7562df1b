#!/usr/bin/env python
"""Throughput of each noise kind: raw draw (make_noise) and exact-SNR add_noise.

Default workload (issue 3): 10,000 windows x 1 channel x 2048 samples on the CPU, torch threads 2,
median of several repeats after one warm-up. Prints a table; ``--json PATH`` also writes the
figures with the machine (CPU model, cores, torch version, device) and the date.

    python scripts/bench_noise.py                       # table
    python scripts/bench_noise.py --threads 1 --json bench_noise.json
    python scripts/bench_noise.py --device cuda         # on a GPU machine
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from fault_diag.io import atomic_write_text
from fault_diag.noise import NOISE_KINDS, add_noise, make_noise, noise_generator


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(fn, device: torch.device, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds per call for ``repeats`` calls after one warm-up call.

    CPU seconds (all threads of this process) are less sensitive than wall time to other
    processes competing for the cores; with one thread they estimate the wall time on an idle CPU.
    """
    fn()
    _sync(device)
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        _sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--windows", type=int, default=10_000)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--length", type=int, default=2048, help="samples per window")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--snr-db", type=float, default=0.0)
    ap.add_argument("--kinds", nargs="+", default=list(NOISE_KINDS), choices=list(NOISE_KINDS))
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if min(args.windows, args.channels, args.length, args.repeats, args.threads) < 1:
        ap.error("--windows, --channels, --length, --repeats and --threads must be >= 1")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available here")
    shape = (args.windows, args.channels, args.length)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    n_samples = x.numel()

    rows = []
    for kind in args.kinds:
        gen = noise_generator(0, "bench", kind, device=device)
        for op, fn in (
            ("make_noise", lambda k=kind, g=gen: make_noise(k, shape, device=device, generator=g)),
            ("add_noise", lambda k=kind, g=gen: add_noise(x, args.snr_db, k, generator=g)),
        ):
            times, cpu_times = time_it(fn, device, args.repeats)
            med = statistics.median(times)
            rows.append(
                {
                    "kind": kind,
                    "op": op,
                    "median_s": med,
                    "min_s": min(times),
                    "max_s": max(times),
                    "median_cpu_s": statistics.median(cpu_times),
                    "msamples_per_s": n_samples / med / 1e6,
                    "windows_per_s": args.windows / med,
                    "times_s": times,
                    "cpu_times_s": cpu_times,
                }
            )

    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"noise benchmark: {args.windows} x {args.channels} x {args.length} float32, "
        f"{args.repeats} repeats, torch {torch.__version__}, threads {args.threads}, "
        f"device {device} ({dev_name}), load average {load:.2f} on {os.cpu_count()} cores"
    )
    print(
        f"{'kind':<10} {'op':<11} {'median s':>9} {'min s':>8} {'max s':>8} {'cpu s':>7} "
        f"{'Msamp/s':>9} {'windows/s':>10}"
    )
    for r in rows:
        print(
            f"{r['kind']:<10} {r['op']:<11} {r['median_s']:9.4f} {r['min_s']:8.4f} {r['max_s']:8.4f} "
            f"{r['median_cpu_s']:7.3f} "
            f"{r['msamples_per_s']:9.1f} {r['windows_per_s']:10.0f}"
        )

    if args.json is not None:
        report = {
            "benchmark": "fault_diag.noise",
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpu_model": cpu_model(),
                "cpu_cores": os.cpu_count(),
                "platform": platform.platform(),
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "device": str(device),
                "device_name": dev_name,
                "torch_threads": torch.get_num_threads(),
                # Other processes on the machine skew timings; record how busy it was.
                "loadavg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            },
            "workload": {
                "windows": args.windows,
                "channels": args.channels,
                "length": args.length,
                "dtype": "float32",
                "snr_db": args.snr_db,
                "repeats": args.repeats,
            },
            "results": rows,
        }
        out = args.json
        atomic_write_text(out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
