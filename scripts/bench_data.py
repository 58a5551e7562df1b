"""Time the dataset build: cold (empty cache: read, hash, resample, split, window, audit, write) and
warm (read back from the cache). Budget on the 2-core CI machine: cold <= 10 s, warm <= 1 s for
cwru10 from the 37 files in $FAULT_DIAG_DATA_DIR.

    FAULT_DIAG_DATA_DIR=../shared/data/cwru python scripts/bench_data.py [--setup cwru10]
        [--repeats 3] [--json out.json] [--check]

Cold runs each use a fresh temporary cache folder (the OS page cache is not dropped: the recordings'
bytes are usually in memory after the first read, as they are in CI after the first test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

COLD_BUDGET_S = 10.0
WARM_BUDGET_S = 1.0


def bench(setup: str, repeats: int) -> dict:
    """Return cold/warm build times (seconds) and the dataset size."""
    from fault_diag.data import DataConfig, build_dataset

    cfg = DataConfig(setup=setup)
    cold, warm = [], []
    n_windows = 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="fd-bench-") as tmp:
            os.environ["FAULT_DIAG_CACHE_DIR"] = tmp
            t0 = time.perf_counter()
            ds = build_dataset(cfg)
            cold.append(time.perf_counter() - t0)
            n_windows = len(ds)
            for _ in range(2):
                t0 = time.perf_counter()
                ds2 = build_dataset(cfg)
                warm.append(time.perf_counter() - t0)
                assert ds2.from_cache, "warm build did not come from the cache"
    return {
        "setup": setup,
        "n_windows": n_windows,
        "n_files": int(ds.meta["file"].nunique()),
        "window_bytes": int(ds.windows.nbytes),
        "cold_s": {"median": statistics.median(cold), "max": max(cold), "runs": cold},
        "warm_s": {"median": statistics.median(warm), "max": max(warm), "runs": warm},
        "budget_s": {"cold": COLD_BUDGET_S, "warm": WARM_BUDGET_S},
        "data_dir": os.environ.get("FAULT_DIAG_DATA_DIR"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: print the timings, optionally write JSON and fail (exit 1) over budget with --check."""
    parser = argparse.ArgumentParser(description="benchmark the dataset build (cold / warm)")
    parser.add_argument("--setup", default="cwru10")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--check", action="store_true", help="exit 1 when over budget")
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency, but the bench does not need it
        pass
    res = bench(args.setup, args.repeats)
    print(
        f"{res['setup']}: {res['n_windows']} windows from {res['n_files']} files "
        f"({res['window_bytes'] / 2**20:.1f} MiB); cold median {res['cold_s']['median']:.2f} s "
        f"(max {res['cold_s']['max']:.2f}, budget {COLD_BUDGET_S}), warm median "
        f"{res['warm_s']['median']:.3f} s (max {res['warm_s']['max']:.3f}, budget {WARM_BUDGET_S})"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    over = res["cold_s"]["max"] > COLD_BUDGET_S or res["warm_s"]["max"] > WARM_BUDGET_S
    if over:
        print("over budget", file=sys.stderr)
    return 1 if (over and args.check) else 0


if __name__ == "__main__":
    raise SystemExit(main())
