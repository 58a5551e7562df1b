"""Façade over :mod:`fault_diag.bundle` (card, source, write, parity, load, register).

The bundle code lives in :mod:`fault_diag.bundle`, one module per job; this module re-exports its
public names so that ``from fault_diag.export import export_bundle, load_bundle, ...`` keeps working
in scripts, notebooks and tests. Importing it imports the writer (torch.export, ONNX): code that only
loads a bundle imports :mod:`fault_diag.bundle.load` instead, as ``fd-predict`` does.
"""

from __future__ import annotations

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
    REQUIRED_CARD_FIELDS,
    BundleError,
    ExportError,
    ParityError,
    SourceError,
    card_fields,
    card_for,
    model_card,
    training_envelope,
    validate_card,
)
from fault_diag.bundle.load import (
    Bundle,
    check_pt2_archive,
    classifier_from_state,
    load_bundle,
    load_state_dict_file,
    read_onnx_card,
    read_pt2_card,
    softmax,
)
from fault_diag.bundle.parity import (
    PARITY_ATOL,
    PARITY_MAX_INPUT_FACTOR,
    PARITY_RTOL,
    PARITY_TOLERANCE_RULE,
    parity_report,
    parity_tolerance,
)
from fault_diag.bundle.register import register_run_model
from fault_diag.bundle.source import ExportSource, real_test_windows, resolve_source
from fault_diag.bundle.write import ExportResult, export_bundle, export_from_source
from fault_diag.io import STALE_LEGACY_TEMP_S, remove_stale_temporaries
from fault_diag.io import file_sha256 as sha256_file

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "CARD_FILE",
    "INPUT_NAME",
    "MODEL_FILES",
    "ONNX_CARD_KEY",
    "ONNX_FILE",
    "OUTPUT_NAME",
    "PARITY_ATOL",
    "PARITY_FILE",
    "PARITY_MAX_INPUT_FACTOR",
    "PARITY_RTOL",
    "PARITY_TOLERANCE_RULE",
    "PT2_CARD_NAME",
    "PT2_FILE",
    "REQUIRED_CARD_FIELDS",
    "STALE_LEGACY_TEMP_S",
    "Bundle",
    "BundleError",
    "ExportError",
    "ExportResult",
    "ExportSource",
    "ParityError",
    "SourceError",
    "card_fields",
    "card_for",
    "check_pt2_archive",
    "classifier_from_state",
    "export_bundle",
    "export_from_source",
    "load_bundle",
    "load_state_dict_file",
    "model_card",
    "parity_report",
    "parity_tolerance",
    "read_onnx_card",
    "read_pt2_card",
    "real_test_windows",
    "register_run_model",
    "remove_stale_temporaries",
    "resolve_source",
    "sha256_file",
    "softmax",
    "training_envelope",
    "validate_card",
]
