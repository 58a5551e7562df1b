"""Open an exported bundle safely (the only part of :mod:`fault_diag.bundle` ``fd-predict`` imports).

Nothing in a bundle is unpickled: ONNX is protobuf, and a ``.pt2`` is checked member by member
(:func:`check_pt2_archive`) before ``torch.export.load``. :func:`load_bundle` checks the sha256 of
every model file against the card, the card embedded in each model file against
``model_card.json``, and the graphs' input/output shapes against the card, so a tampered bundle is
refused with :class:`BundleError`. :func:`classifier_from_state` rebuilds the eager classifier from a
card and a ``weights_only`` state dict (used by the exporter and by ``fd-predict --adapt-bn``).
"""

from __future__ import annotations

import io
import json
import logging
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fault_diag.bundle.card import (
    CARD_FILE,
    INPUT_NAME,
    MODEL_FILES,
    ONNX_CARD_KEY,
    ONNX_FILE,
    OUTPUT_NAME,
    PT2_CARD_NAME,
    PT2_FILE,
    BundleError,
    ExportError,
    SourceError,
    model_fields,
    validate_card,
)
from fault_diag.io import file_sha256

log = logging.getLogger(__name__)

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


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _diff_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def _show(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        return softmax(self.logits(windows, batch_size).astype(np.float64))


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
        actual = file_sha256(file_path)
        if actual != info["sha256"]:
            raise BundleError(
                f"{file_path}: sha256 {actual} does not match the card's {info['sha256']}; "
                "the file was modified or replaced"
            )
    expected = model_fields(card)
    labels, length = card["labels"], card["window_length"]

    def compare(embedded: dict[str, Any] | None, name: str) -> None:
        if not isinstance(embedded, dict):
            raise BundleError(
                f"{folder / name}: carries no model card (a JSON object); cannot check it "
                f"against {CARD_FILE}"
            )
        diff = _diff_keys(model_fields(embedded), expected)
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
