"""Write a bundle: torch.export ``.pt2`` and ONNX, the card, the parity report, atomically.

The bundle is built in a temporary folder next to the target and swapped into place
(:func:`fault_diag.io.atomic_replace_dir`); a failure (export, parity, registration), Ctrl-C or
SIGTERM under ``fd-export`` leaves nothing behind. A SIGKILL cannot be caught: the temporary folder
it leaves (``.<name>.tmp-<pid>@<host>-*``) is removed by the next export to the same target once that
process is gone (:func:`fault_diag.io.remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import logging
import platform
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fault_diag.bundle.card import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    CARD_FILE,
    INPUT_NAME,
    MODEL_FILES,
    ONNX_CARD_KEY,
    ONNX_FILE,
    OUTPUT_NAME,
    PARITY_FILE,
    PT2_CARD_NAME,
    PT2_FILE,
    ExportError,
    ParityError,
    model_fields,
    validate_card,
)
from fault_diag.bundle.parity import PARITY_ATOL, PARITY_RTOL, describe_check, parity_report
from fault_diag.bundle.source import real_test_windows, resolve_source
from fault_diag.io import (
    atomic_replace_dir,
    atomic_write_json,
    file_sha256,
    make_staging_dir,
    remove_stale_temporaries,
)

log = logging.getLogger(__name__)

#: The phases an export reports to its ``progress`` callback, in order (``fd-export`` shows them).
PHASES = ("building", "ONNX export", "parity check", "writing")
Progress = Callable[[str], None]


def _no_progress(phase: str) -> None:
    del phase


MAX_BATCH = 1 << 16

# ------------------------------------------------------------------------------- model files


def _export_program(classifier: nn.Module, window_length: int) -> torch.export.ExportedProgram:
    example = torch.randn(2, 1, window_length)  # batch 2: a batch of 1 would be specialised
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return torch.export.export(classifier, (example,), dynamic_shapes={"x": {0: batch}})


def _write_onnx(
    ep: torch.export.ExportedProgram, card_json: str, path: Path, window_length: int
) -> int:
    """ONNX via the dynamo exporter from the exported program; returns the opset.

    ``optimize=False``: the exporter's graph optimiser (onnxscript 0.7) has a "x + 0 -> x" rule that
    matches constants within ``abs_tol=1e-8`` of zero, so it deleted the ``std + 1e-8`` of the
    per-window standardisation: every model's ONNX graph divided by ``std`` alone, gave NaN on an
    all-zero window (a dead channel, padding) and differed from torch by ``1e-8 / std`` relative on
    quiet windows (3e-4 on HIT-SM's std 7e-5 windows, the parity failure of issue 18). Unoptimised,
    the graph is the program op for op; onnxruntime optimises it when it loads it (measured: same
    speed, and exact agreement on zero and quiet windows for every registered model).
    """
    import onnx

    example = torch.randn(2, 1, window_length)
    # "torchvision is not installed. Skipping torchvision::nms" and the like: noise for 1D models.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    sink = io.StringIO()  # the exporter prints progress lines; keep stdout clean for --json
    with contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            ep,
            (example,),
            dynamo=True,
            external_data=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            verbose=False,
            optimize=False,  # see the docstring: the optimiser drops the normalisation's eps
        )
    log.debug("torch.onnx.export: %s", sink.getvalue())
    if program is None:  # only when f= is given, which we do not
        raise ExportError("torch.onnx.export returned no program")
    proto = program.model_proto
    # The exporter names the dynamic dim after a symbol ("s77"); call it "batch" everywhere.
    sym = proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    for vi in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for dim in vi.type.tensor_type.shape.dim:
            if sym and dim.dim_param == sym:
                dim.dim_param = "batch"
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_CARD_KEY, card_json
    entry = proto.metadata_props.add()
    entry.key, entry.value = "fault_diag.bundle_format", f"{BUNDLE_FORMAT}/{BUNDLE_FORMAT_VERSION}"
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return int(next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0))


def _export_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }


# ---------------------------------------------------------------------------------- export


@dataclass
class ExportResult:
    """What :func:`export_bundle` produced."""

    path: Path
    card: dict[str, Any]
    parity: dict[str, Any]
    registered: dict[str, Any] | None = None


def export_bundle(
    classifier: nn.Module,
    card: dict[str, Any],
    out_dir: str | Path,
    *,
    real_windows: np.ndarray | None = None,
    real_windows_source: str | None = None,
    real_windows_skipped: str | None = None,
    source: dict[str, Any] | None = None,
    overwrite: bool = False,
    before_commit: Any = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the bundle for ``classifier`` (normalisation included) and its ``card`` to ``out_dir``.

    ``real_windows`` (RAW, ``(n, 1, window_length)``) join the parity check; ``source`` describes
    where the model came from (stored in ``card["export"]["source"]``). ``before_commit(card)`` is
    called after the parity check, before the bundle is moved into place (e.g. to register the
    model); it may return a dict stored as ``card["export"]["registered_model"]``. Raises
    :class:`ExportError` / :class:`ParityError`; on any failure nothing is left at ``out_dir``.
    ``progress(phase)`` is called as each of the last three :data:`PHASES` starts.
    """
    progress = progress or _no_progress
    card = validate_card(json.loads(json.dumps(card, default=str)))
    length, labels = int(card["window_length"]), list(card["labels"])
    classifier = classifier.eval().cpu()
    with torch.no_grad():
        probe = classifier(torch.zeros(2, 1, length) + torch.linspace(-1, 1, length))
    if tuple(probe.shape) != (2, len(labels)):
        raise ExportError(
            f"the classifier maps (2, 1, {length}) to {tuple(probe.shape)}, but the card has "
            f"{len(labels)} labels {labels}"
        )
    if real_windows is not None and (
        real_windows.ndim != 3 or real_windows.shape[1:] != (1, length)
    ):
        raise ExportError(f"real windows of shape {real_windows.shape}: expected (n, 1, {length})")
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.parent.is_dir():
        # first: a bundle moved aside by a killed --force export is put back before the check
        remove_stale_temporaries(out_dir)
    if out_dir.exists() and not overwrite:
        raise ExportError(
            f"{out_dir} already exists; choose another folder or pass overwrite (--force)"
        )
    # Built next to the target, named after its owner (pid@host) so that a later export can tell a
    # killed export's leftovers from a concurrent one's folder.
    tmp = make_staging_dir(out_dir)
    try:
        progress("ONNX export")
        export_info: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "source": source or {"kind": "python"},
            "input": {"name": INPUT_NAME, "shape": ["batch", 1, length], "dtype": "float32"},
            "output": {
                "name": OUTPUT_NAME,
                "shape": ["batch", len(labels)],
                "dtype": "float32",
                "meaning": "class logits in label order; softmax gives probabilities",
            },
            "normalisation_in_graph": True,
            "versions": _export_versions(),
        }
        embedded = {**model_fields(card), "export": export_info}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch-internal deprecations
                ep = _export_program(classifier, length)
        except Exception as exc:  # noqa: BLE001 - torch.export raises many types
            raise ExportError(
                f"torch.export failed for model {card['model']['name']!r}: {exc}"
            ) from exc
        card_json = json.dumps(embedded, sort_keys=True)
        torch.export.save(ep, str(tmp / PT2_FILE), extra_files={PT2_CARD_NAME: card_json})
        try:
            opset = _write_onnx(ep, card_json, tmp / ONNX_FILE, length)
        except Exception as exc:  # noqa: BLE001
            raise ExportError(
                f"ONNX export failed for model {card['model']['name']!r}: {exc}"
            ) from exc
        stray = sorted(p.name for p in tmp.iterdir() if p.name not in MODEL_FILES)
        if stray:  # e.g. a model.onnx.data sidecar: the bundle must be single files
            raise ExportError(f"ONNX export wrote unexpected files {stray}")
        export_info["onnx_opset"] = opset
        export_info["files"] = {
            name: {"sha256": file_sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
            for name in MODEL_FILES
        }
        final = {**model_fields(card), "export": export_info}
        atomic_write_json(tmp / CARD_FILE, final, default=str)
        progress("parity check")
        parity = parity_report(
            classifier,
            tmp,
            real_windows,
            real_windows_source,
            real_skipped_reason=real_windows_skipped,
        )
        atomic_write_json(tmp / PARITY_FILE, parity, default=str)
        if not parity["passed"]:
            worst = [c for c in parity["checks"] if not c["passed"]]
            raise ParityError(
                f"parity check failed (tolerance rtol*|logit| + atol*s*c, rtol {PARITY_RTOL}, "
                f"atol {PARITY_ATOL}; docs/export.md): "
                + "; ".join(describe_check(c) for c in worst[:3])
            )
        progress("writing")
        registered = before_commit(final) if before_commit is not None else None
        if registered:
            final["export"]["registered_model"] = registered
            atomic_write_json(tmp / CARD_FILE, final, default=str)
        atomic_replace_dir(tmp, out_dir)  # 0o777 less the umask: a bundle is meant to be shared
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out_dir, final, parity, registered)


