"""fd-report: tidy table, mean ± std over seeds, plots, logging to the sweep's parent run.

Two levels: runs with known metrics written to a real (temporary) MLflow sqlite store, so every number
of the report can be checked exactly; and a small real sweep (fd-train -m, 2 models x 2 SNRs, 1 epoch).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fault_diag.report import ReportError, build_report

SWEEP = "2026-01-01_00-00-00"
BASE_ACC = {"drsn_cw": 0.80, "resnet1d": 0.70}


def _acc(model: str, snr: float, seed: int) -> float:
    return BASE_ACC[model] + 0.01 * snr + 0.02 * seed


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A sqlite store with one sweep: matched runs (2 models x 2 noises x 2 SNRs x 2 seeds), two
    clean-train runs with a test grid, one failed run, and the sweep's parent run.

    The project root (hence the default store) points at it while the module's tests run.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    tmp_path = tmp_path_factory.mktemp("store")
    mp = pytest.MonkeyPatch()
    mp.setenv("FAULT_DIAG_ROOT", str(tmp_path))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("study", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp, tags={"fd.role": "sweep", "sweep_id": SWEEP}).info.run_id

    def run(tags: dict[str, str], metrics: dict[str, float], status: str = "FINISHED") -> str:
        tags = {
            "sweep_id": SWEEP,
            "mlflow.parentRunId": parent,
            "data_setup": "cwru10",
            "split": "time",
            **tags,
        }
        rid = client.create_run(exp, tags=tags).info.run_id
        client.log_batch(rid, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
        client.set_terminated(rid, status)
        return rid

    for model in BASE_ACC:
        for noise in ("gaussian", "pink"):
            for snr in (-4, 4):
                for seed in (0, 1):
                    acc = _acc(model, snr, seed)
                    metrics = {
                        "test/acc": acc,
                        "test/macro_f1": acc - 0.05,
                        "test/acc/gaussian/0dB": 0.5,
                    }
                    if model == "drsn_cw":
                        metrics["threshold/network.stages.stage1.unit1"] = 0.1 + 0.01 * snr
                        metrics["threshold/network.stages.stage1.unit2"] = 0.3 + 0.01 * snr
                        metrics["threshold/network.stages.stage2.unit1"] = 0.5
                    run(
                        {
                            "model": model,
                            "noise": noise,
                            "snr_db": str(float(snr)),
                            "protocol": "matched",
                            "seed": str(seed),
                        },
                        metrics,
                    )
    for seed in (0, 1):
        run(
            {
                "model": "drsn_cw",
                "noise": "gaussian",
                "snr_db": "None",
                "protocol": "clean_train",
                "seed": str(seed),
            },
            {
                "test/acc": 0.95,
                "test/macro_f1": 0.94,
                "test/acc/clean": 0.95,
                "test/acc/gaussian/-4dB": 0.5 + 0.1 * seed,
                "test/acc/gaussian/4dB": 0.9,
                "test/acc/laplacian/-4dB": 0.4,
            },
        )
    failed = run(
        {
            "model": "resnet1d",
            "noise": "gaussian",
            "snr_db": "0.0",
            "protocol": "matched",
            "seed": "0",
        },
        {},
        status="FAILED",
    )
    yield {"uri": uri, "client": client, "parent": parent, "failed": failed, "root": tmp_path}
    mp.undo()


def test_tidy_table_summary_and_files(store, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = build_report(sweep=SWEEP, out_dir=out)
    table = pd.read_csv(out / "runs.csv")
    matched = table[table["protocol"] == "matched"]
    assert len(matched) == 16  # one row per matched run, at its own condition
    assert (matched["test_noise"] == matched["noise"]).all()
    assert (matched["test_snr_db"] == matched["snr_db"]).all()
    row = matched[
        (matched.model == "resnet1d")
        & (matched.noise == "pink")
        & (matched.snr_db == 4)
        & (matched.seed == 1)
    ]
    assert row["test_acc"].item() == pytest.approx(_acc("resnet1d", 4, 1))
    assert row["macro_f1"].item() == pytest.approx(_acc("resnet1d", 4, 1) - 0.05)

    clean = table[table["protocol"] == "clean_train"]
    # per run: the clean test row + 3 grid points (test/acc/clean is not a grid point)
    assert len(clean) == 2 * 4
    assert sorted(clean[clean.row == "test"]["test_noise"].unique()) == ["none"]
    grid = clean[clean.row == "grid"]
    assert set(zip(grid.test_noise, grid.test_snr_db, strict=True)) == {
        ("gaussian", -4),
        ("gaussian", 4),
        ("laplacian", -4),
    }
    assert grid["macro_f1"].isna().all() and (clean["noise"] == "none").all()

    summary = pd.read_csv(out / "summary.csv")
    s = summary[
        (summary.model == "drsn_cw")
        & (summary.protocol == "matched")
        & (summary.noise == "gaussian")
        & (summary.snr_db == -4)
    ]
    assert s["acc_mean"].item() == pytest.approx(0.77)
    assert s["acc_std"].item() == pytest.approx(0.02 / math.sqrt(2))
    assert s["n_seeds"].item() == 2
    g = summary[
        (summary.protocol == "clean_train")
        & (summary.test_noise == "gaussian")
        & (summary.test_snr_db == -4)
    ]
    assert g["acc_mean"].item() == pytest.approx(0.55)

    md = (out / "report.md").read_text()
    # the clean test accuracy of clean-train runs is the last column, not under an SNR
    assert "| matched | drsn_cw | gaussian | 77.0 ± 1.4 | 85.0 ± 1.4 |  |" in md
    assert "| clean_train | drsn_cw | gaussian | 55.0 ± 7.1 | 90.0 ± 0.0 | 95.0 ± 0.0 |" in md
    assert "none (clean)" not in md
    assert store["failed"] in md  # unfinished runs are named, not silently dropped
    assert "![accuracy_vs_snr.png](accuracy_vs_snr.png)" in md

    # a row of panels per protocol, one panel per noise type, one line per model (labels carry the
    # protocol, since both are present)
    panels = result.figures["accuracy_vs_snr.png"]
    assert list(panels) == ["gaussian", "laplacian", "pink"]
    assert panels["gaussian"] == [
        "drsn_cw (clean_train), n=2",
        "drsn_cw (matched), n=2",
        "resnet1d (matched), n=2",
    ]
    assert panels["laplacian"] == ["drsn_cw (clean_train), n=2"]
    # thresholds: DRSN only, per stage (mean over the stage's units), matched runs
    th = result.figures["thresholds_vs_snr.png"]
    assert th == {
        "gaussian": ["drsn_cw stage1", "drsn_cw stage2"],
        "pink": ["drsn_cw stage1", "drsn_cw stage2"],
    }
    thr = pd.read_csv(out / "thresholds.csv")
    s1 = thr[(thr.stage == "stage1") & (thr.snr_db == 4)]["threshold"]
    assert np.allclose(s1, 0.24)
    for png in ("accuracy_vs_snr.png", "thresholds_vs_snr.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # logged to the sweep's parent run
    logged = {a.path for a in store["client"].list_artifacts(store["parent"], "report")}
    assert {
        f"report/{n}" for n in ("runs.csv", "summary.csv", "report.md", "accuracy_vs_snr.png")
    } <= logged
    assert result.logged_to == store["parent"]


def test_experiment_with_filter_and_rerun_replaces_the_folder(store, tmp_path: Path) -> None:
    out = tmp_path / "r"
    build_report(
        experiment="study",
        filter_string="tags.protocol = 'clean_train'",
        out_dir=out,
        log_to_parent=False,
    )
    table = pd.read_csv(out / "runs.csv")
    assert set(table["protocol"]) == {"clean_train"} and table["run_id"].nunique() == 2
    assert not (out / "thresholds_vs_snr.png").exists()  # clean-train thresholds have no SNR axis
    build_report(
        experiment="study",
        filter_string="tags.model = 'resnet1d'",
        out_dir=out,
        log_to_parent=False,
    )
    table = pd.read_csv(out / "runs.csv")
    assert set(table["model"]) == {"resnet1d"}
    assert not (out / "thresholds.csv").exists(), (
        "a rerun must not keep files of the previous report"
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_bad_selections_get_clear_errors(store, tmp_path: Path, capsys) -> None:
    from fault_diag.cli.report import main

    with pytest.raises(
        ReportError, match=f"sweep 'nope' not found .* sweeps there: \\['{SWEEP}'\\]"
    ):
        build_report(sweep="nope", out_dir=tmp_path / "x")
    with pytest.raises(ReportError, match="experiment 'nope' not found"):
        build_report(experiment="nope", out_dir=tmp_path / "x")
    with pytest.raises(ReportError, match="no finished training run"):
        build_report(
            experiment="study", filter_string="tags.model = 'wdcnn'", out_dir=tmp_path / "x"
        )
    assert (
        main(
            [
                "--experiment",
                "study",
                "--filter",
                "tags.model === 'x'",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "fd-report: error:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------- real small sweep


@pytest.mark.integration
def test_report_on_a_real_two_by_two_sweep(
    tmp_path: Path, cwru_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        FAULT_DIAG_ROOT=str(tmp_path),
        FAULT_DIAG_DATA_DIR=str(cwru_dir),
        FAULT_DIAG_CACHE_DIR=str(tmp_path / "cache"),
        MPLBACKEND="Agg",
    )
    sweep_dir = tmp_path / "sweep"
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "fault_diag.cli.train",
            "-m",
            "model=drsn_cw,resnet1d",
            "noise.snr_db=-4,4",
            "data.loads=[0]",
            "data.train_hop=2048",
            "trainer.epochs=1",
            "trainer.progress=false",
            "trainer.num_threads=1",
            "noise.test_snr_grid_db=[0]",
            "noise.test_kinds=[gaussian]",
            "tracking.experiment=sweep",
            "tracking.log_model=false",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert train.returncode == 0, train.stderr[-4000:]
    from fault_diag.cli.report import main as fd_report

    for key in ("FAULT_DIAG_ROOT", "FAULT_DIAG_DATA_DIR", "FAULT_DIAG_CACHE_DIR"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    capsys.readouterr()
    assert fd_report(["--sweep", str(sweep_dir)]) == 0
    stdout = capsys.readouterr().out
    from mlflow import MlflowClient

    from fault_diag.tracking import read_parent_run

    record = read_parent_run(sweep_dir)
    out = tmp_path / "outputs" / "reports" / record["sweep_id"]
    assert f"report: {out}" in stdout
    table = pd.read_csv(out / "runs.csv")
    assert sorted(zip(table.model, table.snr_db, strict=True)) == [
        ("drsn_cw", -4.0),
        ("drsn_cw", 4.0),
        ("resnet1d", -4.0),
        ("resnet1d", 4.0),
    ]
    client = MlflowClient(tracking_uri=record["tracking_uri"])
    for r in table.itertuples():
        metrics = client.get_run(r.run_id).data.metrics
        assert r.test_acc == pytest.approx(metrics["test/acc"])
        assert r.macro_f1 == pytest.approx(metrics["test/macro_f1"])
        assert client.get_run(r.run_id).data.tags["mlflow.parentRunId"] == record["run_id"]
    assert (out / "accuracy_vs_snr.png").stat().st_size > 10_000
    assert (out / "thresholds_vs_snr.png").exists()  # drsn_cw learned thresholds
    logged = {a.path for a in client.list_artifacts(record["run_id"], "report")}
    assert "report/report.md" in logged and "report/accuracy_vs_snr.png" in logged


def test_latest_sweep_is_found_and_json_summary(store, tmp_path: Path, capsys) -> None:
    import json

    from fault_diag.cli.report import main

    assert main(["--sweep", "latest", "--out", str(tmp_path / "l"), "--no-log", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["parent_run_id"] == store["parent"] and summary["logged_to"] is None
    assert summary["n_runs"] == 18 and len(summary["skipped"]) == 1
    assert "accuracy_vs_snr.png" in summary["files"]


def test_results_tables_script_pairs_runs_by_kind_snr_and_seed(tmp_path: Path, capsys) -> None:
    """scripts/results_tables.py (the condensed tables of docs/results.md) on a tiny runs.csv."""
    import importlib.util

    rows = []
    for seed, (cw, res) in enumerate([(0.90, 0.88), (0.80, 0.84), (0.70, 0.70)]):
        for model, acc in (("drsn_cw", cw), ("resnet1d", res)):
            rows.append(
                {"run_id": f"{model}{seed}", "model": model, "protocol": "matched",
                 "noise": "gaussian", "snr_db": -8.0, "seed": seed, "test_noise": "gaussian",
                 "test_snr_db": -8.0, "test_acc": acc, "row": "test"}
            )  # fmt: skip
    rows.append(
        {"run_id": "c0", "model": "drsn_cw", "protocol": "clean_train", "noise": "none",
         "snr_db": math.nan, "seed": 0, "test_noise": "gaussian", "test_snr_db": 0.0,
         "test_acc": 0.25, "row": "grid"}
    )  # fmt: skip
    csv = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    spec = importlib.util.spec_from_file_location(
        "results_tables", Path(__file__).resolve().parents[1] / "scripts" / "results_tables.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(csv)]) == 0
    out = capsys.readouterr().out
    assert "| `drsn_cw` | 80.0 ± 10.0 |" in out  # mean ± std over the 3 seeds
    # paired by seed: +2, -4, 0 points -> mean -0.7, one win, one tie, one loss
    assert "| `drsn_cw` | -8 | 3 | -0.7 | 3.1 | 1 / 1 / 1 |" in out
    assert "| `drsn_cw` | 25.0 |" in out  # clean-train grid, one seed
    assert mod.main([str(tmp_path / "absent.csv")]) == 2
