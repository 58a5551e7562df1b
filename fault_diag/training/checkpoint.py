"""Atomic checkpoints, loaded without unpickling arbitrary objects (``weights_only=True``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (damaged, or written by another configuration)."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A run killed mid-write leaves the previous checkpoint intact and no partial file under ``path``.
    """
    from fault_diag.io import atomic_write

    try:
        atomic_write(path, lambda handle: torch.save(state, handle), binary=True)
    except OSError as exc:
        if exc.filename is not None:
            raise
        # torch.save writes to an open handle: its errors (a full disk) name no file.
        raise OSError(exc.errno, f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
            "delete it to start the run afresh"
        ) from exc
