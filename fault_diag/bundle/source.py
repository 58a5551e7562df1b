"""Find what ``fd-export`` was pointed at: a run folder, an MLflow run id or a registered model,
resolved to the run's card, weights and resolved config (:func:`resolve_source`), and the run's
real test windows for the parity check (:func:`real_test_windows`).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from fault_diag.bundle.card import (
    CARD_FILE,
    BundleError,
    ExportError,
    SourceError,
    validate_card,
)
from fault_diag.bundle.load import classifier_from_state, load_state_dict_file

log = logging.getLogger(__name__)

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
