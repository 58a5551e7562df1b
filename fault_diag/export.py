"""Export a trained classifier as a self-describing bundle, and load such a bundle safely.

A bundle is a folder (DESIGN.md section 6)::

    model.pt2            torch.export program, dynamic batch dimension; the card in its extra files
    model.onnx           ONNX (dynamo exporter, one file, no .onnx.data); the card in metadata_props
    model_card.json      every card field + "export" (versions, opset, sha256 of each model file, ...)
    parity_report.json   onnxruntime and the .pt2 program against eager torch: batch 1, batch 7,
                         edge windows (all zeros, quiet) and real test windows, within a tolerance
                         that scales with each window's logits and input (:func:`parity_tolerance`)

Both graphs map a RAW window ``(batch, 1, window_length)`` float32 (the recording's units) to class
logits ``(batch, len(labels))``: per-window standardisation is the first op of the graph
(:class:`fault_diag.preprocess.Classifier`), so a user only cuts windows at the card's sampling rate.

Security: nothing in a bundle or a training checkpoint is unpickled. The weights come from the run's
``classifier_state.pt`` loaded with ``torch.load(weights_only=True)``; ONNX is protobuf; a ``.pt2`` is
checked member by member before ``torch.export.load`` (which would unpickle tensor subclasses,
custom objects and a failed ``sample_inputs`` load) and refused when any member needs pickle. Loading
checks the sha256 of every model file against the card and the card embedded in each model file
against ``model_card.json``, and the graphs' input/output shapes against the card's window length
and labels, so a tampered bundle is refused with :class:`BundleError`.

Writing is atomic: the bundle is built in a temporary folder next to the target and renamed into
place; a failure (export, parity, registration), Ctrl-C or SIGTERM under ``fd-export`` leaves nothing
behind. A SIGKILL cannot be caught: the temporary folder it leaves (``.<name>.tmp-<pid>@<host>-*``)
is removed by the next export to the same target once that process is gone
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import glob
import hashlib
import io
import json
import logging
import os
import platform
import re
import shutil
import socket
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "fault-diag-bundle"
BUNDLE_FORMAT_VERSION = 1
CARD_FILE = "model_card.json"
PT2_FILE = "model.pt2"
ONNX_FILE = "model.onnx"
PARITY_FILE = "parity_report.json"
MODEL_FILES = (PT2_FILE, ONNX_FILE)
INPUT_NAME = "x"
OUTPUT_NAME = "logits"
ONNX_CARD_KEY = "model_card"  # metadata_props key
PT2_CARD_NAME = "model_card.json"  # extra file inside the .pt2 archive
# Parity tolerance (see parity_tolerance): |runtime - torch| <= RTOL |logit| + ATOL s c per logit,
# s = the window's largest |logit| (at least 1), c = 1 + |mean| / std of the window (at most
# PARITY_MAX_INPUT_FACTOR). At s = c = 1 it is the former fixed np.allclose(rtol=1e-4, atol=1e-5).
PARITY_RTOL = 1e-4
PARITY_ATOL = 1e-5
PARITY_MAX_INPUT_FACTOR = 1e4
PARITY_RANDOM_BATCHES = (1, 7)
PARITY_QUIET_STD = 1e-6  # edge window: the normalisation's eps (1e-8) is 1 % of this std
PARITY_TOLERANCE_RULE = (
    "|runtime - torch| <= rtol*|logit| + atol*s*c for every logit, where s = max(1, largest |logit| "
    "of the window) and c = min(1 + |mean|/std of the raw window, "
    f"{PARITY_MAX_INPUT_FACTOR:g}) (1 for a constant window)"
)
STALE_LEGACY_TEMP_S = 3600  # a temporary folder without an owner pid, untouched this long, is stale
MAX_BATCH = 1 << 16

# card key -> (python types, what is expected), checked on export and on load
REQUIRED_CARD_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((dict,), "an object {name, kwargs}"),
    "labels": ((list,), "a list of class names"),
    "sampling_rate_hz": ((int,), "a positive integer (Hz)"),
    "window_length": ((int,), "a positive integer (samples)"),
    "channel": ((str,), "a channel name such as 'DE'"),
    "input_layout": ((str,), "a description of the input tensor"),
    "normalisation": ((str,), "a description of the per-window normalisation"),
}


class ExportError(ValueError):
    """The classifier or its card cannot be exported (the message says what and why)."""


class SourceError(ExportError):
    """The run, registered model or folder to export from cannot be resolved or is incomplete."""


class ParityError(ExportError):
    """onnxruntime or the .pt2 program disagree with eager torch beyond the tolerance."""


class BundleError(ValueError):
    """A bundle is missing, incomplete, inconsistent or tampered with."""


# ----------------------------------------------------------------------------------------- card


def validate_card(card: Any, where: str = "model card") -> dict[str, Any]:
    """Check the fields a user of the model needs; raise :class:`BundleError` naming the bad key."""
    if not isinstance(card, dict):
        raise BundleError(f"{where}: expected a JSON object, got {type(card).__name__}")
    missing = [k for k in REQUIRED_CARD_FIELDS if k not in card]
    if missing:
        raise BundleError(
            f"{where}: missing field(s) {missing}; a card needs {list(REQUIRED_CARD_FIELDS)}"
        )
    for key, (types, expected) in REQUIRED_CARD_FIELDS.items():
        value = card[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise BundleError(f"{where}: {key}={value!r} is invalid: expected {expected}")
    for key in ("sampling_rate_hz", "window_length"):
        if card[key] <= 0:
            raise BundleError(
                f"{where}: {key}={card[key]!r} is invalid: expected a positive integer"
            )
    labels = card["labels"]
    if len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        raise BundleError(f"{where}: labels={labels!r} is invalid: expected 2+ non-empty strings")
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise BundleError(f"{where}: labels has duplicates {dup}")
    spec = card["model"]
    if not isinstance(spec.get("name"), str) or not isinstance(spec.get("kwargs", {}), dict):
        raise BundleError(
            f"{where}: model={spec!r} is invalid: expected {{name: str, kwargs: {{...}}}}"
        )
    n_cls = spec.get("kwargs", {}).get("num_classes")
    if n_cls is not None and n_cls != len(labels):
        raise BundleError(
            f"{where}: model.kwargs.num_classes={n_cls} but labels has {len(labels)} entries {labels}"
        )
    return card


def card_for(
    model_spec: dict[str, Any],
    labels: list[str],
    *,
    sampling_rate_hz: int,
    window_length: int,
    channel: str = "DE",
    **extra: Any,
) -> dict[str, Any]:
    """A minimal card for a classifier built outside ``fd-train`` (``extra`` adds fields)."""
    card = {
        "model": copy.deepcopy(model_spec),
        "labels": list(labels),
        "sampling_rate_hz": int(sampling_rate_hz),
        "window_length": int(window_length),
        "channel": channel,
        "input_layout": "(batch, 1, window_length) float32, raw signal in the recording's units (g)",
        "normalisation": "per-window standardisation (zero mean, unit variance) inside the model",
        **extra,
    }
    return validate_card(json.loads(json.dumps(card, default=str)))


def _model_fields(card: dict[str, Any]) -> dict[str, Any]:
    """The card without its ``export`` section: what the model files must carry identically."""
    return {k: v for k, v in card.items() if k != "export"}


def _diff_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def _show(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------- classifier build


def classifier_from_state(card: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Rebuild the deployed classifier (normalisation + network) from the card's model spec."""
    from fault_diag.models import build_from_spec
    from fault_diag.preprocess import Classifier

    validate_card(card)
    norm = card["normalisation"].lower()
    if "inside the model" in norm:
        normalize = True
    elif norm.startswith("none"):
        normalize = False
    else:
        raise ExportError(
            f"model card normalisation={card['normalisation']!r}: expected per-window "
            "standardisation 'inside the model' or 'none'"
        )
    try:
        network = build_from_spec(card["model"])
    except ValueError as exc:
        raise ExportError(f"cannot rebuild model {card['model']!r}: {exc}") from exc
    clf = Classifier(network, normalize=normalize)
    try:
        clf.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise ExportError(
            f"the weights do not fit model {card['model']['name']!r} built from the card: {exc}"
        ) from exc
    return clf.eval()


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load(path, weights_only=True)``: tensors only, nothing else is unpickled."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, ...
        raise SourceError(
            f"{path}: not a plain state dict loadable with weights_only=True ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SourceError(f"{path}: expected a state dict (name -> tensor)")
    return state


# ----------------------------------------------------------------------------------- sources


@dataclass
class ExportSource:
    """What to export: the classifier, its card, and where they came from."""

    classifier: nn.Module
    card: dict[str, Any]
    description: dict[str, Any]
    run_id: str | None = None
    config: dict[str, Any] | None = None  # the run's resolved config.yaml
    tracking_uri: str | None = None


_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _read_folder_source(folder: Path, description: dict[str, Any]) -> ExportSource:
    import yaml

    if (folder / "artifacts" / CARD_FILE).is_file():
        folder = folder / "artifacts"
    card_path, state_path = folder / CARD_FILE, folder / "classifier_state.pt"
    for p in (card_path, state_path):
        if not p.is_file():
            raise SourceError(
                f"{folder}: {p.name} is missing; expected the artifacts of a finished fd-train run "
                "(model_card.json and classifier_state.pt)"
            )
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise SourceError(f"{card_path}: not valid JSON ({exc})") from exc
    try:
        validate_card(card, str(card_path))
    except BundleError as exc:
        raise SourceError(str(exc)) from exc
    config = None
    if (folder / "config.yaml").is_file():
        # A damaged config.yaml is refused here, naming the file and the place, rather than
        # surfacing later as a parser traceback (or a KeyError) while the test windows are rebuilt.
        where = (
            str(folder / "config.yaml")
            if description.get("kind") == "folder"
            else f"config.yaml of MLflow run {description.get('run_id')}"
        )
        try:
            config = yaml.safe_load((folder / "config.yaml").read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SourceError(
                f"{where}: not valid YAML ({at}{problem}); the run's resolved configuration is "
                "damaged (fd-train writes it; restore it from the run's .hydra/config.yaml or "
                "MLflow artifacts)"
            ) from exc
        if config is not None and not isinstance(config, dict):
            raise SourceError(
                f"{where}: expected a mapping (the run's resolved configuration), got "
                f"{type(config).__name__}"
            )
    clf = classifier_from_state(card, load_state_dict_file(state_path))
    return ExportSource(clf, card, description, card.get("mlflow_run_id"), config)


def resolve_source(source: str, tracking_uri: str | None = None) -> ExportSource:
    """Resolve what ``fd-export`` was pointed at.

    ``source`` is a run folder (``<run dir>`` or ``<run dir>/artifacts``), an MLflow run id
    (``<32 hex>`` or ``runs:/<id>``), or a registered model (``models:/name@alias`` or
    ``models:/name/<version>``) in the store at ``tracking_uri`` (default: the project's store).
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_folder_source(path.resolve(), {"kind": "folder", "path": str(path.resolve())})

    from fault_diag.tracking import get_client, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    description: dict[str, Any]
    if source.startswith("models:/"):
        name_part = source[len("models:/") :]
        client = get_client(uri)
        try:
            if "@" in name_part:
                name, alias = name_part.split("@", 1)
                mv = client.get_model_version_by_alias(name, alias)
            elif "/" in name_part:
                name, version = name_part.split("/", 1)
                mv = client.get_model_version(name, version)
            else:
                raise SourceError(
                    f"{source!r}: expected models:/<name>@<alias> or models:/<name>/<version>"
                )
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - MlflowException for unknown names/aliases
            raise SourceError(f"registered model {source!r} not found in {uri}: {exc}") from exc
        if not mv.run_id:
            raise SourceError(f"registered model {source!r} (version {mv.version}) names no run")
        run_id = mv.run_id
        description = {
            "kind": "registered_model",
            "uri": source,
            "name": mv.name,
            "version": str(mv.version),
            "run_id": run_id,
        }
    else:
        run_id = source[len("runs:/") :].strip("/") if source.startswith("runs:/") else source
        if not _RUN_ID.match(run_id):
            raise SourceError(
                f"{source!r} is neither a folder, an MLflow run id (32 hex digits), runs:/<id>, "
                "nor models:/<name>@<alias>"
            )
        client = get_client(uri)
        description = {"kind": "mlflow_run", "run_id": run_id}
    try:
        client.get_run(run_id)
    except Exception as exc:  # noqa: BLE001
        raise SourceError(f"MLflow run {run_id} not found in {uri}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="fd-export-src-") as tmp:
        for name in (CARD_FILE, "classifier_state.pt", "config.yaml"):
            try:
                client.download_artifacts(run_id, name, tmp)
            except Exception as exc:  # noqa: BLE001
                if name == "config.yaml":
                    continue
                raise SourceError(
                    f"MLflow run {run_id} in {uri} has no artifact {name!r} (a run that did not "
                    f"finish, or one trained before classifier_state.pt was logged): {exc}"
                ) from exc
        src = _read_folder_source(Path(tmp), description)
    src.run_id, src.tracking_uri = run_id, uri
    return src


def real_test_windows(config: dict[str, Any] | None, n_windows: int = 64) -> tuple[np.ndarray, str]:
    """Up to ``n_windows`` test-split windows of the run's dataset (evenly spread), and a description.

    Rebuilds the dataset from the run's resolved ``data`` config (the cache makes this fast); raises
    :class:`ExportError` when the config is absent or the recordings cannot be read.
    """
    if not config or "data" not in config:
        raise ExportError(
            "the source has no config.yaml with a data section to rebuild test windows from"
        )
    from fault_diag.data import DataConfig, build_dataset

    try:
        ds = build_dataset(DataConfig.from_any(config["data"]))
    except ValueError as exc:  # DataError and friends subclass ValueError
        raise ExportError(f"cannot rebuild the run's test windows: {exc}") from exc
    x, _ = ds.split("test")
    if len(x) == 0:
        raise ExportError("the run's dataset has no test windows")
    idx = np.unique(np.linspace(0, len(x) - 1, min(n_windows, len(x))).round().astype(int))
    return np.ascontiguousarray(x[idx], dtype=np.float32), (
        f"{len(idx)} of {len(x)} test windows of data setup {config['data'].get('setup')!r}"
    )


# ------------------------------------------------------------------------------- model files


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


# --------------------------------------------------------------------------------- loading


_PT2_ALLOWED = re.compile(
    r"^[^/]+/("
    r"data/weights/(weight_\d+|model_weights_config\.json)"
    r"|data/constants/(tensor_\w+|model_constants_config\.json)"
    r"|data/sample_inputs/model\.pt"
    r"|models/model\.json"
    r"|extra/[A-Za-z0-9_.-]+"
    r"|archive_format|archive_version|byteorder|version|\.data/version|\.data/serialization_id"
    r")$"
)


def check_pt2_archive(path: str | Path) -> None:
    """Refuse a ``.pt2`` whose loading would unpickle anything.

    ``torch.export.load`` unpickles weights/constants flagged ``use_pickle`` (tensor subclasses),
    custom/opaque objects, legacy ``.pt`` members, and retries ``sample_inputs`` with
    ``weights_only=False`` when the safe load fails. We accept only plain tensor payloads, JSON, and a
    ``sample_inputs`` member that loads with ``weights_only=True``.
    """
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{path}: not a .pt2 archive ({exc})") from exc
    with zf:
        names = zf.namelist()
        bad = [n for n in names if not n.endswith("/") and not _PT2_ALLOWED.match(n)]
        if bad:
            raise BundleError(
                f"{path}: unexpected member(s) {bad[:5]} (pickled objects or a legacy layout); "
                "refusing to load it"
            )
        for name in names:
            if name.endswith(("model_weights_config.json", "model_constants_config.json")):
                try:
                    config = json.loads(zf.read(name)).get("config", {})
                except (json.JSONDecodeError, AttributeError) as exc:
                    raise BundleError(f"{path}: member {name} is not valid JSON ({exc})") from exc
                pickled = [
                    k
                    for k, v in config.items()
                    if not isinstance(v, dict) or v.get("use_pickle") is not False
                ]
                if pickled:
                    raise BundleError(
                        f"{path}: {name} stores {pickled[:5]} as pickles; refusing to load it"
                    )
            elif name.endswith("data/sample_inputs/model.pt"):
                payload = zf.read(name)
                if payload:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", UserWarning)  # pickle-protocol notes
                            torch.load(io.BytesIO(payload), weights_only=True)
                    except Exception as exc:  # noqa: BLE001
                        raise BundleError(
                            f"{path}: sample_inputs would need a full unpickle ({type(exc).__name__}); "
                            "refusing to load it"
                        ) from exc


def read_pt2_card(path: str | Path) -> dict[str, Any] | None:
    """The card stored in a ``.pt2`` archive's extra files (read with zipfile, nothing executed)."""
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.endswith(f"/extra/{PT2_CARD_NAME}"):
                return json.loads(zf.read(name))
    return None


def read_onnx_card(model: Any) -> dict[str, Any] | None:
    """The card in an ONNX model's ``metadata_props`` (``model`` is an ``onnx.ModelProto``)."""
    for prop in model.metadata_props:
        if prop.key == ONNX_CARD_KEY:
            return json.loads(prop.value)
    return None


def _onnx_io_dims(model: Any) -> tuple[list[int | str], list[int | str]]:
    def dims(vi: Any) -> list[int | str]:
        return [
            d.dim_param if d.dim_param else int(d.dim_value) for d in vi.type.tensor_type.shape.dim
        ]

    return dims(model.graph.input[0]), dims(model.graph.output[0])


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Bundle:
    """A verified bundle: its card and one runtime (``onnx``: onnxruntime, or ``pt2``: torch)."""

    path: Path
    card: dict[str, Any]
    runtime: str
    _session: Any = field(default=None, repr=False)
    _module: Any = field(default=None, repr=False)

    @property
    def labels(self) -> list[str]:
        """Class names, in logit order."""
        return list(self.card["labels"])

    @property
    def window_length(self) -> int:
        """Samples per window (at :attr:`sampling_rate_hz`)."""
        return int(self.card["window_length"])

    @property
    def sampling_rate_hz(self) -> int:
        """The rate the model was trained at."""
        return int(self.card["sampling_rate_hz"])

    def logits(self, windows: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Logits ``(n, len(labels))`` for RAW windows ``(n, 1, window_length)`` (float32)."""
        x = np.ascontiguousarray(windows, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[2] != self.window_length:
            raise BundleError(
                f"input of shape {x.shape}: the bundle expects (batch, 1, {self.window_length})"
            )
        outs = []
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size]
            if self.runtime == "onnx":
                outs.append(self._session.run([OUTPUT_NAME], {INPUT_NAME: xb})[0])
            else:
                with torch.no_grad():
                    outs.append(self._module(torch.from_numpy(xb)).numpy())
        if not outs:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)

    def probabilities(self, windows: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Softmax of :meth:`logits`."""
        return _softmax(self.logits(windows, batch_size).astype(np.float64))


def load_bundle(path: str | Path, runtime: str = "onnx") -> Bundle:
    """Open a bundle after checking it (card fields, sha256, embedded cards, graph shapes).

    ``runtime``: ``onnx`` (onnxruntime, default) or ``pt2`` (``torch.export.load`` after
    :func:`check_pt2_archive`). Raises :class:`BundleError` with the reason otherwise.
    """
    if runtime not in ("onnx", "pt2"):
        raise BundleError(f"runtime={runtime!r} is invalid: expected 'onnx' or 'pt2'")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such bundle folder")
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise BundleError(
            f"{folder}: {CARD_FILE} is missing; not an fd-export bundle, or incomplete"
        )
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{card_path}: not valid JSON ({exc})") from exc
    validate_card(card, str(card_path))
    export = card.get("export")
    files = export.get("files") if isinstance(export, dict) else None
    if not isinstance(files, dict):
        raise BundleError(f"{card_path}: no export.files section with the model files' sha256")
    wanted = ONNX_FILE if runtime == "onnx" else PT2_FILE
    for name in MODEL_FILES:
        info = files.get(name)
        file_path = folder / name
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
            raise BundleError(f"{card_path}: export.files.{name}.sha256 is missing")
        if not file_path.is_file():
            if name == wanted:
                raise BundleError(f"{folder}: {name} is missing")
            continue
        actual = sha256_file(file_path)
        if actual != info["sha256"]:
            raise BundleError(
                f"{file_path}: sha256 {actual} does not match the card's {info['sha256']}; "
                "the file was modified or replaced"
            )
    expected = _model_fields(card)
    labels, length = card["labels"], card["window_length"]

    def compare(embedded: dict[str, Any] | None, name: str) -> None:
        if not isinstance(embedded, dict):
            raise BundleError(
                f"{folder / name}: carries no model card (a JSON object); cannot check it "
                f"against {CARD_FILE}"
            )
        diff = _diff_keys(_model_fields(embedded), expected)
        if diff:
            details = "; ".join(
                f"{k}: {CARD_FILE} has {_show(expected.get(k, '<absent>'))}, {name} has "
                f"{_show(embedded.get(k, '<absent>'))}"
                for k in diff[:3]
            )
            raise BundleError(f"{folder}: {CARD_FILE} and {name} disagree on {diff} ({details})")

    bundle = Bundle(folder, card, runtime)
    if runtime == "onnx" or (folder / ONNX_FILE).is_file():
        import onnx

        try:
            model = onnx.load_model(str(folder / ONNX_FILE), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf DecodeError etc.
            raise BundleError(f"{folder / ONNX_FILE}: not a readable ONNX model ({exc})") from exc
        try:
            onnx_card = read_onnx_card(model)
        except json.JSONDecodeError as exc:
            raise BundleError(
                f"{folder / ONNX_FILE}: its model_card metadata is not JSON ({exc})"
            ) from exc
        compare(onnx_card, ONNX_FILE)
        in_dims, out_dims = _onnx_io_dims(model)
        if len(in_dims) != 3 or in_dims[1:] != [1, length]:
            raise BundleError(
                f"{folder / ONNX_FILE}: input shape {in_dims} but the card says (batch, 1, {length})"
            )
        if len(out_dims) != 2 or out_dims[1] != len(labels):
            raise BundleError(
                f"{folder / ONNX_FILE}: output shape {out_dims} but the card has {len(labels)} labels "
                f"{labels}"
            )
        if runtime == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            # errors only: its graph optimiser's notes (e.g. "can't constant fold CastLike") are
            # for developers, and fd-predict's stderr is for the user's errors
            opts.log_severity_level = 3
            opts.intra_op_num_threads = max(1, torch.get_num_threads())
            opts.inter_op_num_threads = 1
            try:
                bundle._session = ort.InferenceSession(
                    model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
                raise BundleError(
                    f"{folder / ONNX_FILE}: onnxruntime cannot load it ({exc})"
                ) from exc
    if runtime == "pt2" or (folder / PT2_FILE).is_file():
        check_pt2_archive(folder / PT2_FILE)
        try:
            pt2_card = read_pt2_card(folder / PT2_FILE)
        except json.JSONDecodeError as exc:
            raise BundleError(f"{folder / PT2_FILE}: its model card is not JSON ({exc})") from exc
        compare(pt2_card, PT2_FILE)
        if runtime == "pt2":
            try:
                ep = torch.export.load(str(folder / PT2_FILE))
            except Exception as exc:  # noqa: BLE001
                raise BundleError(f"{folder / PT2_FILE}: cannot load the program ({exc})") from exc
            bundle._module = ep.module()
    # A forward pass on a dummy window: the graph really maps the card's window to its labels.
    try:
        out = bundle.logits(
            np.zeros((1, 1, length), np.float32) + np.linspace(-1, 1, length, dtype=np.float32)
        )
    except BundleError:
        raise
    except Exception as exc:  # noqa: BLE001 - a graph that cannot run the card's window
        raise BundleError(
            f"{folder}: the {runtime} model fails on a (1, 1, {length}) window ({exc})"
        ) from exc
    if out.shape != (1, len(labels)):
        raise BundleError(
            f"{folder}: the {runtime} model outputs {out.shape[1]} classes but the card has "
            f"{len(labels)} labels {labels}"
        )
    return bundle


# ---------------------------------------------------------------------------------- parity


def parity_tolerance(ref: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-logit tolerance of the parity check: ``rtol*|ref| + atol*s*c`` (shape of ``ref``).

    Float32 rounding differs between runtimes (summation order in convolutions and reductions), and
    what it does to a logit is proportional to the size of the activations behind it, not to the
    logit itself: a logit near zero in a window whose other logits are large carries the rounding
    of the large ones. Hence ``s`` = the window's largest ``|logit|`` (at least 1). The per-window
    standardisation divides by the window's std, so rounding in the raw window (relative to its
    values, i.e. to ``|mean| + std``) grows by ``c = 1 + |mean|/std``: a window with a large DC
    offset is ill-conditioned in float32 in any runtime. ``c`` is 1 for a constant window (the
    standardised window is exactly zero, or the eps decides) and at most
    :data:`PARITY_MAX_INPUT_FACTOR`.

    A *quiet* window is not loosened: amplitude alone changes nothing in float32 (relative
    rounding), so a correct graph agrees on quiet windows as on loud ones, and a graph that treats
    them differently (e.g. one that lost the normalisation's eps) still fails.
    """
    ref64 = np.asarray(ref, dtype=np.float64)
    if ref64.size == 0:
        return np.zeros_like(ref64)
    finite = np.where(np.isfinite(ref64), np.abs(ref64), 0.0)
    scale = np.maximum(1.0, finite.max(axis=1, keepdims=True))
    x64 = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mean, std = x64.mean(axis=1), x64.std(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(std > 0, 1.0 + np.abs(mean) / std, 1.0)
    cond = np.minimum(cond, PARITY_MAX_INPUT_FACTOR)[:, None]
    return PARITY_RTOL * finite + PARITY_ATOL * scale * cond


def _compare(
    name: str, runtime: str, ref: np.ndarray, got: np.ndarray, x: np.ndarray
) -> dict[str, Any]:
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    tol = parity_tolerance(ref64, x)
    both_nan = np.isnan(ref64) & np.isnan(got64)  # the model itself gives NaN: both agree
    diff = np.where(both_nan, 0.0, np.abs(got64 - ref64))
    diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only: a mismatch
    denom = np.maximum(np.abs(ref64), 1e-12)
    agree = got.argmax(1) == ref.argmax(1)
    # A disagreeing argmax is tolerated only where torch's top two logits tie within the tolerance.
    order = np.argsort(ref64, axis=1)
    rows = np.arange(ref64.shape[0])
    if ref64.shape[1] >= 2:
        top1, top2 = order[:, -1], order[:, -2]
        gap = ref64[rows, top1] - ref64[rows, top2]
        tie = gap <= tol[rows, top1] + tol[rows, top2]
    else:
        tie = np.ones(ref64.shape[0], dtype=bool)
    ratio = diff / tol
    within = bool((diff <= tol).all())
    out: dict[str, Any] = {
        "inputs": name,
        "runtime": runtime,
        "n_windows": int(ref.shape[0]),
        # None where a value is not finite (NaN on one side only): the report stays strict JSON
        "max_abs_diff": _finite(diff.max()) if diff.size else 0.0,
        "max_rel_diff": _finite((diff / denom).max()) if diff.size else 0.0,
        "max_diff_over_tolerance": _finite(ratio.max()) if diff.size else 0.0,
        "allclose": within,  # every logit within parity_tolerance
        "argmax_agreement": float(agree.mean()) if agree.size else 1.0,
        "argmax_disagreements_beyond_ties": int((~agree & ~tie).sum()),
        "passed": within and int((~agree & ~tie).sum()) == 0,
    }
    if diff.size:
        i, j = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        out["worst"] = {
            "window": int(i),
            "logit": int(j),
            "torch": _finite(ref64[i, j]),
            "runtime": _finite(got64[i, j]),
            "abs_diff": _finite(diff[i, j]),
            "tolerance": _finite(tol[i, j]),
            "window_std": _finite(np.asarray(x[i], dtype=np.float64).std()),
        }
    return out


def _finite(value: Any) -> float | None:
    v = float(value)
    return v if np.isfinite(v) else None


def _describe_check(c: dict[str, Any]) -> str:
    """One failed parity check, for the error message."""
    if c["max_abs_diff"] is None:
        diff = "NaN/Inf where torch is finite (or the reverse)"
    else:
        diff = (
            f"max abs diff {c['max_abs_diff']:.3g} "
            f"({c['max_diff_over_tolerance']:.3g}x the tolerance)"
        )
    return f"{c['runtime']} on {c['inputs']}: {diff}, argmax agreement {c['argmax_agreement']:.3f}"


def _edge_windows(length: int, seed: int) -> np.ndarray:
    """An all-zero window (a dead channel, padding) and a quiet one (std 1e-6, where the
    normalisation's eps of 1e-8 matters at 1 %): they catch a graph whose normalisation differs
    from the eager one, which raw-signal-like windows (std 0.3) cannot show."""
    rng = np.random.default_rng(seed + 1)
    quiet = PARITY_QUIET_STD * rng.standard_normal(length)
    return np.stack([np.zeros(length), quiet])[:, None, :].astype(np.float32)


def parity_report(
    classifier: nn.Module,
    bundle_dir: Path,
    real_windows: np.ndarray | None,
    real_source: str | None,
    seed: int = 0,
    real_skipped_reason: str | None = None,
) -> dict[str, Any]:
    """Compare onnxruntime and the .pt2 program with eager torch on random and real windows."""
    card_length = int(json.loads((bundle_dir / CARD_FILE).read_text())["window_length"])
    runtimes = {rt: load_bundle(bundle_dir, rt) for rt in ("onnx", "pt2")}
    rng = np.random.default_rng(seed)
    inputs: list[tuple[str, np.ndarray]] = []
    for b in PARITY_RANDOM_BATCHES:
        # raw-signal-like: an offset and a scale far from (0, 1), so the in-graph normalisation counts
        x = (0.02 + 0.3 * rng.standard_normal((b, 1, card_length))).astype(np.float32)
        inputs.append((f"random batch {b}", x))
    inputs.append(("edge windows: all zeros, quiet (std 1e-6)", _edge_windows(card_length, seed)))
    if real_windows is not None:
        inputs.append(
            (f"real windows: {real_source}", np.ascontiguousarray(real_windows, np.float32))
        )
    checks = []
    classifier.eval()
    for name, x in inputs:
        with torch.no_grad():
            ref = classifier(torch.from_numpy(x)).numpy()
        for rt, bundle in runtimes.items():
            label = "onnxruntime" if rt == "onnx" else "torch.export (.pt2)"
            checks.append(_compare(name, label, ref, bundle.logits(x), x))
    return {
        "reference": "eager torch (the rebuilt classifier, eval mode, float32, CPU)",
        "rtol": PARITY_RTOL,
        "atol": PARITY_ATOL,
        "tolerance": PARITY_TOLERANCE_RULE,
        "criterion": "every logit within the tolerance, and equal argmax except where torch's top "
        "two logits tie within it",
        "real_windows": {
            "status": "used",
            "source": real_source,
            "n_windows": int(len(real_windows)),
        }
        if real_windows is not None
        else {"status": "skipped", "reason": real_skipped_reason or "no real windows given"},
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
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
) -> ExportResult:
    """Write the bundle for ``classifier`` (normalisation included) and its ``card`` to ``out_dir``.

    ``real_windows`` (RAW, ``(n, 1, window_length)``) join the parity check; ``source`` describes
    where the model came from (stored in ``card["export"]["source"]``). ``before_commit(card)`` is
    called after the parity check, before the bundle is moved into place (e.g. to register the
    model); it may return a dict stored as ``card["export"]["registered_model"]``. Raises
    :class:`ExportError` / :class:`ParityError`; on any failure nothing is left at ``out_dir``.
    """
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
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # The owner (pid@host) in the name lets a later export tell a killed export's leftovers from
    # a concurrent one's folder.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{_owner()}-", dir=out_dir.parent))
    try:
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
        embedded = {**_model_fields(card), "export": export_info}
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
            name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
            for name in MODEL_FILES
        }
        final = {**_model_fields(card), "export": export_info}
        _write_json(tmp / CARD_FILE, final)
        parity = parity_report(
            classifier,
            tmp,
            real_windows,
            real_windows_source,
            real_skipped_reason=real_windows_skipped,
        )
        _write_json(tmp / PARITY_FILE, parity)
        if not parity["passed"]:
            worst = [c for c in parity["checks"] if not c["passed"]]
            raise ParityError(
                f"parity check failed (tolerance rtol*|logit| + atol*s*c, rtol {PARITY_RTOL}, "
                f"atol {PARITY_ATOL}; docs/export.md): "
                + "; ".join(_describe_check(c) for c in worst[:3])
            )
        registered = before_commit(final) if before_commit is not None else None
        if registered:
            final["export"]["registered_model"] = registered
            _write_json(tmp / CARD_FILE, final)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a bundle is meant to be shared
        _commit(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out_dir, final, parity, registered)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def _owner() -> str:
    """``<pid>@<host>``: who writes a temporary folder (hosts may share a network folder)."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
    return f"{os.getpid()}@{host}"


_TEMP_NAME = re.compile(
    r"^\.(?P<target>.+)\.(?P<kind>tmp|old)-(?:(?P<pid>\d+)@(?P<host>[A-Za-z0-9._]+))?"
)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process, alive
        return True
    return True


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Remove what killed exports to ``out_dir`` left next to it; return what was removed.

    A SIGKILL (or a power cut) ends an export without cleanup, leaving ``.<name>.tmp-<pid>@<host>-*``
    (the bundle being built) or, between the two renames of ``--force``, ``.<name>.old-<pid>@<host>``
    (the previous bundle, moved aside) with ``<name>`` itself gone. A folder of this host whose pid
    no longer runs is stale: a temporary one is deleted, a moved-aside bundle is put back in place
    (the interrupted replacement never happened) or deleted when ``<name>`` exists again. Folders of
    other hosts are left alone (their pids mean nothing here); names without an owner (written
    before owners were recorded) are stale once untouched for :data:`STALE_LEGACY_TEMP_S`.
    """
    removed: list[Path] = []
    host = _owner().split("@", 1)[1]
    try:
        candidates = sorted(out_dir.parent.glob(f".{glob.escape(out_dir.name)}.*-*"))
    except OSError:
        return removed
    for path in candidates:
        m = _TEMP_NAME.match(path.name)
        if m is None or m["target"] != out_dir.name or not path.is_dir() or path.is_symlink():
            continue
        if m["pid"] is None:
            try:
                stale = time.time() - path.stat().st_mtime > STALE_LEGACY_TEMP_S
            except OSError:
                continue
        else:
            stale = m["host"] == host and not _alive(int(m["pid"]))
        if not stale:
            continue
        if m["kind"] == "old" and not out_dir.exists():
            try:
                os.replace(path, out_dir)
                log.warning(
                    "restored %s from %s (an export killed while replacing it)", out_dir, path
                )
            except OSError as exc:
                log.warning("could not restore %s from %s: %s", out_dir, path, exc)
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
            log.info("removed %s, left by a killed export", path)
    return removed


def _commit(tmp: Path, out_dir: Path) -> None:
    """Move the finished bundle into place (replacing an old one only after the new one is whole)."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{_owner()}")
        os.replace(out_dir, old)
        try:
            os.replace(tmp, out_dir)
        except BaseException:
            os.replace(old, out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


# ------------------------------------------------------------------------------ registration


def register_run_model(
    run_id: str, name: str, alias: str | None, tracking_uri: str
) -> dict[str, Any]:
    """Register the MLflow model logged by run ``run_id`` as ``name`` (new version); set ``alias``."""
    from fault_diag.tracking import get_client

    client = get_client(tracking_uri)
    run = client.get_run(run_id)
    logged = [
        m
        for m in client.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
    ]
    if not logged:
        raise ExportError(
            f"run {run_id} has no logged MLflow model (trained with tracking.log_model=false?); "
            "nothing to register"
        )
    model = logged[0]
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - RESOURCE_DOES_NOT_EXIST
        client.create_registered_model(name, description="fault-diag classifier (fd-export)")
    from fault_diag.tracking import tracking_uri_scope

    # The registry resolves "models:/m-..." sources through the global tracking URI: point it here.
    with tracking_uri_scope(tracking_uri):
        mv = client.create_model_version(
            name, source=model.model_uri, run_id=run_id, model_id=model.model_id
        )
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    return {
        "name": name,
        "version": str(mv.version),
        "alias": alias,
        "uri": f"models:/{name}@{alias}" if alias else f"models:/{name}/{mv.version}",
    }


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
) -> ExportResult:
    """``fd-export``: resolve ``source`` (see :func:`resolve_source`), export, check parity, register.

    ``real_windows``: ``require`` (fail when the run's test windows cannot be rebuilt), ``auto``
    (use them when possible, else record why not) or ``skip``.
    """
    if real_windows not in ("require", "auto", "skip"):
        raise ExportError(f"real_windows={real_windows!r}: expected require, auto or skip")
    if alias and not register:
        raise ExportError("an alias needs a registered model name (--register NAME)")
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
    )
    return result


__all__ = [
    "Bundle",
    "BundleError",
    "ExportError",
    "ExportResult",
    "ExportSource",
    "ParityError",
    "SourceError",
    "card_for",
    "check_pt2_archive",
    "classifier_from_state",
    "export_bundle",
    "export_from_source",
    "load_bundle",
    "load_state_dict_file",
    "parity_report",
    "read_onnx_card",
    "parity_tolerance",
    "read_pt2_card",
    "real_test_windows",
    "remove_stale_temporaries",
    "register_run_model",
    "resolve_source",
    "sha256_file",
    "validate_card",
]
