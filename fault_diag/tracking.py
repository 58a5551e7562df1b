"""MLflow tracking: the store, experiments, sweep parent runs, and what each training run records.

Facts this module is built around (docs/design-notes.md section 5, checked with mlflow 3.17):

- The default store is ``sqlite:///<project root>/mlflow.db`` with an absolute path (a relative URI
  would follow the working directory; ``./mlruns`` file stores raise in 3.17). ``MLFLOW_TRACKING_URI``
  wins when set (a cluster points jobs at an ``mlflow server``).
- Artifacts of new experiments go to ``<project root>/mlartifacts/<experiment>``, also absolute.
- A parallel multirun on a fresh sqlite file races on schema migration, so the Hydra callback
  :class:`MlflowSweepCallback` creates the store, the experiment and the sweep's parent run before any
  job starts and writes the parent run id into the sweep folder; each job starts a child run of it.
- Independent processes are serialised by :func:`get_client`: a sqlite store is checked, repaired
  (leftovers of an interrupted migration) and created under an inter-process lock; a garbage file or
  a server that does not answer is reported at once (:class:`TrackingError`), not after MLflow's
  minutes of retries.
- A run records the process that holds it (:func:`process_tags`); a run whose process was killed
  outright stays RUNNING until its job is resumed (same run id) or the next run started in its
  experiment on that host closes it as KILLED (:func:`close_stale_runs`).

mlflow is imported lazily: ``tracking.backend=none`` never imports it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fault_diag.lifecycle import deferred_signals, git_commit
from fault_diag.paths import project_root
from fault_diag.tracker import SweepCallback

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from fault_diag.config import TrackingConfig

log = logging.getLogger(__name__)

PARENT_RUN_FILE = "mlflow_parent_run.json"


class TrackingError(RuntimeError):
    """The tracking store cannot be used."""


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else an absolute sqlite URI under the project root."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def resolve_tracking_uri(configured: str | None) -> str:
    """The configured URI, else the default; relative sqlite paths are made absolute from the root."""
    uri = configured or default_tracking_uri()
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str((project_root() / uri[len(prefix) :]).resolve())
    return uri


def artifact_root(uri: str | None = None) -> Path:
    """Folder under which new experiments of the local store ``uri`` keep their artifacts:
    ``mlartifacts/`` beside a sqlite file (the store and its artifacts travel together, wherever
    ``MLFLOW_TRACKING_URI`` points), else ``<root>/mlartifacts``. A tracking server keeps its own
    artifact location (``--default-artifact-root``)."""
    db = _sqlite_path(uri) if uri else None
    if db is not None:
        return db.parent / "mlartifacts"
    return project_root() / "mlartifacts"


@contextlib.contextmanager
def tracking_uri_scope(uri: str) -> Iterator[None]:
    """Point mlflow's fluent API at ``uri`` for a block (``log_model`` and the model registry go
    through it), then restore what was there before.

    ``mlflow.set_tracking_uri`` sets a process-wide global *and* the ``MLFLOW_TRACKING_URI``
    environment variable; left set, the store of one run would silently become the store of
    everything the process does next (another run, a report, a test).
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous_global = getattr(tracking_utils, "_tracking_uri", None)
    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri = previous_global
        if previous_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_env


