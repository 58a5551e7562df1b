"""fd-report: tidy table, intervals, paired comparisons, plots, logging to the sweep's parent run.

Two levels: runs with known metrics (and per-window scores) written to a real (temporary) MLflow
sqlite store, so every number of the report can be checked exactly; and a small real sweep
(fd-train -m, 2 models x 2 SNRs, 1 epoch).

The store holds two sweeps: an old-style one (only ``test/acc``, ``test/macro_f1`` and the
accuracy grid, as runs logged before balanced accuracy existed) and a new-style one (every
per-condition metric, AdaBN rows, ``window_scores.npz`` artifacts, a mixed-protocol run).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fault_diag.metric_names import WINDOW_SCORES_ARTIFACT, metric_name
from fault_diag.report import ReportError, build_report, comparison_table

SWEEP = "2026-01-01_00-00-00"
BASE_ACC = {"drsn_cw": 0.80, "resnet1d": 0.70}
NEW = "2026-02-02_00-00-00"
CLASSES = ["normal", "inner", "outer"]  # "normal": the healthy class
SIZES = [4, 10, 10]
LABELS = np.repeat(np.arange(3), SIZES)
DRAWS = 2
# correct windows per class (a .5: one window right in one of the 2 draws) of resnet1d per test
# SNR; drsn_cw gets (+1, +2, +2) everywhere, so its balanced accuracy is higher by exactly
# (1/4 + 2/10 + 2/10) / 3 at every matched cell
RESNET = {-4: (2, 5, 6), 0: (2, 6, 6), 4: (2, 7, 7)}
DRSN_GAIN = (1, 2, 2)
GAIN = 100 * (1 / 4 + 2 / 10 + 2 / 10) / 3


def _acc(model: str, snr: float, seed: int) -> float:
    return BASE_ACC[model] + 0.01 * snr + 0.02 * seed


def _counts(model: str, snr: float, seed: int = 0, adabn: bool = False) -> tuple[float, ...]:
    """Correct windows per class of a new-style run at a test SNR."""
    counts = list(RESNET[int(snr)])
    if model == "drsn_cw":
        counts = [c + g for c, g in zip(counts, DRSN_GAIN, strict=True)]
    if seed == 1:
        counts[1] += 0.5
    if adabn:
        counts[2] += 1
    return tuple(counts)


CLEAN = {"resnet1d": (3, 9, 10), "drsn_cw": (4, 10, 10)}  # drsn_cw: every clean window right


def _correct(counts: tuple[float, ...]) -> np.ndarray:
    """Per-window fraction of draws classified correctly with ``counts[c]`` right in class c."""
    out = np.zeros(LABELS.size, np.float32)
    for c, k in enumerate(counts):
        idx = np.flatnonzero(c == LABELS)
        out[idx[: int(k)]] = 1.0
        if k != int(k):
            out[idx[int(k)]] = 0.5
    return out


def _healthy(correct: np.ndarray) -> np.ndarray:
    """Wrong "outer" windows are sent to the healthy class, wrong "inner" ones elsewhere."""
    return ((1.0 - correct) * (LABELS == 2)).astype(np.float32)


def _bal(counts: tuple[float, ...]) -> float:
    return float(np.mean(np.asarray(counts) / SIZES))


def _window_metrics(counts: tuple[float, ...]) -> dict[str, float]:
    correct = _correct(counts)
    return {
        "acc": float(correct.mean()),
        "bal_acc": _bal(counts),
        "macro_f1": _bal(counts) - 0.01,
        "healthy_share": float(_healthy(correct)[LABELS != 0].mean()),
    }


def _condition(kind: str | None, snr: float | None, clean: bool, adabn: bool) -> str:
    """The condition text of window_scores.npz (the training engineer's contract)."""
    text = "clean" if clean else "train" if kind is None else f"{kind}/{snr:g}dB"
    return text + ("/adabn" if adabn else "")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A sqlite store with two sweeps.

    ``NEW`` (experiment ``study_new``), new-style: matched runs (resnet1d, drsn_cw x gaussian, pink
    x -4, 4 dB x seeds 0, 1) with plain + AdaBN rows at the training condition, a clean and a grid
    row, all with window scores; wdcnn matched runs with the new metrics but no window scores
    (gaussian, seeds 0, 1) plus one old-style wdcnn run (seed 2); clean-train runs of both models
    (resnet1d seed 1 without window scores); one mixed run.

    ``SWEEP`` (experiment ``study``, created last so that it is the latest), old-style: matched runs
    (2 models x 2 noises x 2 SNRs x 2 seeds), two clean-train runs with a test grid, one failed run,
    and the sweep's parent run.

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

    def sweep(experiment: str, sweep_id: str):
        exp = client.create_experiment(
            experiment, artifact_location=(tmp_path / "art" / experiment).as_uri()
        )
        parent = client.create_run(exp, tags={"fd.role": "sweep", "sweep_id": sweep_id})

        def run(tags: dict[str, str], metrics: dict[str, float], status: str = "FINISHED") -> str:
            tags = {
                "sweep_id": sweep_id,
                "mlflow.parentRunId": parent.info.run_id,
                "data_setup": "cwru10",
                "split": "time",
                **tags,
            }
            rid = client.create_run(exp, tags=tags).info.run_id
            client.log_batch(rid, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
            client.set_terminated(rid, status)
            return rid

        return parent.info.run_id, run

    # ------------------------------------------------------------------ new-style sweep
    new_parent, new_run = sweep("study_new", NEW)
    npz_dir = tmp_path / "npz"
    npz_dir.mkdir()

    def run_with_windows(
        tags: dict[str, str],
        conditions: dict[tuple[str | None, float | None, bool, bool], tuple[float, ...]],
        windows: bool = True,
    ) -> str:
        """A run logging every metric of each condition (from its window scores) and, when
        ``windows``, the window scores themselves."""
        metrics = {}
        for (kind, snr, clean, adabn), counts in conditions.items():
            for m, v in _window_metrics(counts).items():
                metrics[metric_name(m, kind, snr, clean=clean, adabn=adabn)] = v
        tags = {"test_draws": str(DRAWS), "healthy_class": "normal", **tags}
        rid = new_run(tags, metrics)
        if windows:
            correct = np.stack([_correct(c) for c in conditions.values()])
            path = npz_dir / rid / WINDOW_SCORES_ARTIFACT
            path.parent.mkdir()
            np.savez(
                path,
                labels=LABELS.astype(np.int64),
                class_names=np.array(CLASSES),
                healthy_class=np.array("normal"),
                conditions=np.array([_condition(*k) for k in conditions]),
                correct=correct,
                healthy=np.stack([_healthy(c) for c in correct]),
                test_draws=np.array(DRAWS),
            )
            client.log_artifact(rid, str(path))
        return rid

    new_ids: dict[tuple[Any, ...], str] = {}
    for model in ("resnet1d", "drsn_cw"):
        for noise in ("gaussian", "pink"):
            for snr in (-4, 4):
                for seed in (0, 1):
                    new_ids[(model, "matched", noise, snr, seed)] = run_with_windows(
                        {
                            "model": model,
                            "noise": noise,
                            "snr_db": str(float(snr)),
                            "protocol": "matched",
                            "seed": str(seed),
                        },
                        {
                            (None, None, False, False): _counts(model, snr, seed),
                            (None, None, False, True): _counts(model, snr, seed, adabn=True),
                            (None, None, True, False): CLEAN[model],
                            ("gaussian", 0.0, False, False): _counts(model, 0, seed),
                        },
                    )
        for seed in (0, 1):
            grid = {("gaussian", -4.0), ("gaussian", 4.0), ("pink", 0.0)}
            new_ids[(model, "clean_train", seed)] = run_with_windows(
                {
                    "model": model,
                    "noise": "gaussian",
                    "snr_db": "None",
                    "protocol": "clean_train",
                    "seed": str(seed),
                },
                {
                    (None, None, False, False): CLEAN[model],
                    (None, None, True, False): CLEAN[model],
                    **{(k, s, False, False): _counts(model, s, seed) for k, s in sorted(grid)},
                },
                windows=not (model == "resnet1d" and seed == 1),
            )
    new_ids[("drsn_cw", "mixed", 0)] = run_with_windows(
        {
            "model": "drsn_cw",
            "noise": "gaussian,pink",
            "snr_db": "None",
            "protocol": "mixed",
            "seed": "0",
        },
        {
            (None, None, False, False): (3, 8, 8),
            (None, None, True, False): (3, 9, 9.5),
            ("gaussian", -4.0, False, False): _counts("drsn_cw", -4, 0),
        },
    )
    # wdcnn: 0.1 points above resnet1d at every cell it ran (gaussian, seeds 0 and 1), no window
    # scores; seed 2 logged the old way (accuracy only)
    for snr in (-4, 4):
        for seed in (0, 1):
            metrics = _window_metrics(_counts("resnet1d", snr, seed))
            metrics["bal_acc"] += 0.001
            metrics["acc"] += 0.001
            new_ids[("wdcnn", "matched", "gaussian", snr, seed)] = new_run(
                {
                    "model": "wdcnn",
                    "noise": "gaussian",
                    "snr_db": str(float(snr)),
                    "protocol": "matched",
                    "seed": str(seed),
                    "test_draws": str(DRAWS),
                    "healthy_class": "normal",
                },
                {metric_name(m): v for m, v in metrics.items()},
            )
    new_ids[("wdcnn", "matched", "gaussian", -4, 2)] = new_run(
        {
            "model": "wdcnn",
            "noise": "gaussian",
            "snr_db": "-4.0",
            "protocol": "matched",
            "seed": "2",
        },
        {"test/acc": 0.5, "test/macro_f1": 0.45},
    )

    # ------------------------------------------------------------------ old-style sweep
    parent, run = sweep("study", SWEEP)
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
    yield {
        "uri": uri,
        "client": client,
        "parent": parent,
        "failed": failed,
        "root": tmp_path,
        "new_parent": new_parent,
        "new_ids": new_ids,
    }
    mp.undo()


def test_old_style_runs_still_report(store, tmp_path: Path) -> None:
    """Runs logged before balanced accuracy, AdaBN and window scores existed: accuracy is the
    headline (said so), intervals come from the seeds alone."""
    out = tmp_path / "report"
    result = build_report(sweep=SWEEP, out_dir=out)
    table = pd.read_csv(out / "runs.csv")
    matched = table[table["protocol"] == "matched"]
    tested = matched[matched["row"] == "test"]
    assert len(tested) == 16  # one row per matched run at its own condition
    assert (tested["test_noise"] == tested["noise"]).all()
    assert (tested["test_snr_db"] == tested["snr_db"]).all()
    # the grid point each matched run also logged is a row, off the curve
    grid = matched[matched["row"] == "grid"]
    assert len(grid) == 16 and set(grid["condition"]) == {"gaussian/0dB"}
    row = tested[
        (tested.model == "resnet1d")
        & (tested.noise == "pink")
        & (tested.snr_db == 4)
        & (tested.seed == 1)
    ]
    assert row["acc"].item() == pytest.approx(_acc("resnet1d", 4, 1))
    assert row["macro_f1"].item() == pytest.approx(_acc("resnet1d", 4, 1) - 0.05)
    assert row[["bal_acc", "healthy_share", "test_draws"]].isna().all(axis=None)
    assert set(table["variant"]) == {"plain"} and not table["window_scores"].any()

    clean = table[table["protocol"] == "clean_train"]
    # per run: the clean test row + 3 grid points (test/acc/clean is the clean row, not a grid point)
    assert len(clean) == 2 * 4
    assert sorted(clean[clean.row == "test"]["test_noise"].unique()) == ["none"]
    assert set(clean[clean.row == "test"]["condition"]) == {"clean"}
    cgrid = clean[clean.row == "grid"]
    assert set(zip(cgrid.test_noise, cgrid.test_snr_db, strict=True)) == {
        ("gaussian", -4),
        ("gaussian", 4),
        ("laplacian", -4),
    }
    assert cgrid["macro_f1"].isna().all() and (clean["noise"] == "none").all()
    # macro-F1 of the clean row comes from test/macro_f1 (old runs logged it only there)
    assert (clean[clean.row == "test"]["macro_f1"] == 0.94).all()

    summary = pd.read_csv(out / "summary.csv")
    s = summary[
        (summary.model == "drsn_cw")
        & (summary.protocol == "matched")
        & (summary.noise == "gaussian")
        & (summary.snr_db == -4)
        & (summary.row == "test")
    ]
    assert s["acc_mean"].item() == pytest.approx(0.77)
    assert s["acc_std"].item() == pytest.approx(0.02 / math.sqrt(2))
    assert s["n_seeds"].item() == 2
    # no balanced accuracy: the headline falls back to accuracy; two seeds: [min, max]
    assert s["score_metric"].item() == "acc" and s["interval"].item() == "seeds"
    assert (s["score_low"].item(), s["score_high"].item()) == pytest.approx((0.76, 0.78))
    g = summary[
        (summary.protocol == "clean_train")
        & (summary.test_noise == "gaussian")
        & (summary.test_snr_db == -4)
    ]
    assert g["acc_mean"].item() == pytest.approx(0.55)

    md = (out / "report.md").read_text()
    assert "## Accuracy vs SNR (plain)" in md
    assert "they show plain accuracy; so does every cell here." in md
    # the clean test accuracy of clean-train runs is the last column, not under an SNR
    assert "| matched | drsn_cw | gaussian | 77.0 [76.0, 78.0] | 85.0 [84.0, 86.0] |  |" in md
    assert (
        "| clean_train | drsn_cw | gaussian | 55.0 [50.0, 60.0] | 90.0 [90.0, 90.0] "
        "| 95.0 [95.0, 95.0] |" in md
    )
    assert "none (clean)" not in md and "Fault windows predicted healthy" not in md
    assert store["failed"] in md  # unfinished runs are named, not silently dropped
    assert "![accuracy_vs_snr.png](accuracy_vs_snr.png)" in md

    # resnet1d is present, so it is the baseline; accuracy (the runs have nothing else) is compared
    comp = pd.read_csv(out / "comparisons.csv")
    drsn = comp[(comp.protocol == "matched") & (comp.model == "drsn_cw")].iloc[0]
    assert drsn["metric"] == "acc" and drsn["n_pairs"] == 8 and drsn["n_units"] == 8
    assert drsn["mean_diff"] == pytest.approx(10.0)
    assert drsn["wilcoxon_p"] == pytest.approx(2 / 2**8)
    assert drsn["claim"] == "higher accuracy than resnet1d"

    # a row of panels per protocol, one panel per noise type, one line per model
    panels = result.figures["accuracy_vs_snr.png"]
    assert panels == {
        "matched: gaussian noise": ["drsn_cw, n=2", "resnet1d, n=2"],
        "matched: pink noise": ["drsn_cw, n=2", "resnet1d, n=2"],
        "clean-train: gaussian noise": ["drsn_cw, n=2"],
        "clean-train: laplacian noise": ["drsn_cw, n=2"],
    }
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
    assert (out / "accuracy_vs_snr.svg").read_text().startswith("<?xml")

    # logged to the sweep's parent run
    logged = {a.path for a in store["client"].list_artifacts(store["parent"], "report")}
    assert {
        f"report/{n}"
        for n in (
            "runs.csv",
            "summary.csv",
            "comparisons.csv",
            "report.md",
            "accuracy_vs_snr.png",
            "accuracy_vs_snr.svg",
        )
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
        ReportError, match=f"sweep 'nope' not found .* sweeps there: \\['{SWEEP}', '{NEW}'\\]"
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


# ------------------------------------------------------------------------ new-style runs


@pytest.fixture(scope="module")
def new_report(store, tmp_path_factory: pytest.TempPathFactory):
    """The report of the new-style sweep (default baseline: resnet1d), built once."""
    out = tmp_path_factory.mktemp("new") / "report"
    return build_report(sweep=NEW, out_dir=out)


def _fmt(values: list[float]) -> str:
    """A seeds-only cell of 2 seeds as the pivot prints it: mean [min, max] in %."""
    return f"{100 * np.mean(values):.1f} [{100 * min(values):.1f}, {100 * max(values):.1f}]"


def test_new_metrics_tidy_rows(store, new_report) -> None:
    table = pd.read_csv(new_report.out_dir / "runs.csv", keep_default_na=False, na_values=[""])
    # matched resnet1d/drsn_cw: 16 runs x (train, train/adabn, clean, 1 grid point); wdcnn 5 runs;
    # clean-train 4 runs x (clean + 3 grid points); mixed: clean, its own mixture, 1 grid point
    assert len(table) == 16 * 4 + 5 + 4 * 4 + 3
    ids = store["new_ids"]
    rid = ids[("drsn_cw", "matched", "pink", 4, 1)]
    rows = table[table.run_id == rid].set_index("condition")
    assert sorted(rows.index) == ["clean", "gaussian/0dB", "train", "train/adabn"]
    assert rows.loc["train", "row"] == "test" and rows.loc["train", "variant"] == "plain"
    assert (
        rows.loc["train/adabn", "row"] == "test" and rows.loc["train/adabn", "variant"] == "adabn"
    )
    assert (rows.loc["clean", "row"], rows.loc["clean", "test_noise"]) == ("clean", "none")
    assert rows.loc["gaussian/0dB", "row"] == "grid"
    expected = _window_metrics(_counts("drsn_cw", 4, 1))
    for m in ("acc", "bal_acc", "macro_f1", "healthy_share"):
        assert rows.loc["train", m] == pytest.approx(expected[m])
    assert rows.loc["train/adabn", "bal_acc"] == pytest.approx(_bal(_counts("drsn_cw", 4, 1, True)))
    assert rows["window_scores"].all() and (rows["test_draws"] == DRAWS).all()
    assert (rows["healthy_class"] == "normal").all()

    wdcnn = table[table.model == "wdcnn"]
    assert not wdcnn["window_scores"].any()
    old = wdcnn[wdcnn.seed == 2]
    assert old["acc"].item() == 0.5 and math.isnan(old["bal_acc"].item())

    mixed = table[table.protocol == "mixed"].set_index("condition")
    assert mixed.loc["clean", "row"] == "test" and mixed.loc["clean", "test_noise"] == "none"
    assert mixed.loc["train", "row"] == "train" and mixed.loc["train", "test_noise"] == "mixture"
    assert mixed.loc["gaussian/-4dB", "row"] == "grid"
    # a clean-train run's clean row comes once, from test/<metric>/clean
    ct = table[table.run_id == ids[("resnet1d", "clean_train", 1)]]
    assert list(ct["row"]).count("test") == 1 and not ct["window_scores"].any()


def test_new_metrics_intervals(new_report) -> None:
    summary = pd.read_csv(new_report.out_dir / "summary.csv")

    def cell(**keys: Any) -> pd.Series:
        sel = summary
        for k, v in keys.items():
            sel = sel[sel[k] == v]
        assert len(sel) == 1, keys
        return sel.iloc[0]

    # matched, every run with window scores: seeds + windows, around the mean of the 2 seeds
    c = cell(
        protocol="matched",
        model="drsn_cw",
        variant="plain",
        noise="gaussian",
        snr_db=-4,
        row="test",
    )
    seeds = [_bal(_counts("drsn_cw", -4, s)) for s in (0, 1)]
    assert c["score_metric"] == "bal_acc" and c["interval"] == "seeds+windows"
    assert c["score_mean"] == pytest.approx(np.mean(seeds))
    # the windows widen it well beyond the two seeds' range
    assert c["score_low"] < min(seeds) - 0.02 and c["score_high"] > max(seeds) + 0.02
    assert 0 <= c["healthy_share_low"] < c["healthy_share_mean"] < c["healthy_share_high"] <= 1
    # every clean window right in both seeds: [1, 1]
    c = cell(protocol="clean_train", model="drsn_cw", row="test")
    assert (c["score_mean"], c["score_low"], c["score_high"]) == (1.0, 1.0, 1.0)
    assert c["interval"] == "seeds+windows"
    # resnet1d seed 1 has no window scores: its cells resample seeds only, two seeds -> [min, max]
    c = cell(protocol="clean_train", model="resnet1d", test_noise="gaussian", test_snr_db=-4)
    seeds = [_bal(_counts("resnet1d", -4, s)) for s in (0, 1)]
    assert c["interval"] == "seeds"
    assert (c["score_low"], c["score_high"]) == pytest.approx((min(seeds), max(seeds)))
    # one seed with window scores: windows only
    c = cell(protocol="mixed", row="test")
    assert c["interval"] == "windows" and c["n_seeds"] == 1
    assert c["score_mean"] == pytest.approx(_bal((3, 9, 9.5)))
    assert c["score_low"] < c["score_mean"] < c["score_high"]
    # a cell with an old-style run (no bal_acc) falls back to accuracy for all its runs
    c = cell(protocol="matched", model="wdcnn", test_snr_db=-4)
    accs = [_window_metrics(_counts("resnet1d", -4, s))["acc"] + 0.001 for s in (0, 1)] + [0.5]
    assert c["score_metric"] == "acc" and c["interval"] == "seeds" and c["n_seeds"] == 3
    assert c["score_mean"] == pytest.approx(np.mean(accs))
    # three seeds: the all-lowest resample has probability 1/27 > 2.5 %: [min, max]
    assert (c["score_low"], c["score_high"]) == pytest.approx((min(accs), max(accs)))
    assert cell(protocol="matched", model="wdcnn", test_snr_db=4)["score_metric"] == "bal_acc"
    # AdaBN cells are their own cells
    c = cell(
        protocol="matched", model="resnet1d", variant="adabn", noise="pink", snr_db=4, row="test"
    )
    assert c["score_mean"] == pytest.approx(
        np.mean([_bal(_counts("resnet1d", 4, s, True)) for s in (0, 1)])
    )


def test_new_metrics_comparisons_and_claims(new_report) -> None:
    comp = pd.read_csv(new_report.out_dir / "comparisons.csv")
    assert comp.equals(pd.read_csv(new_report.out_dir / "comparisons.csv"))
    got = {(r.protocol, r.variant, r.model): r for r in comp.itertuples()}
    assert set(got) == {
        ("matched", "plain", "drsn_cw"),
        ("matched", "plain", "wdcnn"),
        ("matched", "adabn", "drsn_cw"),
        ("clean_train", "plain", "drsn_cw"),
    }  # the mixed run has no resnet1d to pair with
    # large and consistent, 8 independent pairs (2 noises x 2 SNRs x 2 seeds): called
    big = got[("matched", "plain", "drsn_cw")]
    assert (big.metric, big.n_pairs, big.n_units) == ("bal_acc", 8, 8)
    assert big.mean_diff == pytest.approx(GAIN)
    assert (big.diff_low, big.diff_high) == pytest.approx((GAIN, GAIN))
    assert big.wilcoxon_p == pytest.approx(2 / 2**8)
    assert big.p_holm == pytest.approx(2 * 2 / 2**8)  # Holm over the 2 models of the family
    assert big.claim == "higher balanced accuracy than resnet1d"
    # tiny and consistent (+0.1 points), 4 pairs: not called
    tiny = got[("matched", "plain", "wdcnn")]
    assert (tiny.n_pairs, tiny.n_units) == (4, 4)  # seed 2 has no resnet1d partner
    assert tiny.mean_diff == pytest.approx(0.1)
    assert tiny.wilcoxon_p == pytest.approx(2 / 2**4) and tiny.p_holm == pytest.approx(0.125)
    assert tiny.claim == "no difference detected (p_holm = 0.12)"
    adabn = got[("matched", "adabn", "drsn_cw")]
    assert adabn.n_pairs == 8 and adabn.p_holm == pytest.approx(2 / 2**8)  # a family of one
    # clean-train: 4 rows per seed are one pair of networks: 8 pairs, 2 units, never significant
    ct = got[("clean_train", "plain", "drsn_cw")]
    assert (ct.n_pairs, ct.n_units) == (8, 2)
    clean_gain = 100 * (_bal(CLEAN["drsn_cw"]) - _bal(CLEAN["resnet1d"]))
    assert ct.mean_diff == pytest.approx((clean_gain + 3 * GAIN) / 4)
    assert ct.wilcoxon_p == pytest.approx(0.5)
    assert ct.claim == "no difference detected (p_holm = 0.5)"
    md = (new_report.out_dir / "report.md").read_text()
    assert "## Paired comparisons against resnet1d" in md
    assert "higher balanced accuracy than resnet1d" in md
    assert "no difference detected (p_holm = 0.12)" in md


def test_claims_need_holm_significance() -> None:
    """Directly on a tidy table: a large consistent difference over many independent pairs is
    called (higher or lower); a tiny one over few pairs is not, nor a large one over 2 pairs, nor
    one whose raw p is below 0.05 but not after Holm's correction."""
    rows = []
    shifts = {"base": 0.0, "better": 0.05, "worse": -0.05, "tiny": 0.001, "big_but_few": 0.2}
    shifts["six"] = 0.03
    n_seeds = {"tiny": 3, "big_but_few": 2, "six": 6}
    for model, shift in shifts.items():
        for seed in range(n_seeds.get(model, 10)):
            value = 0.6 + 0.01 * seed + shift
            rows.append(
                {"run_id": f"{model}{seed}", "model": model, "protocol": "matched",
                 "variant": "plain", "data_setup": "d", "noise": "gaussian", "snr_db": -4.0,
                 "row": "test", "test_noise": "gaussian", "test_snr_db": -4.0, "seed": seed,
                 "acc": value, "bal_acc": value}
            )  # fmt: skip
    comp = comparison_table(pd.DataFrame(rows), "base").set_index("model")
    assert comp.loc["better", "claim"] == "higher balanced accuracy than base"
    assert comp.loc["worse", "claim"] == "lower balanced accuracy than base"
    # 10 positive units: p = 2/1024; Holm over the 5 models multiplies the smallest by 5
    assert comp.loc["better", "wilcoxon_p"] == pytest.approx(2 / 2**10)
    assert comp.loc["better", "p_holm"] == pytest.approx(5 * 2 / 2**10)
    assert comp.loc["tiny", "claim"] == "no difference detected (p_holm = 0.5)"
    assert comp.loc["big_but_few", "claim"] == "no difference detected (p_holm = 0.5)"
    assert comp.loc["big_but_few", "mean_diff"] == pytest.approx(20.0)
    # 6 positive units: p = 2/64 < 0.05, but third smallest of 5: 3 x 2/64 = 0.094 after Holm
    assert comp.loc["six", "wilcoxon_p"] == pytest.approx(2 / 2**6)
    assert comp.loc["six", "claim"] == "no difference detected (p_holm = 0.094)"


def test_new_metrics_pivots_and_figure(new_report) -> None:
    md = (new_report.out_dir / "report.md").read_text()
    assert "## Balanced accuracy (accuracy where marked †) vs SNR (plain)" in md
    assert "vs SNR (AdaBN: BatchNorm re-estimated on the test windows)" in md
    assert "## Fault windows predicted healthy, % (plain)" in md
    assert "(marked †)" in md and " †" in md
    resnet = {s: [_bal(_counts("resnet1d", s, seed)) for seed in (0, 1)] for s in (-4, 0, 4)}
    # clean_train resnet1d: seeds only (one run lacks window scores): exact [min, max]
    assert (
        f"| clean_train | resnet1d | gaussian | {_fmt(resnet[-4])} |  | {_fmt(resnet[4])} "
        f"| {_fmt([_bal(CLEAN['resnet1d'])] * 2)} |" in md
    )
    assert "| 100.0 [100.0, 100.0] |" in md  # drsn_cw's all-correct clean column
    panels = new_report.figures["accuracy_vs_snr.png"]
    assert panels == {
        "matched: gaussian noise": ["drsn_cw, n=2", "resnet1d, n=2", "wdcnn, n=3"],
        "matched: pink noise": ["drsn_cw, n=2", "resnet1d, n=2"],
        "matched + AdaBN: gaussian noise": ["drsn_cw, n=2", "resnet1d, n=2"],
        "matched + AdaBN: pink noise": ["drsn_cw, n=2", "resnet1d, n=2"],
        "clean-train: gaussian noise": ["drsn_cw, n=2", "resnet1d, n=2"],
        "clean-train: pink noise": ["drsn_cw, n=2", "resnet1d, n=2"],
        "mixed: gaussian noise": ["drsn_cw, n=1"],
    }
    from PIL import Image

    with Image.open(new_report.out_dir / "accuracy_vs_snr.png") as img:
        assert img.info["dpi"] == pytest.approx((200, 200), abs=0.1)
    svg = (new_report.out_dir / "accuracy_vs_snr.svg").read_text()
    assert "balanced accuracy" in svg and "<dc:date>" not in svg


def test_matched_grid_is_kept(store, tmp_path: Path) -> None:
    """Issue 17, item 7: every matched job's grid points are in the report (a table and a figure),
    not only its training condition."""
    out = tmp_path / "report"
    result = build_report(sweep=SWEEP, out_dir=out, log_to_parent=False)
    md = (out / "report.md").read_text()
    assert "## Matched runs on their test grid (plain)" in md
    section = md.split("## Matched runs on their test grid (plain)")[1].split("\n## ")[0]
    # one line per model, training condition and test noise; the grid point gaussian/0dB
    lines = [line for line in section.splitlines() if line.startswith("| drsn_cw")]
    assert len(lines) == 4, section  # drsn_cw: 2 training noises x 2 training SNRs
    assert "| drsn_cw | pink 4 dB | gaussian | 50.0 [50.0, 50.0] |" in lines
    assert "**" not in section  # no run was trained at the grid point (bold marks its own)
    panels = result.figures["matched_grid_vs_snr.png"]
    assert set(panels) == {"drsn_cw: gaussian test noise", "resnet1d: gaussian test noise"}
    assert "trained on pink 4 dB, n=2" in panels["drsn_cw: gaussian test noise"]
    for name in ("matched_grid_vs_snr", "thresholds_vs_snr"):
        assert (out / f"{name}.svg").read_text().startswith("<?xml")
        from PIL import Image

        with Image.open(out / f"{name}.png") as img:
            assert img.info["dpi"] == pytest.approx((200, 200), abs=0.1)


def test_progress_lines_on_stderr_and_the_next_command(store, tmp_path: Path, capsys) -> None:
    from fault_diag.cli.report import main

    assert main(["--sweep", SWEEP, "--out", str(tmp_path / "r"), "--no-log"]) == 0
    captured = capsys.readouterr()
    assert "fd-report: selecting the runs of sweep" in captured.err
    assert "fd-report: figures and report.md in" in captured.err
    assert captured.out.rstrip().splitlines()[-1].startswith("next: read ")
    assert main(["--sweep", SWEEP, "--out", str(tmp_path / "r"), "--no-log", "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_baseline_errors_and_none(store, tmp_path: Path, capsys) -> None:
    from fault_diag.cli.report import main

    message = (
        "baseline 'nope' is not a model of this selection; "
        "models present: ['drsn_cw', 'resnet1d', 'wdcnn']"
    )
    with pytest.raises(ReportError, match=re.escape(message)):
        build_report(sweep=NEW, out_dir=tmp_path / "x", baseline="nope")
    assert main(["--sweep", NEW, "--out", str(tmp_path / "x"), "--baseline", "nope"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_json_with_an_explicit_baseline(store, tmp_path: Path, capsys) -> None:
    import json

    from fault_diag.cli.report import main

    args = ["--sweep", NEW, "--out", str(tmp_path / "j"), "--no-log", "--json"]
    assert main([*args, "--baseline", "drsn_cw", "--n-boot", "500"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["baseline"] == "drsn_cw" and "comparisons.csv" in out["files"]
    claims = {(c["protocol"], c["variant"], c["model"]): c for c in out["comparisons"]}
    assert (
        claims[("matched", "plain", "resnet1d")]["claim"] == "lower balanced accuracy than drsn_cw"
    )
    assert claims[("matched", "plain", "resnet1d")]["mean_diff"] == pytest.approx(-GAIN)
    assert claims[("matched", "plain", "wdcnn")]["claim"].startswith("no difference detected")
    assert {"score_low", "score_high", "interval"} <= set(out["summary"][0])


def test_baseline_default_and_none(new_report) -> None:
    """No report build needed: how the baseline is chosen, and what ``none`` gives."""
    from fault_diag.report import comparisons_markdown, resolve_baseline

    table = new_report.table
    assert new_report.baseline == "resnet1d"  # the default when the selection has it
    assert resolve_baseline(table, "auto") == "resnet1d"
    assert resolve_baseline(table[table.model != "resnet1d"], "auto") is None
    assert resolve_baseline(table, "none") is None and resolve_baseline(table, None) is None
    assert comparisons_markdown(new_report.comparisons.iloc[:0], None).startswith("_no baseline")


def test_report_regenerates_exactly(new_report) -> None:
    """Fixed bootstrap seed: the same numbers again; another seed moves the window intervals."""
    from fault_diag.report import load_window_scores, summary_table

    windows = load_window_scores(new_report.selection)
    assert len(windows) == 16 + 3 + 1  # matched, clean-train (less resnet1d seed 1), mixed
    again = summary_table(new_report.table, windows, seed=0)
    pd.testing.assert_frame_equal(again, new_report.summary)
    other = summary_table(new_report.table, windows, seed=1)
    resampled = other["interval"] == "seeds+windows"
    assert not np.allclose(other.loc[resampled, "score_low"], again.loc[resampled, "score_low"])


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
            "noise=gaussian",  # matched (fd-train's default is the mixed protocol)
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
    tested = table[(table["row"] == "test") & (table["variant"] == "plain")]
    assert sorted(zip(tested.model, tested.snr_db, strict=True)) == [
        ("drsn_cw", -4.0),
        ("drsn_cw", 4.0),
        ("resnet1d", -4.0),
        ("resnet1d", 4.0),
    ]
    client = MlflowClient(tracking_uri=record["tracking_uri"])
    for r in table[table["row"] == "test"].itertuples():
        metrics = client.get_run(r.run_id).data.metrics
        adabn = r.variant == "adabn"
        for m in ("acc", "bal_acc", "macro_f1", "healthy_share"):
            assert getattr(r, m) == pytest.approx(metrics[metric_name(m, adabn=adabn)]), m
        assert client.get_run(r.run_id).data.tags["mlflow.parentRunId"] == record["run_id"]
    # a real run logs its window scores, so even one seed gets an interval (from the windows)
    assert table["window_scores"].all()
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["interval"]) == {"windows"} and set(summary["score_metric"]) == {"bal_acc"}
    assert (summary["score_low"] <= summary["score_mean"]).all()
    assert (summary["score_mean"] <= summary["score_high"]).all()
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


def test_runs_at_another_band_are_another_setup() -> None:
    """Band-limited runs of a setup are never pooled with its full-band runs."""
    from fault_diag.report import setup_label

    assert setup_label({"data_setup": "cwru10", "band_hz": "None"}) == "cwru10"
    assert setup_label({"data_setup": "cwru10"}) == "cwru10"
    assert setup_label({"data_setup": "cwru10", "band_hz": "[0.0, 4000.0]"}) == "cwru10 0-4000 Hz"


def test_grid_pivot_marks_the_training_condition() -> None:
    from fault_diag.report import SUMMARY_COLUMNS, grid_pivot_markdown

    def cell(snr: float, test_snr: float, mean: float) -> dict[str, Any]:
        row = dict.fromkeys(SUMMARY_COLUMNS, math.nan)
        row.update(
            protocol="matched",
            model="drsn_cw",
            variant="plain",
            data_setup="cwru10",
            noise="gaussian",
            snr_db=snr,
            row="grid",
            test_noise="gaussian",
            test_snr_db=test_snr,
            score_metric="bal_acc",
            score_mean=mean,
            score_low=mean - 0.01,
            score_high=mean + 0.01,
        )
        return row

    summary = pd.DataFrame([cell(0, 0, 0.9), cell(0, -4, 0.6), cell(-4, 0, 0.8), cell(-4, -4, 0.7)])
    md = grid_pivot_markdown(summary)
    assert md.splitlines()[0] == "| model | trained on | test noise | -4 dB | 0 dB |"
    assert (
        "| drsn_cw | gaussian -4 dB | gaussian | **70.0 [69.0, 71.0]** | 80.0 [79.0, 81.0] |" in md
    )
    assert (
        "| drsn_cw | gaussian 0 dB | gaussian | 60.0 [59.0, 61.0] | **90.0 [89.0, 91.0]** |" in md
    )
    assert grid_pivot_markdown(summary.assign(protocol="mixed")) == ""
