"""The model card: its schema, the one function that writes its fields, and bundle layout names.

A card is the JSON object that tells a user of a trained classifier how to feed it and how far to
trust it (docs/design-notes.md section 6). ``fd-train`` writes it (:func:`model_card`, with the
training envelope, metrics and summary); ``fd-export`` embeds it in both model files and adds an
``export`` section; ``fd-predict`` reads it. Every card's common fields come from :func:`card_fields`.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # run time: no import of the training or data packages from here
    from fault_diag.data import WindowedDataset
    from fault_diag.training.loop import TrainResult

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


INPUT_LAYOUT = "(batch, 1, window_length) float32, raw signal in the recording's units (g)"
NORMALISATION = "per-window standardisation (zero mean, unit variance) inside the model"


def card_fields(
    model_spec: dict[str, Any],
    labels: list[str],
    *,
    sampling_rate_hz: int,
    window_length: int,
    channel: str = "DE",
) -> dict[str, Any]:
    """The fields every card starts with (:data:`REQUIRED_CARD_FIELDS`, in this order).

    The one place they are written: :func:`model_card` (``fd-train``) and :func:`card_for` (a
    classifier built in Python) both start from it.
    """
    return {
        "model": copy.deepcopy(model_spec),
        "labels": list(labels),
        "sampling_rate_hz": int(sampling_rate_hz),
        "window_length": int(window_length),
        "channel": channel,
        "input_layout": INPUT_LAYOUT,
        "normalisation": NORMALISATION,
    }


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
        **card_fields(
            model_spec,
            labels,
            sampling_rate_hz=sampling_rate_hz,
            window_length=window_length,
            channel=channel,
        ),
        **extra,
    }
    return validate_card(json.loads(json.dumps(card, default=str)))


def card_summary(result: TrainResult) -> dict[str, Any]:
    """Headline numbers of the card: each metric at the training condition and on clean windows,
    and the mean balanced accuracy over the grid, plain and with AdaBN."""
    import numpy as np

    from fault_diag.metric_names import CONDITION_METRICS

    ev = result.evaluation
    out: dict[str, Any] = {}
    for variant in (False, True):
        suffix = "/adabn" if variant else ""
        for name in ("train", "clean"):
            c = ev.get(name + suffix)
            if c is not None:
                out[name + suffix] = {k: c.metrics[k] for k in CONDITION_METRICS}
        grid = [
            c.metrics["bal_acc"]
            for c in ev.conditions
            if c.adabn == variant and c.snr_db is not None and not c.name.startswith("train")
        ]
        if grid:
            out["grid_mean_bal_acc" + suffix] = float(np.mean(grid))
    return out


def model_card(dataset: WindowedDataset, result: TrainResult, run_id: str | None) -> dict[str, Any]:
    """What a user of the trained classifier needs to feed it and to judge it (``fd-train``'s card;
    docs/design-notes.md section 6). The sampling rate is the dataset's (the task rate)."""
    import platform

    import numpy as np
    import torch

    from fault_diag.lifecycle import git_commit
    from fault_diag.models import get_model_spec

    return {
        **card_fields(
            get_model_spec(result.model.network),
            list(dataset.class_names),
            sampling_rate_hz=int(dataset.fs_hz),
            window_length=int(dataset.window_length),
            channel=dataset.channel,
        ),
        "split_protocol": dataset.protocol,
        "noise_protocol": {k: v for k, v in result.protocol.items() if k != "split"},
        "training_snr_db": result.protocol["train_snr_db"],
        "envelope": training_envelope(result, int(dataset.fs_hz)),
        "band_hz": dataset.protocol.get("band_hz"),
        "healthy_class": result.evaluation.healthy_class,
        "model_selection": result.protocol.get("model_selection"),
        "metrics": {**result.test_metrics, "best_val_acc": result.best_val_acc},
        "summary": card_summary(result),
        "best_epoch": result.best_epoch,
        "mlflow_run_id": run_id,
        "git_commit": git_commit(),
        "versions": {
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "numpy": np.__version__,
        },
    }


def training_envelope(result: TrainResult, sampling_rate_hz: int) -> dict[str, Any]:
    """The conditions the model was trained on, for ``fd-predict``'s warnings: protocol, the
    training SNR range in dB (None when trained clean), kinds, clean share, rate and band."""
    p = result.protocol
    dist = p.get("train_distribution")
    if dist is not None:
        snr_range = list(dist["snr_db_range"])
        kinds, clean_fraction = list(dist["kinds"]), float(dist["clean_fraction"])
    elif p["train_snr_db"] is not None:
        snr_range = [p["train_snr_db"], p["train_snr_db"]]
        kinds, clean_fraction = [p["train_noise"]], 0.0
    else:
        snr_range, kinds, clean_fraction = None, [], 1.0
    return {
        "protocol": p["noise_protocol"],
        "train_snr_db_range": snr_range,
        "train_kinds": kinds,
        "clean_fraction": clean_fraction,
        "sampling_rate_hz": int(sampling_rate_hz),
        "band_hz": p.get("split", {}).get("band_hz") if isinstance(p.get("split"), dict) else None,
        "noise_band_hz": p.get("noise_band_hz"),
    }


def model_fields(card: dict[str, Any]) -> dict[str, Any]:
    """The card without its ``export`` section: what the model files must carry identically."""
    return {k: v for k, v in card.items() if k != "export"}
