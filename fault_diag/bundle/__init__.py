"""Exported model bundles, one module per job (docs/design-notes.md section 6, docs/export.md).

A bundle is a folder::

    model.pt2            torch.export program, dynamic batch dimension; the card in its extra files
    model.onnx           ONNX (dynamo exporter, one file, no .onnx.data); the card in metadata_props
    model_card.json      every card field + "export" (versions, opset, sha256 of each model file, ...)
    parity_report.json   onnxruntime and the .pt2 program against eager torch (:mod:`.parity`)

Both graphs map a RAW window ``(batch, 1, window_length)`` float32 (the recording's units) to class
logits ``(batch, len(labels))``: per-window standardisation is the first op of the graph
(:class:`fault_diag.preprocess.Classifier`), so a user only cuts windows at the card's sampling rate.

* :mod:`.card`: the card schema, :func:`~.card.model_card` (``fd-train``) and
  :func:`~.card.card_for`, both built on :func:`~.card.card_fields`; file names; error types.
* :mod:`.source`: what ``fd-export`` was pointed at (run folder, MLflow run, registered model).
* :mod:`.write`: the exporter (``.pt2``, ONNX, parity, atomic folder) and ``fd-export``'s job.
* :mod:`.parity`: the parity check and its tolerance.
* :mod:`.load`: the checked loader ``fd-predict`` uses; it imports none of the export machinery.
* :mod:`.register`: MLflow model registration.

This package's ``__init__`` imports nothing, so ``import fault_diag.bundle.load`` stays light;
:mod:`fault_diag.export` re-exports the public names in one place.
"""
