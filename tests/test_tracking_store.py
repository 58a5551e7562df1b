"""The MLflow store: opened by several processes at once, left half-migrated, garbage, or a
server that does not answer (issue 18, items 1 and 7).

Without the creation lock, two processes migrating a new sqlite file race: one fails with alembic's
errors ("duplicate column name", "table _alembic_tmp_... already exists") and the store can be left
unusable. Each process here opens the store through ``fault_diag.tracking.get_client`` and records a
run, all started together on a file that does not exist yet.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fault_diag.tracking import TrackingError, get_client

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
            env={**os.environ, "FAULT_DIAG_ROOT": str(tmp_path)},
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


# --- Stores that cannot be used: reported at once, naming the store (issue 18, items 1 and 7) ---

# The revision before MLflow's migration cfd24bdc0731, which rebuilds ``runs`` through alembic's
# sqlite "batch" mode (``_alembic_tmp_runs``): the step the two racing processes of issue 18 broke.
BEFORE_BATCH = "2b4d017a5e9b"


def _store_at(db: Path, revision: str) -> None:
    """A store migrated up to ``revision`` only, as an interrupted creation leaves it."""
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config, create_sqlalchemy_engine
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    url = f"sqlite:///{db}"
    engine = create_sqlalchemy_engine(url)
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def _tables(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()


@pytest.fixture(scope="module")
def half_migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose migration stopped inside the batch rebuild of ``runs``: ``_alembic_tmp_runs``
    left beside an intact ``runs``, the schema stamped at the revision before."""
    db = tmp_path_factory.mktemp("half") / "mlflow.db"
    _store_at(db, BEFORE_BATCH)
    con = sqlite3.connect(db)
    con.execute('CREATE TABLE "_alembic_tmp_runs" (run_uuid VARCHAR(32))')
    con.commit()
    con.close()
    return db


def test_a_store_left_half_migrated_is_repaired_under_the_lock(
    half_migrated: Path, tmp_path: Path
) -> None:
    """Before the repair every open failed with "table _alembic_tmp_runs already exists"."""
    db = tmp_path / "mlflow.db"
    shutil.copy(half_migrated, db)
    client = get_client(f"sqlite:///{db}")
    run = client.create_run(client.create_experiment("after-repair"))
    client.set_terminated(run.info.run_id, "KILLED")  # KILLED: allowed by the redone migration
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    assert not {t for t in _tables(db) if t.startswith("_alembic_tmp_")}


def test_a_half_migrated_store_missing_its_table_is_reported_with_the_repair_command(
    tmp_path: Path,
) -> None:
    """Interrupted between the drop of ``runs`` and the rename of its copy: the rows are only in
    ``_alembic_tmp_runs``. Nothing is dropped; the error gives the command, which repairs it."""
    db = tmp_path / "mlflow.db"
    _store_at(db, BEFORE_BATCH)
    con = sqlite3.connect(db)
    con.execute("INSERT INTO experiments (name, lifecycle_stage) VALUES ('kept', 'active')")
    exp_id = con.execute("SELECT experiment_id FROM experiments WHERE name='kept'").fetchone()[0]
    con.execute(
        "INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, "
        "end_time, lifecycle_stage, source_type, artifact_uri) "
        "VALUES ('r1', 'kept-run', ?, 'me', 'FINISHED', 1, 2, 'active', 'LOCAL', '/tmp/a')",
        (exp_id,),
    )
    con.execute('ALTER TABLE runs RENAME TO "_alembic_tmp_runs"')
    con.commit()
    con.close()
    uri = f"sqlite:///{db}"
    with pytest.raises(TrackingError) as info:
        get_client(uri)
    message = str(info.value)
    assert str(db) in message and "_alembic_tmp_runs" in message
    assert "_alembic_tmp_runs" in _tables(db), "the only copy of the rows was touched"
    command = message.split("repair it with: ", 1)[1]
    subprocess.run(
        command,
        shell=True,
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    client = get_client(uri)
    assert client.get_run("r1").info.status == "FINISHED"


@pytest.mark.parametrize(
    "content", [b"this is not a database\n" * 200, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_garbage_store_file_fails_at_once_naming_the_file(tmp_path: Path, content: bytes) -> None:
    """MLflow retried such a file for about 100 s, then raised a long SQLAlchemy error."""
    db = tmp_path / "mlflow.db"
    db.write_bytes(content)
    started = time.monotonic()
    with pytest.raises(TrackingError, match="not a usable SQLite database") as info:
        get_client(f"sqlite:///{db}")
    assert str(db) in str(info.value)
    assert time.monotonic() - started < 20
    assert db.read_bytes() == content


def test_a_reader_does_not_create_a_missing_store(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    with pytest.raises(TrackingError, match="no such file"):
        get_client(f"sqlite:///{db}", create=False)
    assert not db.exists()


def test_an_unreachable_tracking_server_fails_fast_naming_the_uri() -> None:
    """Nothing listening (refused) and a listener that never answers: both reported within the
    probe's timeout, instead of MLflow's four minutes of retries."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections into the backlog, never answers
    try:
        for port in (closed_port, silent.getsockname()[1]):
            uri = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            with pytest.raises(TrackingError, match="unreachable") as info:
                get_client(uri)
            assert uri in str(info.value)
            assert time.monotonic() - started < 20
    finally:
        silent.close()
