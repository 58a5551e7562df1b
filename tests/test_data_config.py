"""conf/data/*.yaml compose against the DataConfig schema and say every field explicitly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from fault_diag.data.config import DataConfig, store_schema

CONF = Path(__file__).resolve().parents[1] / "conf"
FIELDS = [f.name for f in dataclasses.fields(DataConfig)]


def _compose(name: str, overrides: list[str] | None = None) -> DataConfig:
    store_schema()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(overrides=[f"+data={name}", *(overrides or [])])
    obj = OmegaConf.to_object(cfg.data)
    assert isinstance(obj, DataConfig)
    return obj


@pytest.mark.parametrize("name", ["cwru10", "cwru4", "cwru10_load_split"])
def test_yaml_lists_every_field_and_composes(name: str) -> None:
    raw = yaml.safe_load((CONF / "data" / f"{name}.yaml").read_text())
    assert raw["defaults"] == ["base_data", "_self_"]
    assert sorted(k for k in raw if k != "defaults") == sorted(FIELDS)
    cfg = _compose(name)
    cfg.validate()
    assert DataConfig.from_any(cfg) is cfg


def test_composed_values() -> None:
    assert _compose("cwru10") == DataConfig()  # the YAML spells out the defaults
    assert _compose("cwru4") == DataConfig(setup="cwru4")
    load = _compose("cwru10_load_split")
    assert (load.split, load.train_loads, load.test_loads) == ("load", [0, 1, 2], [3])
    custom = _compose("cwru10", ["data.window_length=1024", "data.classes=[IR007,OR007@6]"])
    assert custom.window_length == 1024 and custom.classes == ["IR007", "OR007@6"]


def test_schema_rejects_typos() -> None:
    with pytest.raises(Exception, match="windw_length"):
        _compose("cwru10", ["data.windw_length=3"])


def test_from_any_accepts_an_omegaconf_node() -> None:
    node = OmegaConf.create({"setup": "cwru4", "loads": [0, 2]})
    cfg = DataConfig.from_any(node)
    assert cfg.setup == "cwru4" and cfg.loads == [0, 2]
