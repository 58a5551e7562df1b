"""A built wheel, installed (not editable) into a fresh environment, trains from any folder.

Builds the wheel from a copy of the sources (``pip wheel --no-deps --no-build-isolation``: nothing is
downloaded and no ``build/`` appears in the checkout), installs it with ``--no-deps`` into a new
virtual environment, and runs a 1-epoch ``fd-train`` from an empty temporary folder. The new
environment sees the heavy dependencies (torch, mlflow, ...) of the environment running the tests
through a ``.pth`` line naming its site-packages, the way ``--system-site-packages`` would for a
system interpreter; only plain paths are added, so the checkout's editable-install hook (a ``.pth``
there) is not run and ``import fault_diag`` can only find the installed copy, which the test checks.

Checked: the configuration ships in the package (``fault_diag/conf``), the run folder, the dataset
cache and the default MLflow store (``mlflow.db``, ``mlartifacts/``) land in the working folder, and
nothing new appears in the checkout. Needs the CWRU recordings (``FAULT_DIAG_DATA_DIR``); skipped,
with the reason, without them.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "fault_diag", "conf"]
# where a run could write in the checkout: none of these may change
WATCHED = ["outputs", "data/cache", "mlflow.db", "mlartifacts", "build"]
ENV_DROPPED = (
    "FAULT_DIAG_ROOT",
    "FAULT_DIAG_HOME",
    "FAULT_DIAG_CACHE_DIR",
    "FAULT_DIAG_DOWNLOAD_DIR",
    "MLFLOW_TRACKING_URI",
    "PYTHONPATH",
)

pytestmark = pytest.mark.integration


def _data_dir() -> Path:
    env = os.environ.get("FAULT_DIAG_DATA_DIR")
    if not env or not Path(env).is_dir():
        pytest.skip(
            "FAULT_DIAG_DATA_DIR is not set to a folder of CWRU recordings: the installed wheel "
            "cannot train (set it to run this test)"
        )
    return Path(env)


def _snapshot() -> dict[str, tuple[int, int]]:
    """Files (path -> size, mtime) under the checkout's output locations."""
    out: dict[str, tuple[int, int]] = {}
    for name in WATCHED:
        top = CHECKOUT / name
        paths = [top] if top.is_file() else (top.rglob("*") if top.is_dir() else [])
        for p in paths:
            st = p.stat()
            out[str(p.relative_to(CHECKOUT))] = (st.st_size, st.st_mtime_ns)
    return out


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 240) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_wheel_installs_and_trains_from_any_folder(tmp_path: Path) -> None:
    data_dir = _data_dir()
    before = _snapshot()
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED}
    env["FAULT_DIAG_DATA_DIR"] = str(data_dir)

    # 1. the wheel, from a copy of the sources
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        origin = CHECKOUT / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, src / name)
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(dist), str(src)],
        tmp_path,
        env,
    )
    (wheel,) = dist.glob("fault_diag-*.whl")

    # 2. a fresh environment with the wheel (and the dependencies of this one)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    py = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps"]
        + ["--no-index", str(wheel)],
        tmp_path,
        env,
    )
    (venv_site,) = (venv / "lib").glob("python*/site-packages")
    base = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (venv_site / "_fd_test_base_env.pth").write_text("\n".join(base) + "\n")

    # 3. from an empty working folder: the installed copy, its packaged conf/, the cwd as root
    work = tmp_path / "work"
    work.mkdir()
    where = _run(
        [
            str(py),
            "-c",
            "import fault_diag, fault_diag.paths as p; "
            "print(fault_diag.__file__); print(p.config_dir()); print(p.checkout_root()); "
            "print(p.project_root())",
        ],
        work,
        env,
    ).split()
    assert where[0].startswith(str(venv_site)), f"imported {where[0]}, not the installed wheel"
    assert where[1] == str(venv_site / "fault_diag" / "conf")
    assert where[2] == "None"
    assert where[3] == str(work.resolve())

    out = _run(
        [
            str(venv / "bin" / "fd-train"),
            "model=wdcnn",
            "noise=gaussian",
            "noise.snr_db=0",
            "noise.test_snr_grid_db=[0]",
            "data.loads=[0]",
            "data.train_hop=2048",
            "trainer.epochs=1",
            "trainer.progress=false",
            "eval.adapt_bn=false",
            "tracking.experiment=wheel_test",
            "tracking.log_model=false",
        ],
        work,
        env,
    )
    runs = list((work / "outputs" / "runs").glob("*/*_wdcnn_gaussian"))
    assert len(runs) == 1, out
    assert (work / "mlflow.db").is_file(), out
    assert (work / "mlartifacts").is_dir(), out
    assert (work / "data" / "cache").is_dir(), out
    assert f"next: fd-export {runs[0]}" in out
    assert _snapshot() == before, "the installed package wrote into the checkout"
