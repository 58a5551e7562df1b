"""docs/own-data.md works as written: its shell blocks run end to end on CWRU-derived CSV files.

The test takes every ```bash block of the guide, in order, and runs them as one bash script (``set -e``)
in the checkout, with ``HOME`` (the example works in ``~/my_rig``), the project root (MLflow store) and
the dataset cache in tmp. The only change to the guide's commands: ``fd-train`` gets overrides that make
it one tiny epoch. The outputs the guide shows (conversion lines, the dataset summary) must match what
the commands print, so the page cannot drift from the code.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "own-data.md"
SCRIPT = REPO / "scripts" / "cwru_to_csv.py"
LABELS = ["ball", "healthy", "inner", "outer"]
# Appended to the guide's fd-train command: one epoch, a 1-point test grid, no MLflow model logging.
FAST_TRAIN = [
    "trainer.epochs=1",
    "trainer.num_threads=1",
    "trainer.progress=false",
    "data.train_hop=2048",
    "'noise.test_snr_grid_db=[0]'",
    "tracking.log_model=false",
]


def _blocks(text: str, lang: str) -> list[tuple[int, str]]:
    """(offset, body) of every fenced block of language ``lang``."""
    return [(m.start(), m.group(1)) for m in re.finditer(rf"```{lang}\n(.*?)```", text, re.S)]


def guide_script(text: str) -> str:
    """The guide's bash blocks as one script, with the fd-train command made tiny."""
    body = "\n".join(b for _, b in _blocks(text, "bash"))
    body = body.replace("\\\n", " ")  # join continuation lines
    lines = []
    for line in body.splitlines():
        if line.lstrip().startswith("fd-train "):
            line = f"{line.rstrip()} {' '.join(FAST_TRAIN)}"
        lines.append(line)
    return "set -euo pipefail\n" + "\n".join(lines) + "\n"


def _text_block_after(text: str, command: str) -> list[str]:
    """Lines of the first ```text block after the bash block that contains ``command``."""
    start = next(off for off, b in _blocks(text, "bash") if command in b)
    after = [b for off, b in _blocks(text, "text") if off > start]
    return after[0].splitlines()


def test_guide_script_has_every_step() -> None:
    script = guide_script(GUIDE.read_text())
    steps = ("cwru_to_csv.py", "manifest.csv", "fd-data summary", "fd-train ", "fd-export ")
    for step in (*steps, "fd-predict "):
        assert step in script, f"the guide lost its {step!r} step"
    assert "trainer.epochs=1" in script and "data=generic" in script


