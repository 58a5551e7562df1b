"""The life of a training run in MLflow (issue 18, item 3): closed FINISHED, FAILED or KILLED
whatever ends it, never left RUNNING by a process that is gone, and continued in the same run
when its job is resumed in its run folder.

The first tests are unit tests on a temporary sqlite store; the ``integration`` ones run the real
``fd-train`` on a small slice of CWRU and stop it with signals or simulated full disks.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import project_env
from omegaconf import DictConfig

from fault_diag import lifecycle
from fault_diag.lifecycle import RunFolderBusy, Terminated, run_folder_lock, tracked_run
from fault_diag.training.run import RUN_RECORD, previous_run_id, write_run_record


def _compose(tmp: Path, *overrides: str) -> DictConfig:
    from hydra import compose, initialize_config_dir

    from fault_diag.config import register_configs

    register_configs()
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(
            "config",
            overrides=[
                f"tracking.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
                f"paths.output_dir={tmp / 'run'}",
                "tracking.experiment=life",
                *overrides,
            ],
        )


class _Tracker:
    def __init__(self) -> None:
        self.closed: list[str] = []
        self.run_id = "r"

    def fail(self, status: str = "FAILED") -> None:
        self.closed.append(status)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "FAILED"),
        (ValueError("bad"), "FAILED"),
        (KeyboardInterrupt(), "KILLED"),
        (Terminated("SIGTERM received"), "KILLED"),
    ],
)
def test_any_error_closes_the_run(error: BaseException, status: str) -> None:
    tracker = _Tracker()
    with pytest.raises(type(error)), tracked_run(lambda: tracker):
        raise error
    assert tracker.closed == [status]


def test_a_clean_end_does_not_close_the_run_as_failed() -> None:
    tracker = _Tracker()
    with tracked_run(lambda: tracker) as opened:
        assert opened is tracker
    assert tracker.closed == []


def test_sigterm_and_sighup_raise_once_then_are_ignored_until_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    # under nohup (a CI runner, a background shell) SIGHUP arrives ignored, and an ignored signal
    # stays ignored (test_an_ignored_sigterm_stays_ignored): start from the default disposition
    hup_before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    restore = lifecycle.stop_signals_raise()
    try:
        with pytest.raises(Terminated, match="SIGHUP"):
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal must not interrupt the closing
        time.sleep(0.1)
    finally:
        restore()
        signal.signal(signal.SIGHUP, hup_before)
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize(
    ("sig", "error"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_stop_signal_waits_for_the_end_of_a_store_write(
    sig: signal.Signals, error: type[BaseException]
) -> None:
    """Raised inside SQLAlchemy's commit, the exception could leave the sqlite file locked and
    the run unclosable: it is raised when the write is done."""
    from fault_diag.lifecycle import deferred_signals

    reached = []
    restore = lifecycle.stop_signals_raise()
    try:
        with pytest.raises(error), deferred_signals():
            os.kill(os.getpid(), sig)
            time.sleep(0.2)
            reached.append("end of the write")
    finally:
        restore()
    assert reached == ["end of the write"]


def test_an_ignored_sigterm_stays_ignored() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        restore = lifecycle.stop_signals_raise()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        restore()
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_second_job_in_a_busy_run_folder_is_refused(tmp_path: Path) -> None:
    with run_folder_lock(tmp_path):
        with pytest.raises(RunFolderBusy, match=str(tmp_path)) as info, run_folder_lock(tmp_path):
            pass
        assert "hydra.run.dir" in str(info.value)
    with run_folder_lock(tmp_path):  # released
        pass


def test_the_run_record_is_used_only_for_this_store_and_configuration(tmp_path: Path) -> None:
    from fault_diag.training.loop import config_fingerprint

    cfg = _compose(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    uri = str(cfg.tracking.tracking_uri)
    assert previous_run_id(cfg, out, uri) is None
    write_run_record(out, "abc", uri, config_fingerprint(cfg))
    assert previous_run_id(cfg, out, uri) == "abc"
    assert previous_run_id(cfg, out, "sqlite:////elsewhere.db") is None
    assert previous_run_id(_compose(tmp_path, "trainer.seed=9"), out, uri) is None
    # trainer.resume=false trains from scratch: a new run, the recorded one left alone.
    assert previous_run_id(_compose(tmp_path, "trainer.resume=false"), out, uri) is None
    assert json.loads((out / RUN_RECORD).read_text())["run_id"] == "abc"


# --- MlflowRun on a real store ----------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a migrated sqlite store (migrating takes seconds: done once)."""
    from fault_diag.tracking import get_client

    folder = tmp_path_factory.mktemp("store")
    get_client(f"sqlite:///{folder / 'mlflow.db'}")
    return folder


