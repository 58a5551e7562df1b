"""Every command reports an error as ONE line ``<prog>: error: <message>`` with an exit code (2 for
bad input), prints the traceback only with ``--debug`` / ``FAULT_DIAG_DEBUG=1``, and stops quietly
when the reader of its output goes away (issue 18, item 7).

The handler itself (:mod:`fault_diag.cli.errors`) is tested on synthetic errors; the commands on the
cases of the issue that need no trained model (fd-data, fd-export on a damaged run folder, fd-report
on a garbage, absent or unreachable store, a full disk). fd-predict's cases are in test_predict.py,
fd-train's in test_train_errors.py.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fault_diag.cli import errors
from fault_diag.cli.errors import describe, one_line, run_cli, terminate_as_exception


def _cmd(
    module: str, *args: str, env: dict[str, str] | None = None, **kw
) -> subprocess.CompletedProcess:
    """The real command in a fresh process (what a user sees: no pytest capture in between)."""
    return subprocess.run(
        [sys.executable, "-m", f"fault_diag.cli.{module}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        **kw,
    )


def _one_error_line(stderr: str, prog: str) -> str:
    """The single line a failed command printed (warnings from libraries aside), checked."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors_ = [line for line in lines if line.startswith(f"{prog}: error: ")]
    assert len(errors_) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return errors_[0]


# ------------------------------------------------------------------------------ the handler


def test_one_line_joins_lines_and_lists() -> None:
    assert one_line("a\n  b\n\nc") == "a; b; c"
    assert one_line("Available options in 'model':\n\tcnn\n\twdcnn") == (
        "Available options in 'model': cnn, wdcnn"
    )
    assert len(one_line("x" * 5000)) == errors.MAX_MESSAGE


def test_run_cli_prints_one_line_and_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> int:
        raise ValueError("window_length=-5 must be positive\n(a second line)")

    assert run_cli("fd-x", bad) == 2
    err = capsys.readouterr().err
    assert err == "fd-x: error: window_length=-5 must be positive; (a second line)\n"

    def bug() -> int:
        raise KeyError("k")

    assert run_cli("fd-x", bug) == 1
    err = capsys.readouterr().err
    assert err.startswith("fd-x: error: internal error: KeyError") and "--debug" in err
    assert err.count("\n") == 1

    # --debug: the traceback, then the same line
    assert run_cli("fd-x", bad, debug=True) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("fd-x: error: window_length=-5")


def test_debug_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(errors.DEBUG_ENV, raising=False)
    assert not errors.debug_requested([])
    assert errors.debug_requested(["x", "--debug"])
    monkeypatch.setenv(errors.DEBUG_ENV, "1")
    assert errors.debug_requested([])
    monkeypatch.setenv(errors.DEBUG_ENV, "0")
    assert not errors.debug_requested([])


def test_full_disk_names_the_path(tmp_path: Path) -> None:
    # write() on a full disk raises ENOSPC without a file name: the command's output is named
    code, msg = describe(OSError(errno.ENOSPC, "No space left on device"), where="/data/bundle")
    assert (
        code == 1
        and msg == "no space left on device writing /data/bundle (No space left on device)"
    )
    code, msg = describe(OSError(errno.ENOSPC, "No space left on device", "/data/x.csv"))
    assert code == 1 and "writing /data/x.csv" in msg
    # torch's zip writer on a full disk raises RuntimeError: named as a failed write of the folder
    exc = RuntimeError(
        "[enforce fail at inline_container.cc:672] . unexpected pos 137024 vs 136912"
    )
    code, msg = describe(exc, where=str(tmp_path))
    assert code == 1 and str(tmp_path) in msg and "unexpected pos" in msg
    assert "\n" not in msg
    # a missing file is bad input
    code, msg = describe(FileNotFoundError(2, "No such file or directory", "x.yaml"))
    assert (code, msg) == (2, "x.yaml: No such file or directory")


def test_store_failures_are_one_readable_line() -> None:
    unreachable = Exception(
        "API request to http://127.0.0.1:9/api/2.0/mlflow/experiments/search failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: ... (Caused by "
        "NewConnectionError('...: Failed to establish a new connection: [Errno 111] Connection refused'))"
    )
    code, msg = describe(unreachable)
    assert code == 2
    assert msg.startswith(
        "cannot reach the MLflow tracking server http://127.0.0.1:9 (connection refused)"
    )
    code, msg = describe(
        Exception("(sqlite3.DatabaseError) file is not a database\n[SQL: ...]"),
        store="sqlite:////x/m.db",
    )
    assert code == 2 and "sqlite:////x/m.db is not an sqlite database" in msg


