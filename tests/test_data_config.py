"""conf/data/*.yaml compose against the DataConfig schema and say every field explicitly."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from fault_diag.data.config import DataConfig, store_schema
from fault_diag.data.errors import ConfigError

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


@pytest.mark.parametrize(
    "name",
    [
        "cwru10",
        "cwru4",
        "cwru10_load_split",
        "cwru10_band4k",
        "hit_mfs7",
        "hit_selfbuilt7",
        "hit_mfs7_speed_split",
        "hit_selfbuilt7_speed_split",
        "hit_cross_rig",
    ],
)
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
    band = _compose("cwru10_band4k")
    assert band == DataConfig(band_hz=[0.0, 4000.0])  # cwru10 plus the band, nothing else
    assert _compose("cwru10", ["data.band_hz=[500,5000]"]).band_hz == [500.0, 5000.0]


def test_schema_rejects_typos() -> None:
    with pytest.raises(Exception, match="windw_length"):
        _compose("cwru10", ["data.windw_length=3"])


def test_from_any_accepts_an_omegaconf_node() -> None:
    node = OmegaConf.create({"setup": "cwru4", "loads": [0, 2]})
    cfg = DataConfig.from_any(node)
    assert cfg.setup == "cwru4" and cfg.loads == [0, 2]


NYQ = "0 <= low < high <= 6000 \\(Nyquist of data.fs_hz=12000\\)"


@pytest.mark.parametrize(
    ("band", "why"),
    [
        ([4000], "1 values"),
        ([0, 1000, 2000], "3 values"),
        ("0-4000", "not a list"),
        ([0, "4000"], "not numbers"),
        ([True, 4000], "not numbers"),
        ([0, float("inf")], "not finite"),
        ([float("nan"), 4000], "not finite"),
        ([-1, 4000], None),
        ([4000, 1000], None),
        ([1000, 1000], None),
        ([0, 7000], None),
        ([0, 6000], "\\[0, Nyquist\\] passes every frequency, which is no filter"),
    ],
)
def test_band_hz_is_validated_naming_key_value_and_range(band: object, why: str | None) -> None:
    with pytest.raises(ConfigError) as err:
        DataConfig(band_hz=band).validate()  # type: ignore[arg-type]
    msg = str(err.value)
    assert msg.startswith(f"data.band_hz={band!r} is invalid")
    assert re.search(f"expected \\[low, high\\] with {NYQ}, or null for no filter", msg), msg
    if why:
        assert re.search(why, msg), msg


def test_valid_bands_and_the_nyquist_follows_fs_hz() -> None:
    for band in ([0, 4000], [500, 6000], [1000, 3000], [0.0, 5999.5]):
        DataConfig(band_hz=band).validate()
    with pytest.raises(ConfigError, match=r"high <= 4000 \(Nyquist of data.fs_hz=8000\)"):
        DataConfig(fs_hz=8000, band_hz=[0, 5000]).validate()
    with pytest.raises(ConfigError, match=r"data.band_hz=\[1000, 1001\].*narrow.*taps"):
        DataConfig(band_hz=[1000, 1001]).validate()


def test_eval_hop_and_healthy_class_values() -> None:
    assert DataConfig(eval_hop=1).validate().effective_eval_hop == 1
    for bad in (0, -5):
        with pytest.raises(ConfigError, match=rf"data.eval_hop={bad} is invalid.*positive"):
            DataConfig(eval_hop=bad).validate()
    with pytest.raises(ConfigError, match=r"data.healthy_class=''"):
        DataConfig(healthy_class="").validate()
