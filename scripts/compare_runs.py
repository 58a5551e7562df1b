"""Compare the test metrics of two MLflow runs, possibly in two stores: the reproducibility check of
docs/results.md (one study cell retrained from its seed must give every number again).

    python scripts/compare_runs.py sqlite:///mlflow.db RUN_A sqlite:////tmp/rerun/mlflow.db RUN_B

Prints how many ``test/*`` metrics both runs have, how many differ, and the largest difference;
exits 0 when every shared metric is equal (or within ``--atol``) and the two runs have the same
metric names, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys


def compare(
    uri_a: str, run_a: str, uri_b: str, run_b: str, atol: float = 0.0
) -> tuple[int, list[tuple[str, float, float]], set[str]]:
    """(shared test metrics, [(name, a, b)] that differ by more than ``atol``, names in one only)."""
    from mlflow import MlflowClient

    a = MlflowClient(tracking_uri=uri_a).get_run(run_a).data.metrics
    b = MlflowClient(tracking_uri=uri_b).get_run(run_b).data.metrics
    names_a = {k for k in a if k.startswith("test/")}
    names_b = {k for k in b if k.startswith("test/")}
    shared = sorted(names_a & names_b)
    differ = [(k, a[k], b[k]) for k in shared if abs(a[k] - b[k]) > atol]
    return len(shared), differ, names_a ^ names_b


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("uri_a")
    p.add_argument("run_a")
    p.add_argument("uri_b")
    p.add_argument("run_b")
    p.add_argument("--atol", type=float, default=0.0, help="allowed absolute difference")
    args = p.parse_args(argv)
    n, differ, only_one = compare(args.uri_a, args.run_a, args.uri_b, args.run_b, args.atol)
    worst = max((abs(x - y) for _, x, y in differ), default=0.0)
    print(f"{n} test metrics in both runs; {len(differ)} differ (largest difference {worst:.3g})")
    for name, x, y in differ[:10]:
        print(f"  {name}: {x!r} vs {y!r}")
    if only_one:
        print(f"  in one run only: {sorted(only_one)[:10]}")
    return 0 if n and not differ and not only_one else 1


if __name__ == "__main__":
    sys.exit(main())
