"""Downloads with pooch against a real HTTP server on 127.0.0.1 serving copies of real CWRU files."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fault_diag.data.errors import DownloadError, HashMismatchError, MissingDataError
from fault_diag.data.sources.cwru.download import fetch, fetch_file, verify_files
from fault_diag.io import file_sha256 as sha256_of

pytestmark = pytest.mark.integration


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(cwru_dir: Path, tmp_path: Path) -> Iterator[_Server]:
    """Serves /files/105.mat (the real file) and /files/106.mat (corrupted: one byte changed)."""
    root = tmp_path / "www"
    (root / "files").mkdir(parents=True)
    shutil.copy(cwru_dir / "105.mat", root / "files" / "105.mat")
    data = bytearray((cwru_dir / "106.mat").read_bytes())
    data[5000] ^= 0xFF
    (root / "files" / "106.mat").write_bytes(bytes(data))
    srv = _Server(root)
    yield srv
    srv.close()


@pytest.fixture()
def downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh download folder; FAULT_DIAG_DATA_DIR unset so that downloads are allowed."""
    monkeypatch.delenv("FAULT_DIAG_DATA_DIR", raising=False)
    monkeypatch.delenv("FAULT_DIAG_CWRU_BASE_URL", raising=False)
    folder = tmp_path / "downloads"
    monkeypatch.setenv("FAULT_DIAG_DOWNLOAD_DIR", str(folder))
    return folder


def test_download_then_reuse_without_network(
    server: _Server, downloads: Path, cwru_dir: Path
) -> None:
    path = fetch_file(105, base_url=server.url, progress=False)
    assert path == downloads / "105.mat"
    assert sha256_of(path) == sha256_of(cwru_dir / "105.mat")
    assert server.requests == ["/files/105.mat"]
    server.close()  # the server is gone: a file with the right hash must not need it
    assert fetch_file(105, base_url=server.url, progress=False) == path
    assert server.requests == ["/files/105.mat"]


def test_base_url_from_environment(
    server: _Server, downloads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULT_DIAG_CWRU_BASE_URL", server.url + "/")
    report = fetch([105], progress=False)
    assert report.ok and report.paths[105].is_file()
    assert server.requests == ["/files/105.mat"]


def test_corrupted_download_is_refused_and_leaves_nothing(server: _Server, downloads: Path) -> None:
    with pytest.raises(HashMismatchError, match=r"106\.mat.*127\.0\.0\.1.*SHA-256") as err:
        fetch_file(106, base_url=server.url, progress=False)
    assert "FAULT_DIAG_DATA_DIR" in str(err.value)
    assert list(downloads.iterdir()) == []  # no 106.mat, no temporary file


def test_server_down_names_the_url_and_the_manual_route(downloads: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cwru"
    with pytest.raises(DownloadError) as err:
        fetch_file(105, base_url=url, progress=False, timeout_s=5)
    msg = str(err.value)
    assert f"{url}/105.mat" in msg
    assert f"put 105.mat (from the CWRU Bearing Data Center) in {downloads}" in msg
    assert "FAULT_DIAG_DATA_DIR" in msg
    assert not (downloads / "105.mat").exists()
    report = fetch([105, 106], base_url=url, progress=False, timeout_s=5)
    assert not report.ok and set(report.errors) == {105, 106}
    with pytest.raises(DownloadError, match=r"2 file\(s\) could not be obtained"):
        report.raise_if_failed()


def test_data_dir_override_never_downloads(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cwru_dir: Path
) -> None:
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(cwru_dir / "105.mat", own / "105.mat")
    (own / "106.mat").write_bytes((cwru_dir / "105.mat").read_bytes())  # wrong content
    monkeypatch.setenv("FAULT_DIAG_DATA_DIR", str(own))
    monkeypatch.setenv("FAULT_DIAG_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    assert fetch_file(105, base_url=server.url, progress=False) == own / "105.mat"
    with pytest.raises(HashMismatchError, match=r"106\.mat.*does not match"):
        fetch_file(106, base_url=server.url, progress=False)
    with pytest.raises(MissingDataError, match=r"107\.mat is not in FAULT_DIAG_DATA_DIR"):
        fetch_file(107, base_url=server.url, progress=False)
    assert server.requests == []
    assert not (tmp_path / "downloads").exists()


def test_verify_statuses(tmp_path: Path, cwru_dir: Path) -> None:
    shutil.copy(cwru_dir / "105.mat", tmp_path / "105.mat")
    (tmp_path / "106.mat").write_bytes(b"not the file")
    (tmp_path / "98.mat").write_bytes(b"no hash known for 98")
    got = {s.file: s.status for s in verify_files([98, 105, 106, 107], tmp_path)}
    assert got == {
        "98.mat": "unverified",
        "105.mat": "ok",
        "106.mat": "hash_mismatch",
        "107.mat": "missing",
    }


def test_cli_download_from_a_mirror(
    server: _Server, downloads: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from fault_diag.cli.data import run

    assert run(["download", "--files", "105", "--base-url", server.url, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["files"] == {"105.mat": str(downloads / "105.mat")} and rep["errors"] == {}
    assert run(["download", "--files", "106", "--base-url", server.url]) == 1
    assert "106.mat" in capsys.readouterr().out and not (downloads / "106.mat").exists()
