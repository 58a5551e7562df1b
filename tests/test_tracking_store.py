"""A new sqlite MLflow store opened by several processes at once (issue 18, item 1).

Without the creation lock, two processes migrating a new sqlite file race: one fails with alembic's
errors ("duplicate column name", "table _alembic_tmp_... already exists") and the store can be left
unusable. Each process here opens the store through ``fault_diag.tracking.get_client`` and records a
run, all started together on a file that does not exist yet.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = """
import sys
from fault_diag.tracking import get_client, get_or_create_experiment
client = get_client(sys.argv[1])
exp = get_or_create_experiment(client, "race")
run = client.create_run(exp)
client.set_terminated(run.info.run_id, "FINISHED")
"""


def test_processes_starting_together_on_a_new_store_all_record_their_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, uri],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**__import__("os").environ, "FAULT_DIAG_ROOT": str(tmp_path)},
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (exp,) = [e for e in client.search_experiments() if e.name == "race"]
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