@pytest.fixture
def root(store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FAULT_DIAG_ROOT", str(store))  # artifacts under tmp
    yield store


def _dead_process_tag() -> str:
    """A :data:`PROCESS_TAG` value naming a process of this host that has exited."""
    from fault_diag.tracking import _pid_namespace, _proc_start_ticks

    child = subprocess.Popen(["sleep", "30"])
    tag = f"{child.pid} {_proc_start_ticks(child.pid) or '-'} {_pid_namespace() or '-'}"
    child.kill()
    child.wait()
    return tag


def test_a_new_run_closes_runs_whose_process_is_gone(root: Path) -> None:
    import socket

    from fault_diag.tracking import (
        HOST_TAG,
        PROCESS_TAG,
        MlflowRun,
        get_client,
        get_or_create_experiment,
        process_tags,
    )

    cfg = _compose(root, "tracking.experiment=stale")
    client = get_client(str(cfg.tracking.tracking_uri))
    exp = get_or_create_experiment(client, "stale")
    host = socket.gethostname()
    me = process_tags()[PROCESS_TAG]
    pid, start, ns = me.split()
    cases = {
        "killed": {HOST_TAG: host, PROCESS_TAG: _dead_process_tag()},
        "pid-reused": {HOST_TAG: host, PROCESS_TAG: f"{pid} 1 {ns}"},
        "alive": {HOST_TAG: host, PROCESS_TAG: me},
        "other-host": {HOST_TAG: "elsewhere", PROCESS_TAG: _dead_process_tag()},
        "other-namespace": {HOST_TAG: host, PROCESS_TAG: f"{pid} 1 pid:[1]"},
        "untagged": {},
    }
    ids = {name: client.create_run(exp, tags=tags).info.run_id for name, tags in cases.items()}
    new = MlflowRun(cfg.tracking, run_name="r", tags={})
    status = {name: client.get_run(i).info.status for name, i in ids.items()}
    assert status == {
        "killed": "KILLED",
        "pid-reused": "KILLED",
        "alive": "RUNNING",
        "other-host": "RUNNING",
        "other-namespace": "RUNNING",
        "untagged": "RUNNING",
    }
    assert "gone" in client.get_run(ids["killed"]).data.tags["fd.end"]
    assert client.get_run(new.run_id).info.status == "RUNNING"


def test_a_resumed_run_keeps_its_id_and_counts_its_resumes(root: Path) -> None:
    from fault_diag.tracking import MlflowRun

    cfg = _compose(root, "tracking.experiment=resume")
    first = MlflowRun(cfg.tracking, run_name="r", tags={"model": "wdcnn"})
    first.fail("KILLED")
    again = MlflowRun(
        cfg.tracking, run_name="r", tags={"model": "wdcnn"}, resume_run_id=first.run_id
    )
    assert again.run_id == first.run_id and again.resumed
    run = again.client.get_run(first.run_id)
    assert run.info.status == "RUNNING" and run.data.tags["fd.resumes"] == "1"
    again.finish()
    runs = again.client.search_runs([run.info.experiment_id])
    assert [r.info.run_id for r in runs] == [first.run_id]


def test_a_run_id_unknown_to_the_store_starts_a_new_run(root: Path) -> None:
    from fault_diag.tracking import MlflowRun

    cfg = _compose(root, "tracking.experiment=unknown")
    run = MlflowRun(
        cfg.tracking, run_name="r", tags={}, resume_run_id="0123456789abcdef0123456789abcdef"
    )
    assert not run.resumed and run.run_id != "0123456789abcdef0123456789abcdef"


def test_a_run_whose_params_cannot_be_logged_is_closed(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The constructor's caller never gets the run to close: the constructor closes it."""
    import sqlite3

    from mlflow import MlflowClient

    from fault_diag.tracking import MlflowRun, get_client

    def full(self: Any, *args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    cfg = _compose(root, "tracking.experiment=params")
    monkeypatch.setattr(MlflowClient, "log_batch", full)
    with pytest.raises(sqlite3.OperationalError):
        MlflowRun(cfg.tracking, run_name="r", params={"model.name": "wdcnn"}, tags={})
    client = get_client(str(cfg.tracking.tracking_uri))
    (run,) = client.search_runs([client.get_experiment_by_name("params").experiment_id])
    assert run.info.status == "FAILED"


def test_fail_never_hides_the_error_it_reports(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that cannot be written (its disk full) cannot take the status either: ``fail``
    logs that and returns, so the error that ended the job is the one reported."""
    from fault_diag.tracking import MlflowRun

    run = MlflowRun(_compose(root, "tracking.experiment=full").tracking, run_name="r", tags={})

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run.client, "set_terminated", full)
    with caplog.at_level(logging.ERROR, logger="fault_diag.tracking"):
        run.fail()
    assert "could not mark MLflow run" in caplog.text and run.run_id in caplog.text


# --- fd-train, stopped in every way ------------------------------------------------------------

# Seconds per epoch on 2 cores; train_hop=1024 makes the first epoch long enough to stop in it.
LIFE = [
    "model=wdcnn",
    "data.loads=[0]",
    "data.train_hop=1024",
    "noise=clean_train",
    "noise.test_snr_grid_db=[0]",
    "noise.test_draws=1",
    "eval.adapt_bn=false",
    "trainer.progress=false",
    "trainer.num_threads=1",
    "tracking.log_model=false",
]


@pytest.fixture(scope="module")
def life_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("life-cache")


def _cmd(args: list[str], patch: str = "") -> list[str]:
    """fd-train, optionally with ``patch`` (Python) run first in the same process."""
    if not patch:
        return [sys.executable, "-m", "fault_diag.cli.train", *args]
    code = f"{patch}\nfrom fault_diag.cli.train import main\nmain()\n"
    return [sys.executable, "-c", code, *args]


def _client(root: Path) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def _runs(root: Path, experiment: str) -> list[Any]:
    client = _client(root)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the job ended before {path.name} appeared"
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.05)


@pytest.mark.integration
def test_a_job_killed_outright_is_continued_in_the_same_run(
    tmp_path: Path, cwru_dir: Path, life_cache: Path
) -> None:
    """SIGKILL before the first checkpoint (nothing can close the run), then the same command:
    the same MLflow run continues and finishes. Then ``trainer.resume=false`` in that folder
    trains from scratch into a new run and leaves the finished one alone."""
    env = project_env(tmp_path, cwru_dir, life_cache)
    run_dir = tmp_path / "job"
    args = [*LIFE, "trainer.epochs=2", "tracking.experiment=kill9", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(_cmd(args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(run_dir / RUN_RECORD, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "checkpoints" / "last.pt").exists(), "killed too late to test this"
    (killed,) = _runs(tmp_path, "kill9")
    assert killed.info.status == "RUNNING"  # nothing could close it

    resumed = subprocess.run(_cmd(args), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = _runs(tmp_path, "kill9")
    assert run.info.run_id == killed.info.run_id
    assert run.info.status == "FINISHED" and run.data.tags["fd.resumes"] == "1"
    assert [m.step for m in _client(tmp_path).get_metric_history(run.info.run_id, "val/acc")] == [
        1,
        2,
    ]

    fresh = subprocess.run(
        _cmd([*args, "trainer.resume=false"]), env=env, capture_output=True, text=True, timeout=300
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    runs = {r.info.run_id: r.info.status for r in _runs(tmp_path, "kill9")}
    assert len(runs) == 2 and set(runs.values()) == {"FINISHED"}


@pytest.mark.integration
def test_ctrl_c_closes_the_run_as_killed(tmp_path: Path, cwru_dir: Path, life_cache: Path) -> None:
    env = project_env(tmp_path, cwru_dir, life_cache)
    run_dir = tmp_path / "job"
    args = [*LIFE, "trainer.epochs=20", "tracking.experiment=int", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(_cmd(args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(run_dir / RUN_RECORD, proc)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    (run,) = _runs(tmp_path, "int")
    assert run.info.status == "KILLED", err[-2000:]


# Simulated full disks, in the fd-train process itself.
FULL_CHECKPOINT_DISK = """
import errno, torch
def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
torch.save = _full
"""
FULL_STORE_DISK = """
import sqlite3
from fault_diag.tracking import MlflowRun
def _full(*args, **kwargs):
    raise sqlite3.OperationalError("database or disk is full")
MlflowRun.log_epoch = _full
from mlflow import MlflowClient
MlflowClient.set_terminated = _full
"""


@pytest.mark.integration
def test_a_full_disk_under_the_checkpoint_closes_the_run_as_failed(
    tmp_path: Path, cwru_dir: Path, life_cache: Path
) -> None:
    env = project_env(tmp_path, cwru_dir, life_cache)
    run_dir = tmp_path / "job"
    args = [*LIFE, "trainer.epochs=1", "tracking.experiment=enospc", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(
        _cmd(args, FULL_CHECKPOINT_DISK), env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0
    assert f"cannot write checkpoint {run_dir / 'checkpoints' / 'last.pt'}" in proc.stderr
    assert "No space left on device" in proc.stderr
    (run,) = _runs(tmp_path, "enospc")
    assert run.info.status == "FAILED"
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "a partial checkpoint was left"


@pytest.mark.integration
def test_a_full_store_leaves_the_run_to_its_resume(
    tmp_path: Path, cwru_dir: Path, life_cache: Path
) -> None:
    """The store's disk full: neither the epoch's metrics nor the status can be written, so the
    run stays RUNNING when the job exits; its resume (disk freed) takes it over and finishes."""
    env = project_env(tmp_path, cwru_dir, life_cache)
    run_dir = tmp_path / "job"
    args = [*LIFE, "trainer.epochs=1", "tracking.experiment=full", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(
        _cmd(args, FULL_STORE_DISK), env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr  # Hydra's log goes to stdout
    assert "database or disk is full" in output and "could not mark MLflow run" in output
    (left,) = _runs(tmp_path, "full")
    assert left.info.status == "RUNNING"

    resumed = subprocess.run(_cmd(args), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = _runs(tmp_path, "full")
    assert run.info.run_id == left.info.run_id and run.info.status == "FINISHED"
    # The checkpointed epoch whose metrics the full store refused reaches the history now.
    history = _client(tmp_path).get_metric_history(run.info.run_id, "val/acc")
    assert [m.step for m in history] == [1]


@pytest.mark.integration
def test_a_garbage_store_is_refused_before_any_work(
    tmp_path: Path, cwru_dir: Path, life_cache: Path
) -> None:
    env = project_env(tmp_path, cwru_dir, life_cache)
    (tmp_path / "mlflow.db").write_bytes(b"not a database\n" * 100)
    started = time.monotonic()
    proc = subprocess.run(
        _cmd([*LIFE, f"hydra.run.dir={tmp_path / 'job'}"]),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    # The message itself (naming the file) is tested on get_client; the CLI words it its way.
    assert "sqlite database" in proc.stderr.lower()
    assert time.monotonic() - started < 60
    output = proc.stdout + proc.stderr
    assert "dataset cwru10" not in output and "MLflow run" not in output
