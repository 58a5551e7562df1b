"""``fd-sweep``: a sweep with ``fd-train -m``'s syntax whose compatible members train concurrently.

A thin entry point: the work is in :mod:`fault_diag.training.sweep` (expansion, grouping, tracking)
and :mod:`fault_diag.training.concurrent` (the stacked trainer).
"""

from __future__ import annotations

import logging
import sys
import time


def main(argv: list[str] | None = None) -> int:
    """``fd-sweep``: see the module docstring; ``--help`` for the options."""
    import argparse

    from fault_diag.cli.errors import add_debug_argument, debug_requested, run_cli

    ap = argparse.ArgumentParser(
        prog="fd-sweep",
        description=(
            "Run a sweep as fd-train -m would, training compatible members concurrently on one "
            "device (vmap-stacked models): same config tree, same override syntax."
        ),
        epilog=(
            "examples:\n"
            "  fd-sweep model=drsn_cw,resnet1d noise=gaussian 'noise.snr_db=range(-10,12,2)'\n"
            "  fd-sweep sweep=smoke tracking=none\n"
            "  fd-sweep experiment=study sweep=study_mixed trainer.device=cuda\n"
            "results: <sweep dir>/<n>/artifacts per member, <sweep dir>/summary.json, and the\n"
            "tracker's sweep run; then: fd-report --sweep latest"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("overrides", nargs="*", help="Hydra overrides; comma lists and range() sweep")
    ap.add_argument(
        "--max-members",
        type=int,
        default=None,
        help="largest concurrent group (default: all on CUDA; on the CPU, K x batch <= 128)",
    )
    ap.add_argument(
        "--dry-run", action="store_true", help="list the members and their groups, train nothing"
    )
    # The options of the command this one replaces (python -m fault_diag.training.concurrent):
    ap.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a sweep axis, as an override KEY=V1,V2 would be (kept from the old command)",
    )
    ap.add_argument(
        "--out", default=None, help="the sweep folder (same as hydra.sweep.dir=...; kept)"
    )
    add_debug_argument(ap)
    args = ap.parse_intermixed_args(argv)  # overrides before and after the options
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def body() -> int:
        from fault_diag.training.concurrent import default_group_size, group_compatible
        from fault_diag.training.sweep import SweepError, plan_sweep, run_sweep

        if args.max_members is not None and args.max_members < 1:
            raise SweepError(f"--max-members must be >= 1, got {args.max_members}")
        overrides = [*args.overrides, *args.sweep]
        if args.out is not None:
            overrides.append(f"hydra.sweep.dir={args.out}")
        plan = plan_sweep(overrides)
        size = args.max_members or default_group_size(plan.configs[0].trainer)
        groups = group_compatible(plan.configs, size)
        if args.dry_run:
            for g, members in enumerate(groups):
                for i in members:
                    print(f"group {g} member {i}: {' '.join(plan.job_overrides[i])}")
            print(f"{len(plan.configs)} members in {len(groups)} group(s); folder {plan.sweep_dir}")
            return 0
        print(
            f"fd-sweep: {len(plan.configs)} members in {len(groups)} concurrent group(s) -> "
            f"{plan.sweep_dir}",
            file=sys.stderr,
        )
        t0 = time.perf_counter()
        rows = run_sweep(plan, max_members=args.max_members)
        for row in rows:
            snr = "" if row["snr_db"] is None else f"{row['snr_db']:g} dB"
            print(
                f"member {row['member']:3d} {row['model']:<16} {row['protocol']:<11} "
                f"{row['noise']:<9} {snr:>7} seed {row['seed']}: test acc {row['test/acc']:.4f}"
            )
        print(
            f"{len(rows)} members in {time.perf_counter() - t0:.0f} s; "
            f"summary: {plan.sweep_dir / 'summary.json'}\n"
            f"next: fd-report --sweep {plan.sweep_dir}",
            file=sys.stderr,
        )
        return 0

    return run_cli(
        "fd-sweep", body, debug=args.debug or debug_requested(argv), console=argv is None
    )


if __name__ == "__main__":
    raise SystemExit(main())
