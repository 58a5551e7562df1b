"""The quickstart notebook runs top to bottom on the real CWRU files, into a temporary project root.

The notebook is executed with nbclient in a fresh kernel (the ``python3`` kernel of this interpreter)
whose environment points the MLflow store, the run folders and the dataset cache at tmp, so the
user's own store is never touched. Besides "no cell raised", the test checks what a reader would look
for: the figures were drawn, the envelope spectrum found the inner-race line, a model was trained and
the notebook found its run in MLflow (checked here against the store itself).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_quickstart.ipynb"
CELL_TIMEOUT_S = 600


def _outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


def _n_figures(nb: nbformat.NotebookNode) -> int:
    return sum(
        1
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    )


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells and any(c.cell_type == "markdown" for c in nb.cells)
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs]
    assert not with_outputs, f"cells {with_outputs} carry outputs: clear them before committing"
    assert all(c.execution_count is None for c in code_cells), "execution counts left in"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert NOTEBOOK.stat().st_size < 60_000, "the committed notebook should stay small"


@pytest.mark.notebook
@pytest.mark.integration
def test_quickstart_notebook_executes(
    cwru_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setenv("FAULT_DIAG_ROOT", str(root))
    monkeypatch.setenv("FAULT_DIAG_DATA_DIR", str(cwru_dir))
    monkeypatch.setenv("FAULT_DIAG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FAULT_DIAG_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # The python3 kernelspec starts "python": make it this interpreter (the project's venv).
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # kernel cwd: nothing lands in the repo
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"the notebook raised:\n{str(exc)[-6000:]}")

    text = _outputs_text(nb)
    assert _n_figures(nb) >= 6, f"expected the notebook's figures, got {_n_figures(nb)}"
    match = re.search(r"strongest envelope line between 100 and 500 Hz: ([\d.]+) Hz", text)
    assert match and abs(float(match.group(1)) - 162.2) < 3, "BPFI line of 105.mat not found"
    assert "realised SNR (dB)" in text
    # the mixed-protocol model's grid in balanced accuracy, and the confound the audit flags
    assert "balanced accuracy by noise kind and SNR (dB), from MLflow" in text
    assert re.search(r"spectral flag: normal: [\d.]+ % of its power in 4000-5000 Hz", text), (
        "the band-power audit should flag the normal class's 4-5 kHz line"
    )
    assert "share of fault test windows classified as normal" in text

    # The run the notebook trained is in the temporary store, finished, with its metrics, and the
    # notebook reported exactly that run.
    client_ml = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client_ml.get_experiment_by_name("notebook-quickstart")
    assert experiment is not None, "the notebook did not log into FAULT_DIAG_ROOT's store"
    runs = client_ml.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert 0.0 <= run.data.metrics["test/acc"] <= 1.0
    assert run.data.params["trainer.epochs"] == "8" and run.data.params["model.name"] == "drsn_cw"
    assert f"MLflow run found: {run.info.run_id}" in text
    assert "make ui" in text
    # The thresholds table: one row per SNR plus clean, a mean threshold for each of the 3 stages.
    assert re.search(r"stage1\s+stage2\s+stage3", text), "threshold table missing"
    run_dirs = list((root / "outputs" / "notebooks").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "artifacts" / "model_card.json").is_file()
