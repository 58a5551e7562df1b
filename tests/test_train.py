"""fd-train end to end on a small slice of the real CWRU data, into temporary MLflow stores.

Each test runs the real command (``python -m fault_diag.cli.train``) in a fresh project root
(``FAULT_DIAG_ROOT``), so the sqlite store, the artifacts and Hydra's output folders all land in tmp.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import project_env as _env

pytestmark = pytest.mark.integration

# 0 HP files only, non-overlapping training windows, a 2-point test grid: seconds per epoch on 2 cores.
SMALL = [
    "data.loads=[0]",
    "data.train_hop=2048",
    "trainer.progress=false",
    "trainer.num_threads=1",
    "noise=gaussian",  # matched (the default noise group is mixed)
    "noise.snr_db=0",
    "noise.test_snr_grid_db=[-4,4]",
    "noise.test_kinds=[gaussian,pink]",
]


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dataset-cache")


def _fd_train(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fault_diag.cli.train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _client(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, cwru_dir: Path, shared_cache: Path):
    """One real 1-epoch DRSN-CW run with the model logged; returns (root, run_id, stdout)."""
    root = tmp_path_factory.mktemp("project")
    proc = _fd_train(
        [*SMALL, "trainer.epochs=1", "tracking.experiment=unit", f"hydra.run.dir={root}/run"],
        _env(root, cwru_dir, shared_cache),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = _client(root).search_runs([_client(root).get_experiment_by_name("unit").experiment_id])
    assert len(runs) == 1
    return root, runs[0].info.run_id, proc.stdout


def test_one_epoch_run_records_params_tags_metrics_and_artifacts(finished_run) -> None:
    root, run_id, stdout = finished_run
    client = _client(root)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.name"] == "drsn_cw"
    assert params["noise.kind"] == "gaussian" and float(params["noise.snr_db"]) == 0.0
    assert params["data.setup"] == "cwru10"
    assert not any(k.startswith("paths.") for k in params), "machine paths must not be params"
    assert not any(str(root) in v for v in params.values())
    tags = run.data.tags
    for key, value in {"model": "drsn_cw", "noise": "gaussian", "protocol": "matched"}.items():
        assert tags[key] == value
    assert {"snr_db", "split", "git_commit"} <= tags.keys()
    for name in ("train/loss", "train/acc", "val/loss", "val/acc"):
        history = client.get_metric_history(run_id, name)
        assert [m.step for m in history] == [1], name
    metrics = run.data.metrics
    assert 0.0 <= metrics["test/acc"] <= 1.0 and 0.0 <= metrics["test/macro_f1"] <= 1.0
    for kind in ("gaussian", "pink"):
        for snr in (-4, 4):
            assert 0.0 <= metrics[f"test/acc/{kind}/{snr}dB"] <= 1.0
    assert any(k.startswith("threshold/") for k in metrics), "DRSN threshold summary missing"
    # Every condition has the four metrics, plain and after AdaBN (DRSN-CW has BatchNorm).
    for metric in ("acc", "bal_acc", "macro_f1", "healthy_share"):
        for suffix in ("", "/clean", "/gaussian/-4dB", "/pink/4dB"):
            for variant in ("", "/adabn"):
                assert 0.0 <= metrics[f"test/{metric}{suffix}{variant}"] <= 1.0, metric + suffix
    assert tags["test_draws"] == "3" and tags["select"] == "val_loss"
    assert tags["healthy_class"] == "normal"
    assert 0.0 <= metrics["test/recall/OR007_6"] <= 1.0
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {
        "config.yaml",
        "overrides.yaml",
        "confusion_matrix.png",
        "per_class_metrics.csv",
        "thresholds_summary.json",
        "model_card.json",
        "test_grid.json",
        "test_conditions.csv",
        "window_scores.npz",
    } <= artifacts
    scores = np.load(client.download_artifacts(run_id, "window_scores.npz", str(root)))
    conditions = list(scores["conditions"])
    assert conditions[:2] == ["train", "clean"] and "gaussian/-4dB/adabn" in conditions
    assert scores["correct"].shape == (len(conditions), scores["labels"].size)
    # The window scores reproduce the logged balanced accuracy (mean of per-class recalls).
    i = conditions.index("pink/4dB")
    recalls = [scores["correct"][i][scores["labels"] == c].mean() for c in range(10)]
    assert np.mean(recalls) == pytest.approx(metrics["test/bal_acc/pink/4dB"], abs=1e-6)
    card = json.loads(
        Path(client.download_artifacts(run_id, "model_card.json", str(root))).read_text()
    )
    assert card["sampling_rate_hz"] == 12000 and card["window_length"] == 2048
    assert len(card["labels"]) == 10 and card["mlflow_run_id"] == run_id
    assert card["noise_protocol"]["noise_protocol"] == "matched"
    assert card["healthy_class"] == "normal"
    assert card["envelope"]["protocol"] == "matched"
    assert card["envelope"]["train_snr_db_range"] == [0.0, 0.0]
    assert card["summary"]["clean"]["bal_acc"] == pytest.approx(metrics["test/bal_acc/clean"])
    assert "by val_loss" in stdout
    assert f"balanced acc {metrics['test/bal_acc']:6.3f}" in stdout
    assert "after AdaBN" in stdout and "sent to normal" in stdout
    assert "make ui" in stdout
    assert "model-metrics?workflowType=machine_learning" in stdout  # not MLflow's GenAI view
    # honest timings: the total and its parts
    import re

    assert re.search(
        r"wall time \d+ s: data \d+ s, epochs \d+ s, test grid \d+ s, artifacts", stdout
    )


def test_logged_model_loads_and_predicts_batches_of_any_size(finished_run) -> None:
    import mlflow.pyfunc
    import numpy as np

    root, run_id, _ = finished_run
    model_uri = None
    for logged in _client(root).search_logged_models(
        experiment_ids=[_client(root).get_run(run_id).info.experiment_id]
    ):
        if logged.source_run_id == run_id:
            model_uri = logged.model_uri
    assert model_uri is not None, "the run has no logged model"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")
    for batch in (1, 5):
        x = np.random.default_rng(0).normal(size=(batch, 1, 2048)).astype(np.float32)
        assert np.asarray(model.predict(x)).shape == (batch, 10)


def test_mlflow_server_serves_the_run_over_rest(finished_run) -> None:
    root, run_id, _ = finished_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("mlflow server did not come up") from None
                time.sleep(0.5)
        with urllib.request.urlopen(f"{base}/runs/get?run_id={run_id}", timeout=10) as resp:
            run = json.load(resp)["run"]
        names = {m["key"] for m in run["data"]["metrics"]}
        assert {"test/acc", "val/acc", "train/loss"} <= names
        with urllib.request.urlopen(f"{base}/artifacts/list?run_id={run_id}", timeout=10) as resp:
            files = {f["path"] for f in json.load(resp).get("files", [])}
        assert {"confusion_matrix.png", "model_card.json"} <= files
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_a_refused_rerun_leaves_the_finished_run_alone(
    finished_run, cwru_dir: Path, shared_cache: Path
) -> None:
    """Another configuration into the same run folder is refused before the earlier MLflow run is
    reopened: it stays FINISHED (it used to be set RUNNING, then FAILED)."""
    root, run_id, _ = finished_run
    proc = _fd_train(
        [
            *SMALL,
            "trainer.epochs=1",
            "trainer.seed=7",
            "tracking.experiment=unit",
            f"hydra.run.dir={root}/run",
        ],
        _env(root, cwru_dir, shared_cache),
    )
    assert proc.returncode != 0
    assert "was written by a different configuration" in proc.stderr
    client = _client(root)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert len(client.search_runs([client.get_experiment_by_name("unit").experiment_id])) == 1


def _checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except Exception:
        return 0


MIXED = [
    *(a for a in SMALL if not a.startswith("noise")),
    "noise=mixed",
    "noise.test_snr_grid_db=[-4,4]",
    "noise.test_kinds=[gaussian,pink]",
    "noise.train_kinds=[gaussian,pink,laplacian]",
]


@pytest.mark.parametrize("protocol", ["matched", "mixed"])
def test_killed_run_resumes_to_the_same_metrics(
    protocol: str, tmp_path: Path, cwru_dir: Path, shared_cache: Path
) -> None:
    env = _env(tmp_path, cwru_dir, shared_cache)
    base = SMALL if protocol == "matched" else MIXED
    args = [*base, "trainer.epochs=5", "tracking=none", "trainer.lr_milestones=[0.6]"]
    # Reference: uninterrupted.
    ref = _fd_train([*args, f"hydra.run.dir={tmp_path}/ref"], env)
    assert ref.returncode == 0, ref.stderr[-4000:]

    run_dir = tmp_path / "killed"
    ckpt = run_dir / "checkpoints" / "last.pt"
    cmd = [sys.executable, "-m", "fault_diag.cli.train", *args, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (ckpt.exists() and _checkpoint_epoch(ckpt) >= 2):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _checkpoint_epoch(ckpt)
    assert 2 <= killed_at < 5, f"killed after epoch {killed_at}: not mid-way"
    assert not (run_dir / "artifacts" / "history.json").exists()

    resumed = _fd_train([*args, f"hydra.run.dir={run_dir}"], env)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    ref_hist = json.loads((tmp_path / "ref" / "artifacts" / "history.json").read_text())
    res_hist = json.loads((run_dir / "artifacts" / "history.json").read_text())
    assert len(res_hist) == 5
    assert res_hist == ref_hist  # bit-identical metrics, epoch by epoch
    ref_card = json.loads((tmp_path / "ref" / "artifacts" / "model_card.json").read_text())
    res_card = json.loads((run_dir / "artifacts" / "model_card.json").read_text())
    assert res_card["metrics"] == ref_card["metrics"]


def test_sigterm_closes_the_run_as_killed(
    tmp_path: Path, cwru_dir: Path, shared_cache: Path
) -> None:
    """SIGTERM (SLURM, containers, kill) during training ends the MLflow run as KILLED, not RUNNING."""
    env = _env(tmp_path, cwru_dir, shared_cache)
    run_dir = tmp_path / "term"
    ckpt = run_dir / "checkpoints" / "last.pt"
    cmd = [
        sys.executable,
        "-m",
        "fault_diag.cli.train",
        *SMALL,
        "trainer.epochs=50",
        "tracking.experiment=term",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not (ckpt.exists() and _checkpoint_epoch(ckpt) >= 1):
        assert proc.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    client = _client(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("term").experiment_id])
    assert run.info.status == "KILLED", err[-2000:]


def test_joblib_multirun_gives_one_parent_and_two_children(
    tmp_path: Path, cwru_dir: Path, shared_cache: Path
) -> None:
    env = _env(tmp_path, cwru_dir, shared_cache)
    proc = _fd_train(
        [
            "-m",
            *SMALL,
            "model=drsn_cw,resnet1d",
            "hydra/launcher=local_parallel",
            "trainer.epochs=1",
            "tracking.experiment=sweep_test",
            "tracking.log_model=false",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    client = _client(tmp_path)
    exp = client.get_experiment_by_name("sweep_test")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("fd.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {c.data.tags["model"] for c in children} == {"drsn_cw", "resnet1d"}
    assert all(c.info.status == "FINISHED" for c in children)
    assert parents[0].info.status == "FINISHED"
    record = json.loads((tmp_path / "sweep" / "mlflow_parent_run.json").read_text())
    assert record["run_id"] == parents[0].info.run_id


def test_submitit_local_launcher_runs_a_job(
    tmp_path: Path, cwru_dir: Path, shared_cache: Path
) -> None:
    """The SLURM launcher's machinery (submitit), exercised locally with hydra/launcher=submitit_local."""
    env = _env(tmp_path, cwru_dir, shared_cache)
    proc = _fd_train(
        [
            "-m",
            *SMALL,
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "trainer.epochs=1",
            "tracking.experiment=submitit_test",
            "tracking.log_model=false",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    client = _client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("submitit_test").experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    assert 0.0 <= children[0].data.metrics["test/acc"] <= 1.0
    assert list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl")), (
        "submitit left no result"
    )


def test_slurm_launcher_config_composes_with_submitit() -> None:
    from hydra import compose, initialize_config_dir

    from fault_diag.config import register_configs

    register_configs()
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    assert "SlurmLauncher" in cfg.hydra.launcher._target_
    assert cfg.hydra.launcher.gpus_per_node == 1