def test_sigterm_becomes_an_exception_inside_the_block() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(errors.Terminated), terminate_as_exception():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) == previous


# ------------------------------------------------------------------------------ fd-data


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["verify", "--files", "99999"],
            "fd-data verify: error: --files 99999: not a CWRU file number",
        ),
        (
            ["download", "--files", "97", "99999"],
            "fd-data download: error: --files 99999: not a CWRU",
        ),
        (
            ["summary", "--config", "missing.yaml"],
            "fd-data summary: error: --config missing.yaml: no such file",
        ),
        (
            ["summary", "--set", "classes=[a"],
            "fd-data summary: error: --set 'classes=[a': the value is not valid YAML",
        ),
    ],
)
def test_fd_data_bad_arguments_are_one_line_exit_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from fault_diag.cli.data import run

    assert run(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(expected) and err.count("\n") == 1, err


def test_fd_data_malformed_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fault_diag.cli.data import run

    bad = tmp_path / "bad.yaml"
    bad.write_text("setup: cwru10\nloads: [0, 1\n")
    assert run(["summary", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fd-data summary: error: --config {bad}: not valid YAML (line 3")
    bad.write_text("- a list\n")
    assert run(["summary", "--config", str(bad)]) == 2
    assert "expected a mapping of data settings" in capsys.readouterr().err


def test_fd_data_catalogue_into_a_closed_pipe_stops_quietly() -> None:
    """``fd-data catalogue | head``: the reader goes away before the listing is written (closed
    at once here, so that the write surely meets a closed pipe, whatever the timing)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fault_diag.cli.data", "catalogue"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert err == "" and code == errors.EXIT_BROKEN_PIPE


def test_stdout_on_a_full_disk_is_one_line() -> None:
    """A real ENOSPC: the listing goes to /dev/full."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "fault_diag.cli.data", "catalogue", "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 1
    line = _one_error_line(proc.stderr, "fd-data catalogue")
    assert "no space left on device writing the standard output" in line


# ------------------------------------------------------------------------------ fd-export


def _run_folder(tmp_path: Path) -> Path:
    """A finished run's artifacts folder for a tiny WDCNN (card + plain state dict)."""
    from fault_diag.export import card_for
    from fault_diag.models import get_model, get_model_spec
    from fault_diag.preprocess import Classifier

    torch.manual_seed(0)
    clf = Classifier(get_model("wdcnn", num_classes=4, in_channels=1)).eval()
    card = card_for(
        get_model_spec(clf.network), list("abcd"), sampling_rate_hz=12000, window_length=2048
    )
    art = tmp_path / "run" / "artifacts"
    art.mkdir(parents=True)
    (art / "model_card.json").write_text(json.dumps(card))
    torch.save(clf.state_dict(), art / "classifier_state.pt")
    return tmp_path / "run"


def test_fd_export_on_a_run_with_a_malformed_config(tmp_path: Path) -> None:
    run = _run_folder(tmp_path)
    (run / "artifacts" / "config.yaml").write_text("data:\n  setup: [cwru10\n  x: {\n")
    proc = _cmd("export", str(run), "--out", str(tmp_path / "bundle"))
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr, "fd-export")
    assert f"{run / 'artifacts' / 'config.yaml'}: not valid YAML (line 3" in line
    assert not (tmp_path / "bundle").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder either


def test_fd_export_full_disk_names_the_bundle(tmp_path: Path, monkeypatch, capsys) -> None:
    import fault_diag.export as export
    from fault_diag.cli.export import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "export_from_source", full)
    out = tmp_path / "bundle"
    assert main([str(tmp_path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"fd-export: error: no space left on device writing {out} (No space left on device)\n"
    )


# ------------------------------------------------------------------------------ fd-report


def test_fd_report_without_a_store_creates_none(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "mlflow.db"
    proc = _cmd("report", "--experiment", "x", "--tracking-uri", f"sqlite:///{db}")
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr, "fd-report")
    assert f"there is no MLflow store at sqlite:///{db}" in line
    assert not (tmp_path / "nowhere").exists(), "fd-report created a store (or its folder)"


def test_fd_report_default_store_absent(tmp_path: Path) -> None:
    proc = _cmd(
        "report",
        "--sweep",
        "latest",
        env={"FAULT_DIAG_ROOT": str(tmp_path), "MLFLOW_TRACKING_URI": ""},
    )
    assert proc.returncode == 2
    assert "there is no MLflow store at sqlite:///" in _one_error_line(proc.stderr, "fd-report")
    assert list(tmp_path.iterdir()) == []


def test_fd_report_on_a_garbage_sqlite_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    before = garbage.read_bytes()
    proc = _cmd("report", "--experiment", "x", "--tracking-uri", f"sqlite:///{garbage}")
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr, "fd-report")
    assert "garbage.db" in line
    assert garbage.read_bytes() == before


def test_fd_report_on_an_unreachable_server() -> None:
    with socket.socket() as sock:  # a port nobody listens on (loopback only)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = _cmd(
        "report",
        "--experiment",
        "x",
        "--tracking-uri",
        f"http://127.0.0.1:{port}",
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"},
    )
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr, "fd-report")
    assert f"127.0.0.1:{port}" in line


def test_the_projects_own_store_errors_keep_their_message() -> None:
    from fault_diag.tracking import TrackingError

    exc = TrackingError(
        "MLflow store sqlite:////x/g.db: /x/g.db is not a usable SQLite database (file is not a database); move it away"
    )
    assert describe(exc, store="sqlite:////x/g.db") == (2, str(exc))


# ------------------------------------------------------------ fd-train: did you mean, --help


def _composition_error(message: str) -> Exception:
    from hydra.errors import ConfigCompositionException

    return ConfigCompositionException(message)


@pytest.mark.parametrize(
    ("hydra_message", "expected"),
    [
        (
            "Could not override 'trainer.epoch'.\nTo append to your config use +trainer.epoch=3\n"
            "Key 'epoch' not in 'TrainerConfig'\n    full_key: trainer.epoch",
            "unknown key trainer.epoch: TrainerConfig has no 'epoch'; did you mean trainer.epochs?",
        ),
        (
            "Could not override 'traner.epochs'.\nTo append to your config use +traner.epochs=3\n"
            "Key 'traner' not in 'Config'\n    full_key: traner",
            "unknown key traner.epochs: Config has no 'traner'; did you mean trainer.epochs?",
        ),
        (
            "Could not override 'noise.snr'.\nKey 'snr' not in 'NoiseConfig'\n    full_key: noise.snr",
            "did you mean noise.snr_db?",
        ),
    ],
)
def test_unknown_key_did_you_mean(hydra_message: str, expected: str) -> None:
    code, message = describe(_composition_error(hydra_message))
    assert code == errors.EXIT_BAD_INPUT
    assert expected in message
    assert "+" not in message  # no advice to append a key the closed schema would never read


def test_unknown_key_without_a_close_match_lists_the_keys() -> None:
    code, message = describe(
        _composition_error(
            "Could not override 'trainer.xyzzy'.\nKey 'xyzzy' not in 'TrainerConfig'\n"
            "    full_key: trainer.xyzzy"
        )
    )
    assert "did you mean" not in message
    assert "trainer has epochs, batch_size" in message and "--cfg job" in message


def test_unknown_option_did_you_mean_without_schema_nodes() -> None:
    code, message = describe(
        _composition_error(
            "In 'config': Could not find 'model/drsn_cx'\n\nAvailable options in 'model':\n"
            "\tbase_model\n\tdrsn_cs\n\tdrsn_cw\n\twdcnn"
        )
    )
    assert code == errors.EXIT_BAD_INPUT
    assert "base_model" not in message
    assert message.endswith("did you mean model=drsn_cw (or drsn_cs)?"), message


def test_schema_keys_cover_nested_groups() -> None:
    keys = errors.schema_keys()
    assert {"trainer", "trainer.epochs", "data.loads", "noise.snr_db", "eval.adapt_bn"} <= set(keys)


def test_fd_train_help_lists_groups_examples_and_where_results_go(tmp_path: Path) -> None:
    from fault_diag.paths import config_dir

    proc = _cmd("train", "--help", env={"FAULT_DIAG_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "powered by Hydra" not in out and "base_model" not in out
    models = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))
    assert ", ".join(m + ("*" if m == "drsn_cw" else "") for m in models)[:40] in out
    assert "fd-train -m " in out and "experiment=study_cpu" in out
    assert f"Where results go (root: {tmp_path.resolve()})" in out
    assert f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}" in out
    assert "fd-report --sweep" in out