def export_from_source(
    source: str,
    out_dir: str | Path,
    *,
    tracking_uri: str | None = None,
    real_windows: str = "require",
    n_real_windows: int = 64,
    register: str | None = None,
    alias: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ExportResult:
    """``fd-export``: resolve ``source`` (see :func:`resolve_source`), export, check parity, register.

    ``real_windows``: ``require`` (fail when the run's test windows cannot be rebuilt), ``auto``
    (use them when possible, else record why not) or ``skip``. ``progress(phase)`` is called as each
    of :data:`PHASES` starts.
    """
    if real_windows not in ("require", "auto", "skip"):
        raise ExportError(f"real_windows={real_windows!r}: expected require, auto or skip")
    if alias and not register:
        raise ExportError("an alias needs a registered model name (--register NAME)")
    (progress or _no_progress)("building")
    src = resolve_source(source, tracking_uri)
    windows, where = None, None
    skipped_reason = "not requested (--real-windows skip)" if real_windows == "skip" else None
    if real_windows != "skip":
        try:
            windows, where = real_test_windows(src.config, n_real_windows)
        except ExportError as exc:
            if real_windows == "require":
                raise ExportError(
                    f"{exc}. Set FAULT_DIAG_DATA_DIR to the recordings the run was trained on, or "
                    "pass --real-windows auto/skip to export without the real-window parity check"
                ) from exc
            skipped_reason = str(exc)
            log.warning("parity on real windows skipped: %s", exc)
    before_commit = None
    if register:
        if src.run_id is None or src.tracking_uri is None:
            if src.run_id is None:
                raise ExportError("--register needs a source with an MLflow run id")
            from fault_diag.tracking import resolve_tracking_uri

            src.tracking_uri = resolve_tracking_uri(tracking_uri)
        run_id, uri = src.run_id, src.tracking_uri

        from fault_diag.bundle.register import register_run_model

        def before_commit(_card: dict[str, Any]) -> dict[str, Any]:
            return register_run_model(run_id, register, alias, uri)

    result = export_bundle(
        src.classifier,
        src.card,
        out_dir,
        real_windows=windows,
        real_windows_source=where,
        real_windows_skipped=skipped_reason,
        source=src.description,
        overwrite=overwrite,
        before_commit=before_commit,
        progress=progress,
    )
    return result
