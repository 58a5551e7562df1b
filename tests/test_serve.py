"""Serving: ``mlflow models serve --env-manager local`` on the registered model, over REST.

The model is the 1-epoch run of tests/test_predict.py (registered as ``fd-unit@champion`` by
fd-export); real CWRU windows posted to ``/invocations`` must get the classes fd-predict gives.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

# tests/ is on sys.path under pytest's default import mode: reuse the session's trained run.
from test_predict import REGISTERED, WINDOW, trained_bundle

from fault_diag.predict import predict_recording

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_served_model_gives_the_classes_of_fd_predict(tmp_path_factory, cwru_dir: Path) -> None:
    info = trained_bundle(tmp_path_factory.getbasetemp(), cwru_dir)
    root = Path(info["root"])
    port = _free_port()
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ)
    # uvicorn is started by name: the venv's bin must be on PATH (as after `source .venv/bin/activate`)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [
                str(Path(venv_bin) / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{REGISTERED}@champion",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: uvicorn is a child of the CLI
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)

        n = 8
        expected = predict_recording(info["bundle"], cwru_dir / "106.mat", stop=n * WINDOW)
        from fault_diag.data import read_recording

        x = read_recording(cwru_dir / "106.mat").data[: n * WINDOW].reshape(n, 1, WINDOW)
        status, body = _post(f"{base}/invocations", {"inputs": x.astype(np.float32).tolist()})
        assert status == 200, body
        logits = np.asarray(body["predictions"], dtype=np.float64)
        assert logits.shape == (n, len(expected.labels))
        served = [expected.labels[k] for k in logits.argmax(1)]
        assert served == [w.label for w in expected.windows]
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        want = np.array(
            [[w.probabilities[lab] for lab in expected.labels] for w in expected.windows]
        )
        np.testing.assert_allclose(probs, want, atol=1e-4)

        # the served signature fixes the window: a wrong length is refused, not silently padded
        status, body = _post(f"{base}/invocations", {"inputs": x[:, :, :1000].tolist()})
        assert status == 400, body
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
