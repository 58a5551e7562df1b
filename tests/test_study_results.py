"""scripts/study_results.py: the paired tests and tables of docs/results.md, on synthetic runs.

The numbers of the results page come from this script, so what a reader relies on is checked here:
runs are paired by seed (never pooled across seeds), Holm's correction is applied over a table's
rows, "higher" appears only where the corrected p is below 0.05, and with 5 seeds a Wilcoxon test
cannot reach it (the page says so).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "study_results.py"


@pytest.fixture(scope="module")
def sr():
    spec = importlib.util.spec_from_file_location("study_results", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["study_results"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def _runs(sr) -> pd.DataFrame:
    """Mixed full-band runs: resnet1d, drsn_cw (+2 points every seed, 10 seeds), wdcnn (equal to
    resnet1d on average, 10 seeds), convnet1d (+5 points, but 5 seeds only)."""
    rng = np.random.default_rng(0)
    rows = []
    base = 0.90 + 0.02 * rng.standard_normal(10)  # seed effects shared by every model
    for model, shift, seeds in (
        ("resnet1d", 0.0, 10),
        ("drsn_cw", 0.02, 10),
        ("wdcnn", 0.0, 10),
        ("convnet1d", 0.05, 5),
    ):
        for seed in range(seeds):
            jitter = 0.0 if model == "resnet1d" else 0.003 * rng.standard_normal()
            if model == "wdcnn":
                jitter = 0.01 * (1 if seed % 2 else -1)
            rows.append(
                {"run_id": f"{model}{seed}", "variant": sr.PLAIN, "model": model,
                 "protocol": "mixed", "band": sr.FULL, "seed": seed,
                 "clean": 0.99, "grid": base[seed] + shift + jitter}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_against_pairs_by_seed_and_corrects_over_the_table(sr) -> None:
    study = sr.Study(rows=pd.DataFrame(), runs=_runs(sr), selection=None, windows={})
    comps = {c.label: c for c in sr.against(study, "resnet1d")}
    assert set(comps) == {
        "`drsn_cw` - `resnet1d`",
        "`wdcnn` - `resnet1d`",
        "`convnet1d` - `resnet1d`",
    }
    drsn = comps["`drsn_cw` - `resnet1d`"]
    # paired by seed: the shared seed effects cancel, the +2 points remain with a tight interval
    assert drsn.n_units == 10
    assert drsn.mean == pytest.approx(2.0, abs=0.3)
    assert 1.0 < drsn.low < drsn.mean < drsn.high < 3.0
    assert drsn.p_holm >= drsn.p and drsn.p_holm < 0.05
    assert drsn.verdict("higher", "lower") == "higher"
    # alternating +-1 point: no difference shown
    assert comps["`wdcnn` - `resnet1d`"].verdict("higher", "lower") == "no difference shown"
    # 5 seeds, all +5 points: the smallest two-sided Wilcoxon p is 2/2^5 = 0.0625
    conv = comps["`convnet1d` - `resnet1d`"]
    assert conv.n_units == 5 and conv.p == pytest.approx(0.0625)
    assert conv.verdict("higher", "lower") == "no difference shown"


def test_headline_table_gives_each_model_its_seeds_and_interval(sr) -> None:
    study = sr.Study(
        rows=pd.DataFrame(),
        runs=_runs(sr).assign(
            **{
                "region -10..-6 dB": 0.8,
                "grid_gaussian": 0.9,
                "grid_pink": 0.95,
                "grid_laplacian": 0.9,
            }
        ),
        selection=None,
        windows={},
    )
    lines, records = sr.headline_table(study)
    by_model = {r["model"]: r for r in records}
    assert [r["model"] for r in records] == ["drsn_cw", "resnet1d", "convnet1d", "wdcnn"]
    assert by_model["convnet1d"]["seeds"] == 5 and by_model["drsn_cw"]["seeds"] == 10
    mean, low, high = by_model["drsn_cw"]["grid"]
    assert low < mean < high and not math.isnan(low)
    assert any(line.startswith("| `drsn_cw` | 10 | 99.0") for line in lines)


def test_fmt_and_block_replacement(sr, tmp_path: Path) -> None:
    assert sr.fmt(0.9654, 0.95, 0.97) == "96.5 [95.0, 97.0]"
    assert sr.fmt(math.nan) == "n/a"
    page = tmp_path / "page.md"
    page.write_text("head\n<!-- study:begin -->\nold\n<!-- study:end -->\ntail\n")
    sr.replace_block(page, "study", "new table")
    assert page.read_text() == "head\n<!-- study:begin -->\nnew table\n<!-- study:end -->\ntail\n"
    with pytest.raises(SystemExit, match="markers"):
        sr.replace_block(page, "absent", "x")


def test_a_rerun_cell_replaces_the_older_run(sr) -> None:
    """make study-cpu run twice logs every cell twice: the page must not count a seed twice."""
    from types import SimpleNamespace

    def run(run_id: str, start: int, seed: str) -> SimpleNamespace:
        tags = {"protocol": "mixed", "data_setup": "cwru10", "band_hz": "None",
                "model": "drsn_cw", "noise": "mixed", "snr_db": "None", "seed": seed}  # fmt: skip
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id, start_time=start),
                               data=SimpleNamespace(tags=tags))  # fmt: skip

    kept = sr.latest_per_cell([run("new0", 20, "0"), run("old0", 10, "0"), run("s1", 5, "1")])
    assert sorted(r.info.run_id for r in kept) == ["new0", "s1"]
