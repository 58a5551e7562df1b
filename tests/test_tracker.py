"""The tracker interface (fault_diag.tracker): a new backend is one module plus one YAML file.

What a user relies on: ``tracking.backend`` names a built-in backend or any importable
``module:Class``; a wrong name fails at compose time with the names that exist; a backend written
outside the package receives the whole run (params, every epoch, the test metrics, accuracy against
SNR as curves, the artifacts, the model named after its run) and closes it, through the same calls
the MLflow backend gets.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from fault_diag.tracker import (
    NoneBackend,
    TrackerConfigError,
    default_run_name,
    get_backend,
)

BACKEND_MODULE = '''
"""A JSON-lines tracker: every call one line in the file named by tracking.tracking_uri."""
import json
from pathlib import Path


class JsonlTracker:
    def __init__(self, path, run_id):
        self.path, self.run_id, self.resumed = Path(path), run_id, False

    def _w(self, **event):
        with self.path.open("a") as fh:
            fh.write(json.dumps(event, default=str) + "\\n")

    def logged_epochs(self):
        return set()

    def log_epoch(self, epoch, metrics):
        self._w(event="epoch", epoch=epoch, metrics=metrics)

    def log_metrics(self, metrics):
        self._w(event="metrics", metrics=metrics)

    def log_curve(self, name, points):
        self._w(event="curve", name=name, points=points)

    def set_tags(self, tags):
        self._w(event="tags", tags=tags)

    def log_dataset(self, name, digest, source, profile):
        self._w(event="dataset", name=name, digest=digest, profile=profile)

    def log_file(self, path, artifact_path=None):
        self._w(event="file", name=Path(path).name)

    def log_model(self, model, input_example, card, name):
        self._w(event="model", name=name, labels=card["labels"])

    def finish(self):
        self._w(event="end", status="FINISHED")

    def fail(self, status="FAILED"):
        self._w(event="end", status=status)

    def describe(self):
        return f"jsonl run {self.run_id} in {self.path}"


class JsonlBackend:
    def check(self, tracking):
        Path(tracking.tracking_uri).parent.mkdir(parents=True, exist_ok=True)

    def location(self, tracking):
        return tracking.tracking_uri

    def start_run(self, tracking, *, run_name, params, tags, resume_run_id, sweep_dir, on_open):
        run = JsonlTracker(tracking.tracking_uri, run_name)
        run._w(event="start", run_name=run_name, params=params, tags=tags)
        if on_open is not None:
            on_open(run.run_id)
        return run

    def start_sweep(self, tracking, *, sweep_id, sweep_dir, overrides):
        pass

    def finish_sweep(self, tracking, sweep_dir, summary=None):
        pass
'''


def test_unknown_backends_are_refused_with_what_exists() -> None:
    with pytest.raises(TrackerConfigError, match=r"'wandb' is not one of \['mlflow', 'none'\]"):
        get_backend("wandb")
    with pytest.raises(TrackerConfigError, match="cannot import 'no_such_module'"):
        get_backend("no_such_module:Backend")
    with pytest.raises(TrackerConfigError, match="has no 'Nope'"):
        get_backend("fault_diag.tracker:Nope")
    with pytest.raises(TrackerConfigError, match="lacks check, location, start_run"):
        get_backend("fault_diag.tracker:NoneTracker")  # a tracker, not a backend
    assert isinstance(get_backend("none"), NoneBackend)


def test_a_typo_in_the_backend_fails_at_compose_time(tmp_path: Path) -> None:
    from fault_diag.config import ConfigError, validate_config
    from fault_diag.training.sweep import plan_sweep

    with pytest.raises(ConfigError, match="tracking.backend='mlfow'"):
        plan_sweep(["tracking.backend=mlfow"])
    cfg = plan_sweep(["tracking=none"]).configs[0]
    cfg.tracking.backend = "none"
    validate_config(cfg)  # typed configs are validated too


@pytest.mark.integration
def test_a_backend_from_one_module_and_one_yaml_file_receives_the_whole_run(
    cwru_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hydra import compose, initialize_config_dir

    from fault_diag.config import register_configs
    from fault_diag.paths import config_dir
    from fault_diag.training.run import run_job

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "fd_jsonl_tracker.py").write_text(BACKEND_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    log_file = tmp_path / "runs.jsonl"
    (tmp_path / "conf" / "tracking").mkdir(parents=True)
    (tmp_path / "conf" / "tracking" / "jsonl.yaml").write_text(
        textwrap.dedent(
            f"""\
            defaults:
              - base_tracking
              - _self_
            backend: fd_jsonl_tracker:JsonlBackend
            tracking_uri: {log_file}
            log_model: true
            """
        )
    )
    monkeypatch.setenv("FAULT_DIAG_CACHE_DIR", str(tmp_path / "cache"))
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                "tracking=jsonl",
                "model=wdcnn",
                "data.loads=[0]",
                "data.train_hop=2048",
                "trainer.epochs=2",
                "trainer.progress=false",
                "trainer.num_threads=1",
                "noise.test_kinds=[gaussian,pink]",
                "noise.test_snr_grid_db=[-4,0,4]",
                "noise.test_draws=1",
            ],
        )
    cfg.paths.output_dir = str(tmp_path / "run")
    run_job(cfg)

    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and events[-1]["status"] == "FINISHED"
    start = events[0]
    assert start["run_name"] == "wdcnn--10..10dB-mixed-s0"
    assert start["params"]["model.name"] == "wdcnn" and start["tags"]["model"] == "wdcnn"
    assert not any(k.startswith("paths.") for k in start["params"])  # no machine paths
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]
    (final,) = [e["metrics"] for e in events if e["event"] == "metrics"]
    assert {"test/acc", "test/acc/clean", "test/acc/gaussian/-4dB", "best_epoch"} <= set(final)
    curves = {e["name"]: e["points"] for e in events if e["event"] == "curve"}
    assert [x for x, _ in curves["curve/bal_acc/gaussian"]] == [-4.0, 0.0, 4.0]
    assert "curve/bal_acc/pink" in curves
    assert "curve/bal_acc_adabn/gaussian" in curves  # one dashboard section per variant
    files = {e["name"] for e in events if e["event"] == "file"}
    assert {"model_card.json", "classifier_state.pt", "confusion_matrix.png"} <= files
    assert "accuracy_vs_snr.png" in files
    (data,) = [e for e in events if e["event"] == "dataset"]
    assert data["name"] == "cwru10" and len(data["digest"]) == 64
    assert data["profile"]["train_windows"] > 0 and len(data["profile"]["classes"]) == 10
    (model,) = [e for e in events if e["event"] == "model"]
    assert model["name"] == "wdcnn-mixed-s0" and len(model["labels"]) == 10
    # the run folder records the run, as for MLflow, so a rerun continues it
    record = json.loads((tmp_path / "run" / "mlflow_run.json").read_text())
    assert record["run_id"] == "wdcnn--10..10dB-mixed-s0"
    assert record["tracking_uri"] == str(log_file)


def test_default_run_names_say_model_condition_protocol_and_seed() -> None:
    from fault_diag.training.sweep import plan_sweep

    (matched,) = plan_sweep(
        ["model=drsn_cw", "noise=gaussian", "noise.snr_db=-4", "trainer.seed=3"]
    ).configs
    (mixed,) = plan_sweep(["model=drsn_cw", "noise=mixed", "trainer.seed=3"]).configs
    assert default_run_name(matched) == "drsn_cw-gaussian@-4dB-s3"
    assert default_run_name(mixed) == "drsn_cw--10..10dB-mixed-s3"
