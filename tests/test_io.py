"""fault_diag.io: atomic writes, folder replacement, file hashes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from fault_diag import io


def test_atomic_writes_replace_and_leave_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    io.atomic_write_json(target, {"b": 1, "a": [1, 2]}, sort_keys=True)
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    io.atomic_write_text(target, "text")
    assert target.read_text() == "text"
    io.atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")

    def boom(fh: object) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, boom, binary=False)
    with pytest.raises(TypeError):
        io.atomic_write_json(target, {"x": object()})
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_file_sha256(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    (tmp_path / "f").write_bytes(data)
    assert io.file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_atomic_replace_dir(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    for content in ("one", "two"):
        staging = io.make_staging_dir(target)
        assert staging.name.startswith(f".bundle.tmp-{io.owner_tag()}-")
        (staging / "f").write_text(content)
        io.atomic_replace_dir(staging, target)
        assert (target / "f").read_text() == content
        assert [p.name for p in tmp_path.iterdir()] == ["bundle"]
