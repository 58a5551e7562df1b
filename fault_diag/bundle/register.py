"""Registration of a run's logged MLflow model (``fd-export --register NAME [--alias A]``)."""

from __future__ import annotations

import logging
from typing import Any

from fault_diag.bundle.card import ExportError

log = logging.getLogger(__name__)

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