def check_store_writable(uri: str) -> None:
    """Fail early, naming the path, when a local store or its artifact folder cannot be written."""
    folders = []
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        folders.append(db.parent)
        if db.exists() and not os.access(db, os.W_OK):
            raise TrackingError(f"MLflow store {uri}: the file {db} is not writable")
    if not uri.startswith(("http://", "https://", "databricks")):
        folders.append(artifact_root(uri))
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".fd-write-check-"):
                pass
        except OSError as exc:
            raise TrackingError(
                f"MLflow store {uri}: cannot write to {folder} ({exc.strerror or exc}); "
                "set tracking.tracking_uri / MLFLOW_TRACKING_URI to a writable location "
                "or use tracking=none"
            ) from exc


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An inter-process lock around the creation of a local sqlite store.

    MLflow creates and migrates a new sqlite file on first use; two processes doing that at once
    race (alembic's ``_alembic_tmp_*`` tables, "duplicate column" errors) and can leave a store no
    later process opens. The lock (``<db>.lock`` beside it, ``flock``) makes the first process migrate
    and the others wait, then find the schema current. Other stores (a server) need no lock.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no flock; creation races stay possible there
        yield
        return
    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_ALEMBIC_TMP_PREFIX = "_alembic_tmp_"
# A tracking server that does not answer within this many seconds is reported at once: left to
# MLflow's own retries (7, with exponential backoff) it takes about four minutes to fail.
SERVER_PROBE_TIMEOUT_S = 5.0


def _sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI, else None."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _check_sqlite_store(uri: str, db: Path) -> None:
    """Under :func:`_store_lock`: fail at once, naming the file, when ``db`` is not an SQLite
    database, and drop what an interrupted schema migration left behind.

    MLflow retries a store it cannot inspect ten times over about 100 s and then raises a long
    SQLAlchemy error; a garbage file never becomes readable, so it is reported here instead.

    Older versions (before the creation lock) could interrupt alembic's "batch" migration of a
    table ``T`` on sqlite (create ``_alembic_tmp_T``, copy ``T`` into it, drop ``T``, rename):
    the leftover ``_alembic_tmp_T`` makes every later migration fail with "table ... already
    exists". While ``T`` is still there it holds every row and the copy is garbage, so dropping
    the copy is safe and lets MLflow redo the migration. When ``T`` is gone the copy holds the
    rows: nothing is changed and the error says how to finish the rename by hand.
    """
    if not db.exists():
        return
    if db.is_dir():
        raise TrackingError(f"MLflow store {uri}: {db} is a folder, not an SQLite file")
    try:
        con = sqlite3.connect(db, timeout=60)
    except sqlite3.Error as exc:
        raise TrackingError(f"MLflow store {uri}: cannot open {db} ({exc})") from exc
    try:
        try:
            tables = {
                row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
            raise TrackingError(
                f"MLflow store {uri}: {db} is not a usable SQLite database ({exc}); move it "
                "away to start a new store, or point MLFLOW_TRACKING_URI / "
                "tracking.tracking_uri at another file"
            ) from exc
        leftovers = sorted(t for t in tables if t.startswith(_ALEMBIC_TMP_PREFIX))
        orphans = [t for t in leftovers if t[len(_ALEMBIC_TMP_PREFIX) :] not in tables]
        if orphans:
            renames = "; ".join(
                f'ALTER TABLE "{t}" RENAME TO "{t[len(_ALEMBIC_TMP_PREFIX) :]}"' for t in orphans
            )
            raise TrackingError(
                f"MLflow store {uri} was left half-migrated: {', '.join(orphans)} holds the rows "
                "of a table that is missing. Back up the file, then repair it with: "
                f"sqlite3 {db} '{renames}' && mlflow db upgrade {uri}"
            )
        for table in leftovers:
            con.execute(f'DROP TABLE "{table}"')
            log.warning(
                "MLflow store %s: dropped %s, left by an interrupted schema migration "
                "(its table %s is intact); the migration is redone now",
                uri,
                table,
                table[len(_ALEMBIC_TMP_PREFIX) :],
            )
        con.commit()
    except sqlite3.Error as exc:
        raise TrackingError(f"MLflow store {uri}: cannot read {db} ({exc})") from exc
    finally:
        con.close()


def _probe_server(uri: str) -> None:
    """Fail within :data:`SERVER_PROBE_TIMEOUT_S`, naming ``uri``, when no tracking server answers
    there. Any HTTP answer (even 401 or 404) counts: only "nobody there" is refused."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=SERVER_PROBE_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        return  # the server answered
    except (OSError, ValueError) as exc:  # URLError, refused, timeout, bad host name
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({reason}); start it, fix "
            "MLFLOW_TRACKING_URI / tracking.tracking_uri, or use tracking=none"
        ) from exc


def get_client(uri: str, *, create: bool = True) -> MlflowClient:
    """An MlflowClient on ``uri``, with the store checked and opened now.

    On a local sqlite file, the checks, the repair of an interrupted migration and MLflow's own
    creation / migration of the schema run under :func:`_store_lock`, so that processes starting
    together on a new store do not race. ``create=False`` refuses a sqlite file that does not
    exist (a reader such as a report should not leave an empty store behind). A tracking server is
    probed first (:func:`_probe_server`). Failures raise :class:`TrackingError` naming the store.
    """
    from mlflow import MlflowClient

    db = _sqlite_path(uri)
    if db is not None and not create and not db.exists():
        raise TrackingError(f"MLflow store {uri}: no such file {db}")
    if uri.startswith(("http://", "https://")):
        _probe_server(uri)
    with _store_lock(uri), deferred_signals(db is not None):
        if db is not None:
            _check_sqlite_store(uri, db)
        client = MlflowClient(tracking_uri=uri)
        try:
            client.search_experiments(max_results=1)  # forces store creation / migration now
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = ""
            if "schema" in first or "alembic" in type(exc).__module__ or "migrat" in first:
                hint = f"; back up the store, then run: mlflow db upgrade {uri}"
            raise TrackingError(f"MLflow store {uri} cannot be opened ({first}){hint}") from exc
    return client


#: MLflow 3's UI opens an experiment in its GenAI view unless this tag says otherwise.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # shown as "Machine learning"


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created with an absolute artifact location when missing,
    and marked as a machine-learning experiment (MLflow's UI would open it in its GenAI view)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if EXPERIMENT_KIND_TAG not in (exp.tags or {}):
            with contextlib.suppress(Exception):  # a read-only server: the view is cosmetic
                client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    uri = client.tracking_uri
    location = None
    if not uri.startswith(("http://", "https://", "databricks")):
        location = (artifact_root(uri) / name).as_uri()
    try:
        return client.create_experiment(
            name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    except Exception:  # another job created it between our check and create
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def read_parent_run(sweep_dir: Path) -> dict[str, str] | None:
    """The parent-run record written by :class:`MlflowSweepCallback` in ``sweep_dir``, if any."""
    path = sweep_dir / PARENT_RUN_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def create_sweep_parent(
    tracking: TrackingConfig, *, sweep_id: str, sweep_dir: Path, overrides: list[str]
) -> dict[str, str]:
    """Create a sweep's parent run (tag ``fd.role=sweep``) and record it in ``sweep_dir``.

    Returns the record (run id, experiment id, sweep id, tracking URI) that child runs pass to
    :class:`MlflowRun` as ``parent``; it is also written to ``<sweep_dir>/mlflow_parent_run.json``.
    """
    uri = resolve_tracking_uri(tracking.tracking_uri)
    check_store_writable(uri)
    client = get_client(uri)
    exp_id = get_or_create_experiment(client, tracking.experiment)
    run = client.create_run(
        exp_id,
        run_name=f"sweep-{sweep_id}",
        tags={
            "fd.role": "sweep",
            "sweep_id": sweep_id,
            "sweep_dir": str(sweep_dir),
            "overrides": " ".join(overrides),
            "git_commit": git_commit(),
            **process_tags(),
        },
    )
    record = {
        "run_id": run.info.run_id,
        "experiment_id": exp_id,
        "sweep_id": sweep_id,
        "tracking_uri": uri,
    }
    from fault_diag.io import atomic_write_json

    atomic_write_json(sweep_dir / PARENT_RUN_FILE, record, indent=2)
    log.info("MLflow sweep parent run %s in %s", run.info.run_id, uri)
    return record


def finish_sweep_parent(record: dict[str, str]) -> None:
    """Close a sweep's parent run: FAILED if any child run did not finish, else FINISHED."""
    client = get_client(record["tracking_uri"])
    children = client.search_runs(
        [record["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{record['run_id']}'",
    )
    failed = [r for r in children if r.info.status != "FINISHED"]
    client.set_terminated(record["run_id"], status="FAILED" if failed else "FINISHED")


# The Hydra sweep callback is backend-neutral now (fault_diag.tracker.SweepCallback); the old
# name keeps configs that name it working.
MlflowSweepCallback = SweepCallback


# Tags that say which process holds a RUNNING run, so that a later start can tell a run whose
# process was killed outright (SIGKILL, the OOM killer, a power cut: nothing could close it) from
# one that is still training.
HOST_TAG = "fd.host"
PROCESS_TAG = "fd.process"
RESUMES_TAG = "fd.resumes"
END_TAG = "fd.end"


def _proc_start_ticks(pid: int) -> str:
    """Start time of process ``pid`` in clock ticks since boot (Linux), or "" when unknown.

    With the pid it names one process: a pid reused by a later process has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22 of stat; the command name (field 2) may hold spaces, so count after its ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_namespace() -> str:
    """This process's pid namespace (Linux), or "": two containers on one host may share a host
    name (host networking) but not a pid namespace, and a pid means nothing outside its own."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def process_tags() -> dict[str, str]:
    """The tags naming this process as the holder of a run: host, and ``pid start pid-namespace``."""
    pid = os.getpid()
    return {
        HOST_TAG: socket.gethostname(),
        PROCESS_TAG: f"{pid} {_proc_start_ticks(pid) or '-'} {_pid_namespace() or '-'}",
    }


def _process_gone(process: str) -> bool:
    """Whether the process named by a :data:`PROCESS_TAG` value, on this host, no longer runs.

    False when that cannot be told (another pid namespace, a malformed tag): a run is closed only
    when its process is known to be gone.
    """
    parts = process.split()
    if len(parts) != 3 or not parts[0].isdigit():
        return False
    pid, start, namespace = int(parts[0]), parts[1], parts[2]
    if namespace != (_pid_namespace() or "-"):
        return False
    if start != "-":
        return _proc_start_ticks(pid) != start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


def close_stale_runs(
    client: MlflowClient, experiment_id: str, *, keep: tuple[str, ...] = ()
) -> list[str]:
    """Mark KILLED the RUNNING runs of ``experiment_id`` whose process, on this host, is gone.

    A run whose process was killed outright cannot close itself and would stay RUNNING for ever;
    every new run looks for such runs in its experiment when it starts (one query). Runs held by
    other hosts, or recorded without :func:`process_tags`, are left alone: their process cannot
    be checked from here. ``keep``: run ids not to touch (the run being resumed). Returns the ids
    closed.
    """
    host = socket.gethostname().replace("'", "")
    found = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        max_results=1000,
    )
    closed = []
    for run in found:
        run_id = run.info.run_id
        process = run.data.tags.get(PROCESS_TAG, "")
        if run_id in keep or not _process_gone(process):
            continue
        client.set_tag(
            run_id,
            END_TAG,
            f"process {process.split()[0]} on {host} gone while RUNNING (killed outright); "
            f"closed as KILLED by process {os.getpid()}",
        )
        client.set_terminated(run_id, status="KILLED")
        log.warning("MLflow run %s: its process is gone; marked KILLED", run_id)
        closed.append(run_id)
    return closed


class MlflowRun:
    """One training run in MLflow: params and tags at start, metrics per epoch, artifacts at the end.

    ``resume_run_id`` continues that run (a job resumed in its run folder) when the store holds
    it, else a new run is created. ``on_open(run_id)`` is called as soon as the run exists (the
    job records the id in its run folder), before anything else can stop the job. Every run
    carries :func:`process_tags`, and every start closes the RUNNING runs of its experiment whose
    process is gone (:func:`close_stale_runs`). Writes to a local store hold signals
    (:func:`deferred_signals`).
    """

    def __init__(
        self,
        tracking: TrackingConfig,
        *,
        run_name: str,
        params: dict[str, str] | None = None,
        tags: dict[str, str],
        resume_run_id: str | None = None,
        parent: dict[str, str] | None = None,
        on_open: Callable[[str], None] | None = None,
    ) -> None:
        self.uri = resolve_tracking_uri(tracking.tracking_uri)
        self.local = self.uri.startswith("sqlite:")
        self.client = get_client(self.uri)
        self.resumed = False
        self.run_id = ""  # set as soon as the run exists
        self._monitor: Any = None
        self.experiment_id = ""
        try:
            # One block: a signal arriving while the run is being opened is delivered when it is
            # complete and recorded (at the end of the block), and then closes it as KILLED.
            with deferred_signals(self.local):
                self._open(tracking, run_name, params or {}, tags, resume_run_id, parent, on_open)
        except BaseException as exc:
            if self.run_id:  # the caller never gets this run to close: close it here
                self.fail("FAILED" if isinstance(exc, Exception) else "KILLED")
            raise
        if tracking.system_metrics:
            self._start_system_metrics()

    def _start_system_metrics(self) -> None:
        """CPU, memory, disk and (with pynvml) GPU use every 10 s as ``system/*`` metrics."""
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self._monitor = SystemMetricsMonitor(self.run_id, resume_logging=self.resumed)
            with tracking_uri_scope(self.uri):
                self._monitor.start()
        except Exception as exc:  # noqa: BLE001 - optional; the run goes on without it
            log.warning("system metrics not recorded: %s", exc)
            self._monitor = None

    def _stop_system_metrics(self) -> None:
        if self._monitor is not None:
            with contextlib.suppress(Exception), tracking_uri_scope(self.uri):
                self._monitor.finish()
            self._monitor = None

    def _open(
        self,
        tracking: TrackingConfig,
        run_name: str,
        params: dict[str, str],
        tags: dict[str, str],
        resume_run_id: str | None,
        parent: dict[str, str] | None,
        on_open: Callable[[str], None] | None,
    ) -> None:
        """Create (params included) or resume the run, call ``on_open``, close stale runs."""
        resumed_in = self._resume(resume_run_id) if resume_run_id is not None else None
        if resume_run_id is not None and resumed_in is not None:
            self.run_id = resume_run_id
            self.resumed = True
            experiment_id = resumed_in
        else:
            experiment_id = get_or_create_experiment(self.client, tracking.experiment)
            all_tags = {**tags, **process_tags()}
            if parent is not None:
                all_tags["mlflow.parentRunId"] = parent["run_id"]
                all_tags["sweep_id"] = parent["sweep_id"]
            run = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
            self.run_id = run.info.run_id
            from mlflow.entities import Param

            items = [Param(k, v[:6000]) for k, v in params.items()]  # MLflow caps 6000 chars
            for start in range(0, len(items), 100):  # MLflow's batch limit: 100 params
                self.client.log_batch(self.run_id, params=items[start : start + 100])
        self.experiment_id = str(experiment_id)
        if on_open is not None:
            on_open(self.run_id)
        self._close_stale(experiment_id, keep=(self.run_id,))

    def _resume(self, run_id: str) -> str | None:
        """Take over ``run_id`` (set RUNNING, held by this process) and return its experiment id;
        None when the store does not hold it (the folder was first trained into another store)."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            log.warning("MLflow run %s is not in %s: starting a new run", run_id, self.uri)
            return None
        count = int(run.data.tags.get(RESUMES_TAG, "0") or 0) + 1
        # The holder first, then the status: a concurrent close_stale_runs must not see this run
        # RUNNING under the dead process that held it before.
        for key, value in {**process_tags(), RESUMES_TAG: str(count)}.items():
            self.client.set_tag(run_id, key, value)
        self.client.update_run(run_id, status="RUNNING")
        log.info("MLflow run %s resumed (resume %d, was %s)", run_id, count, run.info.status)
        return str(run.info.experiment_id)

    def _close_stale(self, experiment_id: str, keep: tuple[str, ...]) -> None:
        """:func:`close_stale_runs`, never stopping the run that asks (it is housekeeping)."""
        try:
            close_stale_runs(self.client, experiment_id, keep=keep)
        except Exception as exc:  # e.g. a server without search: the run itself is fine
            log.warning("could not look for stale MLflow runs in %s: %s", self.uri, exc)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Per-epoch metrics with ``step=epoch``."""
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        with deferred_signals(self.local):
            self.client.log_batch(
                self.run_id, metrics=[Metric(k, float(v), now, epoch) for k, v in metrics.items()]
            )

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Final (step 0) metrics."""
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        with deferred_signals(self.local):
            for start in range(0, len(items), 1000):
                self.client.log_batch(self.run_id, metrics=items[start : start + 1000])

    def log_file(self, path: Path, artifact_path: str | None = None) -> None:
        """Upload one file."""
        with deferred_signals(self.local):
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dataset(self, name: str, digest: str, source: str, profile: dict[str, Any]) -> None:
        """The dataset as the run's input (context ``training``): the run page's Datasets box."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        entity = Dataset(
            name=name,
            digest=digest[:36],
            source_type="local",
            source=json.dumps({"uri": source}),
            profile=json.dumps(profile, default=str),
        )
        context = InputTag(key="mlflow.data.context", value="training")
        with deferred_signals(self.local):
            self.client.log_inputs(self.run_id, datasets=[DatasetInput(entity, tags=[context])])

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set several tags."""
        with deferred_signals(self.local):
            for k, v in tags.items():
                self.client.set_tag(self.run_id, k, v)

    def logged_epochs(self) -> set[int]:
        """The epochs whose ``val/loss`` the run holds."""
        return {m.step for m in self.client.get_metric_history(self.run_id, "val/loss")}

    def log_curve(self, name: str, points: list[tuple[float, float]]) -> None:
        """A curve as one metric whose step is x, so the dashboard draws it against x. MLflow steps
        are integers: a fractional x (an SNR of 2.5 dB) is rounded here; the exact grid is in the
        run's ``test_conditions.csv`` and ``test_grid.json`` artifacts."""
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        items = [Metric(name, float(y), now, int(round(x))) for x, y in points]
        with deferred_signals(self.local):
            for start in range(0, len(items), 1000):
                self.client.log_batch(self.run_id, metrics=items[start : start + 1000])

    def describe(self) -> str:
        """Where the run is, how to open the dashboard, and the run's page there (in MLflow's
        machine-learning view: its UI opens the GenAI view unless the link asks)."""
        lines = [
            f"MLflow run {self.run_id} in {self.uri}",
            "dashboard: make ui   (or: mlflow server --backend-store-uri "
            f"{self.uri} --host 127.0.0.1 --port 5000)",
        ]
        if self.experiment_id and not self.uri.startswith(("http://", "https://")):
            lines.append(
                f"run page: http://127.0.0.1:5000/#/experiments/{self.experiment_id}/runs/"
                f"{self.run_id}/model-metrics?workflowType=machine_learning"
            )
        return "\n".join(lines)

    def log_model(
        self, model: Any, input_example: Any, card: dict[str, Any], name: str = "model"
    ) -> None:
        """Log the classifier as an MLflow pytorch model (batch-2 input example, explicit requirements)."""
        import mlflow
        import mlflow.pytorch
        import torch

        torch_req = f"torch=={torch.__version__.split('+')[0]}"
        with (
            deferred_signals(self.local),
            tracking_uri_scope(self.uri),
            mlflow.start_run(run_id=self.run_id),
        ):
            mlflow.pytorch.log_model(
                model,
                name=name,
                input_example=input_example,
                pip_requirements=[torch_req, f"mlflow=={mlflow.__version__}", "numpy"],
                metadata={"model_card": json.loads(json.dumps(card, default=str))},
                # torch.export (pt2), not a pickled module; torch.export.load can still unpickle
                # some members (docs/export.md, 'Security and tamper checks'). The project never loads this logged
                # model: fd-export rebuilds from classifier_state.pt (weights_only=True).
                serialization_format="pt2",
            )

    def finish(self) -> None:
        """Mark the run finished."""
        self._stop_system_metrics()
        with deferred_signals(self.local):
            self.client.set_terminated(self.run_id, status="FINISHED")

    def fail(self, status: str = "FAILED") -> None:
        """Mark the run ended without finishing: ``FAILED`` (an exception) or ``KILLED`` (a signal
        or Ctrl-C).

        Called while another error propagates, so it never raises one of its own (which would
        hide the cause): when the store cannot be written either (a full disk holding it), the
        run stays RUNNING until its resume takes it over or the next run started in its
        experiment on this host closes it (:func:`close_stale_runs`, its process being gone).
        """
        try:
            self._stop_system_metrics()
            with deferred_signals(self.local):
                self.client.set_terminated(self.run_id, status=status)
        except Exception as exc:
            log.error(
                "could not mark MLflow run %s %s in %s (%s); it is closed when resumed, or by "
                "the next run started on this host",
                self.run_id,
                status,
                self.uri,
                exc,
            )


class MlflowBackend:
    """``tracking.backend=mlflow``: runs, sweeps and models in an MLflow store (the default)."""

    def check(self, tracking: TrackingConfig) -> None:
        """A garbage file, a half-migrated store, an unwritable folder, no server: fail now."""
        uri = resolve_tracking_uri(tracking.tracking_uri)
        check_store_writable(uri)
        get_client(uri)

    def location(self, tracking: TrackingConfig) -> str | None:
        return resolve_tracking_uri(tracking.tracking_uri)

    def start_run(
        self,
        tracking: TrackingConfig,
        *,
        run_name: str,
        params: dict[str, str],
        tags: dict[str, str],
        resume_run_id: str | None = None,
        sweep_dir: Path | None = None,
        on_open: Callable[[str], None] | None = None,
    ) -> MlflowRun:
        parent = read_parent_run(sweep_dir) if sweep_dir is not None else None
        return MlflowRun(
            tracking,
            run_name=run_name,
            params=params,
            tags=tags,
            resume_run_id=resume_run_id,
            parent=parent,
            on_open=on_open,
        )

    def start_sweep(
        self, tracking: TrackingConfig, *, sweep_id: str, sweep_dir: Path, overrides: list[str]
    ) -> None:
        create_sweep_parent(tracking, sweep_id=sweep_id, sweep_dir=sweep_dir, overrides=overrides)

    def finish_sweep(
        self,
        tracking: TrackingConfig,
        sweep_dir: Path,
        summary: list[dict[str, Any]] | None = None,
    ) -> None:
        record = read_parent_run(sweep_dir)
        if record is None:
            return
        try:
            summarise_sweep(record)
        except Exception as exc:  # noqa: BLE001 - the summary is a view; closing the run matters
            log.warning("could not summarise sweep %s on its parent run: %s", record["run_id"], exc)
        finish_sweep_parent(record)


def _number(text: str | None) -> float | None:
    """A tag's numeric value (``"4.0"`` -> 4.0), None for ``"None"``, empty or non-numbers."""
    try:
        return float(text) if text not in (None, "", "None") else None
    except ValueError:
        return None


def summarise_sweep(record: dict[str, str]) -> int:
    """Put a sweep's result on its parent run: the table of every finished child's test grid
    (``sweep_grid`` table: model, protocol, kind, SNR, seed, balanced accuracy, plain/AdaBN), the
    mean balanced accuracy against SNR per model and noise kind as curves
    (``curve/bal_acc/<kind>/<model>``, step = SNR in dB) and as a figure
    (``accuracy_vs_snr.png``). Returns the number of children summarised."""
    import pandas as pd

    from fault_diag.metric_names import HEADLINE_METRIC, PLAIN, parse_metric_name

    client = get_client(record["tracking_uri"])
    children = client.search_runs(
        [record["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{record['run_id']}'",
        max_results=5000,
    )
    rows = []
    for run in children:
        if run.info.status != "FINISHED":
            continue
        tags = run.data.tags
        for name, value in run.data.metrics.items():
            key = parse_metric_name(name)
            if key is None or key.scope != "grid" or key.metric != HEADLINE_METRIC:
                continue
            rows.append(
                {
                    "model": tags.get("model", "?"),
                    "protocol": tags.get("protocol", "?"),
                    "train_noise": tags.get("noise", "?"),
                    "train_snr_db": _number(tags.get("snr_db")),
                    "seed": _number(tags.get("seed")),
                    "kind": key.kind,
                    "snr_db": key.snr_db,
                    "variant": key.variant,
                    "bal_acc": float(value),
                    "run_id": run.info.run_id,
                }
            )
    if not rows:
        return 0
    table = pd.DataFrame(rows).sort_values(["model", "protocol", "kind", "snr_db", "seed"])
    parent = record["run_id"]
    client.log_table(parent, data=table, artifact_file="sweep_grid.json")
    plain = table[table["variant"] == PLAIN]
    mean = plain.groupby(["model", "kind", "snr_db"], as_index=False)["bal_acc"].mean()
    from mlflow.entities import Metric
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    metrics = [
        Metric(f"curve/bal_acc/{r.kind}/{r.model}", float(r.bal_acc), now, int(round(r.snr_db)))
        for r in mean.itertuples()
    ]
    for start in range(0, len(metrics), 1000):
        client.log_batch(parent, metrics=metrics[start : start + 1000])
    from fault_diag.viz import plot_snr_curves

    curves = {
        f"{model} / {kind}": [
            (float(x), float(y)) for x, y in zip(g["snr_db"], g["bal_acc"], strict=True)
        ]
        for (model, kind), g in mean.groupby(["model", "kind"])
    }
    n_runs = table["run_id"].nunique()
    fig = plot_snr_curves(curves, f"sweep {record['sweep_id']}: mean over {n_runs} run(s)")
    with tempfile.TemporaryDirectory(prefix="fd-sweep-") as tmp:
        path = Path(tmp) / "accuracy_vs_snr.png"
        fig.savefig(path, dpi=100)
        client.log_artifact(parent, str(path))
    return int(n_runs)