@pytest.mark.integration
def test_worked_example_runs_end_to_end(cwru_dir: Path, tmp_path: Path) -> None:
    import matplotlib
    from mlflow import MlflowClient

    guide = GUIDE.read_text()
    home, root = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    root.mkdir()
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        HOME=str(home),
        FAULT_DIAG_ROOT=str(root),
        FAULT_DIAG_DATA_DIR=str(cwru_dir),
        FAULT_DIAG_CACHE_DIR=str(tmp_path / "cache"),
        FAULT_DIAG_DOWNLOAD_DIR=str(tmp_path / "downloads"),
        # The guide assumes the venv is active: python, fd-* are this interpreter's.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        MPLBACKEND="Agg",
        MPLCONFIGDIR=env.get("MPLCONFIGDIR", matplotlib.get_configdir()),  # keep the font cache
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["bash", "-c", guide_script(guide)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout
    assert proc.returncode == 0, (
        f"the guide's commands failed:\n{out[-3000:]}\n{proc.stderr[-5000:]}"
    )
    print(f"guide ran in {time.perf_counter() - t0:.0f} s")

    # 3.1 / 3.3: what the guide shows is what the commands print.
    for line in _text_block_after(guide, "cwru_to_csv.py"):
        if line.strip() and "..." not in line:
            assert line in out, f"guide shows {line!r} but the conversion printed something else"
    for line in _text_block_after(guide, "fd-data summary"):
        if line.strip() and "..." not in line:
            assert line in out, f"guide shows {line!r} but fd-data summary printed something else"

    my_rig = home / "my_rig"
    assert (my_rig / "manifest.csv").is_file()
    # 3.4: the run, in its folder and in the temporary MLflow store.
    card = json.loads((my_rig / "runs" / "first" / "artifacts" / "model_card.json").read_text())
    assert card["labels"] == LABELS
    assert card["sampling_rate_hz"] == 12000 and card["window_length"] == 2048
    assert card["channel"] == "de_g"
    assert card["noise_protocol"]["noise_protocol"] == "clean_train"
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("my-rig")
    assert experiment is not None, "fd-train did not log into FAULT_DIAG_ROOT's store"
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_id == card["mlflow_run_id"]
    assert run.data.params["data.setup"] == "generic" and run.data.params["data.channel"] == "de_g"
    assert 0.0 <= run.data.metrics["test/acc"] <= 1.0

    # 3.5: the bundle, checked on real windows rebuilt from the manifest.
    bundle = my_rig / "bundle"
    for name in ("model.onnx", "model.pt2", "model_card.json", "parity_report.json"):
        assert (bundle / name).is_file(), name
    bundle_card = json.loads((bundle / "model_card.json").read_text())
    assert bundle_card["labels"] == LABELS and bundle_card["mlflow_run_id"] == run.info.run_id
    parity = json.loads((bundle / "parity_report.json").read_text())
    assert parity["real_windows"]["status"] == "used"
    assert all(c["passed"] for c in parity["checks"])

    # 3.6: the held-out recording, window by window, with a verdict among the manifest's labels.
    assert "59 windows, hop 2048" in out
    verdict = re.search(r"verdict \(majority vote\):\s+(\w+)\s+\((\d+)/59 windows\)", out)
    assert verdict and verdict.group(1) in LABELS


def _converter():
    spec = importlib.util.spec_from_file_location("cwru_to_csv", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("105:inner.csv", "expected NUMBER=PATH"),
        ("105=../outside.csv", "relative path ending in .csv inside --out"),
        ("105=inner.txt", "relative path ending in .csv"),
        ("5=unknown.csv", "not in the CWRU catalogue"),
    ],
)
def test_converter_rejects_bad_arguments_and_writes_nothing(
    pair: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _converter().main(["--out", str(out), pair]) == 2
    err = capsys.readouterr().err
    assert message in err and pair.split("=")[0].split(":")[0] in err
    assert not out.exists() or not any(out.rglob("*"))


@pytest.mark.integration
def test_converter_keeps_the_samples(cwru_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import numpy as np
    import pandas as pd

    from fault_diag.data import read_mat

    monkeypatch.setenv("FAULT_DIAG_DATA_DIR", str(cwru_dir))
    assert _converter().main(["--out", str(tmp_path), "105=inner/run1.csv"]) == 0
    table = pd.read_csv(tmp_path / "inner" / "run1.csv")
    assert list(table.columns) == ["de_g", "fe_g"]
    de = read_mat(cwru_dir / "105.mat", "DE").data
    assert len(table) == de.size
    np.testing.assert_allclose(table["de_g"].to_numpy(), de, rtol=1e-7, atol=1e-12)
    assert not list(tmp_path.rglob("*.tmp")), "temporary file left behind"


def test_generic_data_config_requires_a_manifest() -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from fault_diag.cli.train import CONF_DIR
    from fault_diag.data import DataConfig
    from fault_diag.data.errors import ConfigError

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["data=generic"])
        with_manifest = compose(
            config_name="config", overrides=["data=generic", "data.manifest=/m.csv"]
        )
    assert cfg.data.setup == "generic"
    with pytest.raises(ConfigError, match=r"data\.manifest=None.*manifest CSV"):
        DataConfig.from_any(OmegaConf.to_container(cfg.data)).validate()
    DataConfig.from_any(OmegaConf.to_container(with_manifest.data)).validate()
