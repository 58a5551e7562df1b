"""Bounded stress of the MLflow store and the run lifecycle (issue 18): loopback only, temp folders.

Phase 1: ``--workers`` processes start together on a NEW sqlite store, each running
``--runs-per-worker`` short fd-train jobs one after another; every job must finish.

Phase 2: ``--kills`` jobs, ``--parallel`` at a time, each stopped at a random moment (seeded) by
SIGTERM or SIGKILL, then resumed once with the same command in the same run folder.

At the end the store is queried: runs started, finished, failed, killed, resumed in the same run
id, left RUNNING (must be 0), and whether the store still opens (a fresh process) and passes
sqlite's integrity check. Exit status 0 when every check holds.

    FAULT_DIAG_DATA_DIR=/path/to/cwru .venv/bin/python scripts/stress_runs.py [--seed 0]

Each job: WDCNN, one epoch (two in phase 2, so that some kills land after a checkpoint), train hop
2048, clean training, a one-point test grid, no AdaBN, no logged model, one torch thread. The
dataset cache is built once before phase 1 (the stress is about the store, not the cache).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHORT = [
    "model=wdcnn",
    "trainer.epochs=1",
    "data.train_hop=2048",
    "noise=clean_train",
    "noise.test_snr_grid_db=[0]",
    "noise.test_draws=1",
    "eval.adapt_bn=false",
    "trainer.progress=false",
    "trainer.num_threads=1",
    "tracking.log_model=false",
]
RUN_RECORD = "mlflow_run.json"  # fault_diag.training.run.RUN_RECORD (not imported: no torch here)


@dataclass
class Kill:
    """One phase-2 job: where it was stopped and what became of its run."""

    job: int
    signal: str
    delay_s: float
    stage: str = ""  # what the run folder held when the signal was sent
    exit_code: int | None = None
    run_before: str | None = None  # run id in the folder's record after the kill
    status_after_kill: str | None = None
    resume_exit: int | None = None
    run_after: str | None = None
    notes: list[str] = field(default_factory=list)


def _env(root: Path, data_dir: str, cache: Path, uri: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FAULT_DIAG_ROOT=str(root),
        FAULT_DIAG_DATA_DIR=data_dir,
        FAULT_DIAG_CACHE_DIR=str(cache),
        MLFLOW_TRACKING_URI=uri,
        MPLBACKEND="Agg",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _train_cmd(run_dir: Path, experiment: str, seed: int, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fault_diag.cli.train",
        *SHORT,
        *extra,
        f"trainer.seed={seed}",
        f"tracking.experiment={experiment}",
        f"hydra.run.dir={run_dir}",
    ]


def _log_tail(path: Path, n: int = 3) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-400:]


def warm_cache(env: dict[str, str]) -> None:
    """Build the dataset once (a tracking=none run would also train; this only builds)."""
    code = (
        "from hydra import compose, initialize_config_dir\n"
        "from omegaconf import OmegaConf\n"
        "from fault_diag.config import register_configs\n"
        "from fault_diag.data import build_dataset\n"
        "import sys\n"
        "register_configs()\n"
        "with initialize_config_dir(config_dir=sys.argv[1], version_base='1.3'):\n"
        "    cfg = compose('config', overrides=sys.argv[2:])\n"
        "build_dataset(OmegaConf.to_object(cfg.data))\n"
    )
    from fault_diag.paths import config_dir

    conf = str(config_dir())
    overrides = [a for a in SHORT if a.startswith(("data.", "model=", "noise="))]
    subprocess.run([sys.executable, "-c", code, conf, *overrides], env=env, check=True)


def phase1(
    root: Path, env: dict[str, str], workers: int, per_worker: int
) -> tuple[list[int], list[float]]:
    """``workers`` processes started together, ``per_worker`` jobs each; exit codes and times."""
    barrier = threading.Barrier(workers)

    def worker(w: int) -> list[tuple[int, float]]:
        out = []
        barrier.wait()  # all first jobs start together on the new store
        for i in range(per_worker):
            run_dir = root / "p1" / f"w{w}-{i}"
            log = root / "p1" / f"w{w}-{i}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            with open(log, "w") as handle:
                code = subprocess.call(
                    _train_cmd(run_dir, "stress-p1", 100 * w + i, []),
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            out.append((code, time.monotonic() - started))
            if code != 0:
                print(f"  phase 1 job w{w}-{i} exited {code}: {_log_tail(log)}", flush=True)
        return out

    with ThreadPoolExecutor(workers) as pool:
        results = [r for rs in pool.map(worker, range(workers)) for r in rs]
    return [c for c, _ in results], [t for _, t in results]


def _stage(run_dir: Path) -> str:
    if (run_dir / "artifacts" / "history.json").exists():
        return "artifacts written"
    if (run_dir / "checkpoints" / "last.pt").exists():
        return "after a checkpoint"
    if (run_dir / RUN_RECORD).exists():
        return "run open, no checkpoint"
    return "before the run opened"


def _record(run_dir: Path) -> str | None:
    try:
        return str(json.loads((run_dir / RUN_RECORD).read_text())["run_id"])
    except (OSError, ValueError, KeyError):
        return None


def phase2_job(kill: Kill, root: Path, env: dict[str, str], uri: str) -> Kill:
    """Start a job, stop it after ``kill.delay_s`` with ``kill.signal``, then resume it once."""
    from mlflow import MlflowClient

    run_dir = root / "p2" / f"k{kill.job:02d}"
    log = root / "p2" / f"k{kill.job:02d}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = _train_cmd(run_dir, "stress-p2", kill.job, ["trainer.epochs=2"])
    with open(log, "w") as handle:
        proc = subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=kill.delay_s)
            kill.stage = "ended before the signal"
        except subprocess.TimeoutExpired:
            kill.stage = _stage(run_dir)
            proc.send_signal(signal.SIGTERM if kill.signal == "TERM" else signal.SIGKILL)
        kill.exit_code = proc.wait(timeout=300)
    kill.run_before = _record(run_dir)
    if kill.run_before is not None:
        kill.status_after_kill = MlflowClient(tracking_uri=uri).get_run(kill.run_before).info.status
    with open(log, "a") as handle:
        handle.write("\n--- resume ---\n")
        handle.flush()
        kill.resume_exit = subprocess.call(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT)
    kill.run_after = _record(run_dir)
    if kill.resume_exit != 0:
        kill.notes.append(f"resume exited {kill.resume_exit}: {_log_tail(log)}")
    return kill


def store_opens(uri: str, env: dict[str, str]) -> bool:
    """A fresh process opens the store through fault_diag and lists its runs."""
    code = (
        "import sys\n"
        "from fault_diag.tracking import get_client\n"
        "c = get_client(sys.argv[1], create=False)\n"
        "print(len(c.search_runs([e.experiment_id for e in c.search_experiments()])))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, uri], env=env, capture_output=True, text=True, timeout=300
    )
    return proc.returncode == 0


def summarise(
    uri: str,
    db: Path,
    kills: list[Kill],
    p1_codes: list[int],
    env: dict[str, str],
    workers: int,
) -> tuple[str, bool]:
    """The table of the stress, and whether every check holds."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    rows: list[tuple[str, dict[str, Any]]] = []
    ok = True
    for name in ("stress-p1", "stress-p2"):
        exp = client.get_experiment_by_name(name)
        runs = [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)
        by = {s: sum(r.info.status == s for r in runs) for s in ("FINISHED", "FAILED", "KILLED")}
        running = sum(r.info.status == "RUNNING" for r in runs)
        resumed = sum(int(r.data.tags.get("fd.resumes", "0") or 0) > 0 for r in runs)
        rows.append((name, {"started": len(runs), **by, "resumed": resumed, "RUNNING": running}))
        ok &= running == 0
    same = [k for k in kills if k.run_before is not None]
    same_ok = sum(k.run_before == k.run_after for k in same)
    ok &= same_ok == len(same)
    # SIGTERM must close the run itself (KILLED), or find it already FINISHED.
    term_left = [k for k in kills if k.signal == "TERM" and k.status_after_kill == "RUNNING"]
    ok &= not term_left
    ok &= all(c == 0 for c in p1_codes) and all(k.resume_exit == 0 for k in kills)
    opens = store_opens(uri, env)
    con = sqlite3.connect(db)
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    leftovers = [
        r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp_%'")
    ]
    con.close()
    ok &= opens and integrity == "ok" and not leftovers

    head = f"{'experiment':<11}{'started':>8}{'finished':>9}{'failed':>7}{'killed':>7}"
    head += f"{'resumed':>8}{'left RUNNING':>13}"
    lines = [head]
    for name, r in rows:
        lines.append(
            f"{name:<11}{r['started']:>8}{r['FINISHED']:>9}{r['FAILED']:>7}{r['KILLED']:>7}"
            f"{r['resumed']:>8}{r['RUNNING']:>13}"
        )
    total = {k: sum(r[k] for _, r in rows) for k in rows[0][1]}
    lines.append(
        f"{'total':<11}{total['started']:>8}{total['FINISHED']:>9}{total['FAILED']:>7}"
        f"{total['KILLED']:>7}{total['resumed']:>8}{total['RUNNING']:>13}"
    )
    lines.append("")
    lines.append(
        f"phase 1: {len(p1_codes)} jobs, {sum(c == 0 for c in p1_codes)} exited 0 "
        f"({workers} processes started together on a new store)"
    )
    lines.append(f"phase 2: {len(kills)} jobs stopped at random, each resumed once")
    lines.append(
        f"  {'job':<4}{'signal':<7}{'after s':>8}  {'stage at the signal':<26}"
        f"{'exit':>5}  {'status after kill':<18}{'resume':>7}  same run id"
    )
    for k in kills:
        same_id = "-" if k.run_before is None else ("yes" if k.run_before == k.run_after else "NO")
        lines.append(
            f"  {k.job:<4}{k.signal:<7}{k.delay_s:>8.1f}  {k.stage:<26}{k.exit_code!s:>5}  "
            f"{k.status_after_kill or '(no run yet)':<18}{k.resume_exit!s:>7}  {same_id}"
        )
        lines += [f"       {n}" for n in k.notes]
    by_signal = {s: [k for k in kills if k.signal == s] for s in ("TERM", "KILL")}
    for s, ks in by_signal.items():
        stopped = [k for k in ks if k.stage != "ended before the signal"]
        lines.append(
            f"  SIG{s}: {len(ks)} sent, {len(stopped)} landed while running, runs open at the "
            f"signal: {sum(k.run_before is not None for k in stopped)}, status right after: "
            + ", ".join(
                f"{st} {sum(k.status_after_kill == st for k in stopped)}"
                for st in ("KILLED", "RUNNING", "FAILED", "FINISHED")
            )
        )
    lines.append(f"  resumed in the same run id: {same_ok} of {len(same)} whose run was open")
    lines.append(f"  SIGTERM leaving its run RUNNING: {len(term_left)}")
    extra = rows[1][1]["started"] - len(kills)
    lines.append(
        f"  runs opened by a stopped job but not recorded in its folder (a new run on resume): "
        f"{extra}"
    )
    lines.append(
        f"store: opens in a fresh process: {'yes' if opens else 'NO'}; integrity_check: "
        f"{integrity}; leftover _alembic_tmp_ tables: {len(leftovers)}"
    )
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs-per-worker", type=int, default=3)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2, help="phase-2 jobs at a time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    data_dir = os.environ.get("FAULT_DIAG_DATA_DIR")
    if not data_dir:
        parser.error("set FAULT_DIAG_DATA_DIR to the CWRU recordings")

    t0 = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="fd-stress-"))
    db = root / "store" / "mlflow.db"  # does not exist yet: phase 1 creates it
    uri = f"sqlite:///{db}"
    env = _env(root, data_dir, root / "cache", uri)
    print(f"stress in {root}, store {uri}, seed {args.seed}", flush=True)
    warm_cache(env)
    print(f"dataset cache built in {time.monotonic() - t0:.0f} s", flush=True)

    t1 = time.monotonic()
    codes, times = phase1(root, env, args.workers, args.runs_per_worker)
    median = statistics.median(times)
    print(
        f"phase 1: {len(codes)} jobs in {time.monotonic() - t1:.0f} s (median job {median:.0f} s)",
        flush=True,
    )

    # Kill moments spread over a job's life (start-up, dataset, run creation, epochs,
    # evaluation, artifacts): a phase-2 job runs ``parallel`` at a time instead of ``workers``
    # and for two epochs instead of one, which measured about 0.9 x the scaled phase-1 time.
    window = max(4.0, median * (args.parallel / args.workers) * 0.9)
    rng = random.Random(args.seed)
    kills = [
        Kill(job=j, signal=rng.choice(["TERM", "KILL"]), delay_s=round(rng.uniform(1.0, window), 1))
        for j in range(args.kills)
    ]
    t2 = time.monotonic()
    with ThreadPoolExecutor(args.parallel) as pool:
        kills = list(pool.map(lambda k: phase2_job(k, root, env, uri), kills))
    print(
        f"phase 2: {len(kills)} stopped jobs and their resumes in {time.monotonic() - t2:.0f} s "
        f"(signals within {window:.0f} s of the start)",
        flush=True,
    )

    table, ok = summarise(uri, db, kills, codes, env, args.workers)
    print()
    print(table)
    print(f"\nwall time {time.monotonic() - t0:.0f} s; {'ALL CHECKS PASS' if ok else 'FAILED'}")
    if args.keep or not ok:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
