"""Composition of every config option; typos and wrong types fail at compose time naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from fault_diag.config import ConfigError, register_configs, validate_config

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["data", "noise", "model", "trainer", "tracking", "paths", "experiment", "sweep"]

register_configs()


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in _options(g)], ids=lambda v: str(v)
)
def test_every_option_of_every_group_composes_and_validates(group: str, option: str) -> None:
    cfg = _compose([f"{group}={option}"])
    # Everything but the Hydra-runtime paths resolves, and the values pass validation.
    plain = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(plain, dict) and {"data", "noise", "model", "trainer"} <= plain.keys()
    OmegaConf.to_container(cfg.data, resolve=True)
    OmegaConf.to_container(cfg.trainer, resolve=True)
    validate_config(cfg)


def test_each_group_has_options() -> None:
    for group in GROUPS:
        assert _options(group), f"conf/{group}/ has no options"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.epoch=3", "epoch"),  # typo of epochs
        ("trainer.epochs=ten", "epochs"),  # wrong type
        ("data.window_lenght=1024", "window_lenght"),
        ("noise.snr_db=loud", "snr_db"),
        ("model.nonsense=1", "nonsense"),
        ("tracking.backnd=none", "backnd"),
    ],
)
def test_typo_or_wrong_type_fails_at_compose_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        _compose([override])
    text = str(info.value) + str(info.value.__cause__)
    assert key in text


def test_unknown_group_option_lists_the_choices() -> None:
    with pytest.raises(ConfigCompositionException) as info:
        _compose(["model=drsn_xx"])
    text = str(info.value)
    assert "drsn_xx" in text and "drsn_cw" in text


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("model.name=drsn_xx", "drsn_cw"),
        ("noise.kind=white", "pink"),
        ("trainer.optimizer=rmsprop", "sgd"),
        ("trainer.device=tpu", "cuda"),
        ("trainer.epochs=0", "epochs"),
        ("trainer.compile_mode=fastest", "reduce-overhead"),
    ],
)
def test_bad_values_fail_validation_listing_the_choices(override: str, needle: str) -> None:
    cfg = _compose([override])
    with pytest.raises(ValueError) as info:
        validate_config(cfg)
    assert needle in str(info.value)
    assert isinstance(info.value, (ConfigError, ValueError))


def test_git_commit_is_asked_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sweep workers are reused across jobs: the commit recorded must be the one whose code the
    process imported, not whatever HEAD is when a later job starts."""
    import subprocess

    from fault_diag import lifecycle

    lifecycle.git_commit.cache_clear()
    first = lifecycle.git_commit()
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a) or None)
    assert lifecycle.git_commit() == first and calls == []
    lifecycle.git_commit.cache_clear()


def test_a_key_added_with_plus_that_the_schema_lacks_is_refused_with_the_nearest_key() -> None:
    """``+trainer.epoch=3`` gets past Hydra's closed schema; it must not be silently ignored."""
    from fault_diag.config import ConfigError, validate_config
    from fault_diag.training.sweep import plan_sweep

    with pytest.raises(
        ConfigError, match=r"unknown key trainer\.epoch: .*did you mean trainer\.epochs"
    ):
        plan_sweep(["+trainer.epoch=3"])
    (ok,) = plan_sweep(["+model.params.width=8", "+tracking.tags.study=x", "model=drsn_cw"]).configs
    assert ok.tracking.tags == {"study": "x"}  # free nodes take any key
    validate_config(ok)
