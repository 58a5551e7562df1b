"""Every registered model: shapes, gradients, torch.export, a few optimisation steps, bad input,
registry behaviour and the Hydra configs in conf/model/. Parametrized over ``list_models()``, so a
newly registered model is tested by registration alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from fault_diag.models import (
    InputShapeError,
    ModelParamError,
    UnknownModelError,
    build_from_spec,
    get_model,
    get_model_spec,
    list_models,
    register_model,
)

MODELS = list_models()
CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"
NUM_CLASSES = 5


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """These networks are tiny: a second intra-op thread gains nothing, and on a loaded machine
    spinning OpenMP threads made the same tests 10-100x slower. Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_expected_models_are_registered() -> None:
    expected = {
        "drsn_cs",
        "drsn_cw",
        "resnet1d",
        "convnet1d",
        "se_resnet1d",
        "se_felu_resnet1d",
        "resnet1d_aprelu",
        "ran1d",
        "wdcnn",
    }
    assert expected <= set(MODELS)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("length", [1024, 2048, 4096])
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name: str, length: int, train: bool) -> None:
    torch.manual_seed(0)
    model = get_model(name, num_classes=NUM_CLASSES).train(train)
    x = torch.randn(2, 1, length)
    out = model(x)
    assert out.shape == (2, NUM_CLASSES)
    assert torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 3])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: parameter {pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"


@pytest.mark.parametrize("name", MODELS)
def test_multichannel_input(name: str) -> None:
    model = get_model(name, num_classes=3, in_channels=2).eval()
    assert model(torch.randn(2, 2, 2048)).shape == (2, 3)


@pytest.mark.parametrize("name", MODELS)
def test_export_with_dynamic_batch_matches_eager(name: str) -> None:
    torch.manual_seed(0)
    model = get_model(name, num_classes=NUM_CLASSES).eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(
        model, (torch.randn(2, 1, 1024),), dynamic_shapes={"x": {0: batch}}
    )
    exported = program.module()
    for b in (3, 5):
        x = torch.randn(b, 1, 1024)
        with torch.no_grad():
            torch.testing.assert_close(exported(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_adam_steps_reduce_loss_on_fixed_batch(name: str) -> None:
    torch.manual_seed(0)
    model = get_model(name, num_classes=4).train()
    x = torch.randn(8, 1, 512)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0], f"{name}: losses {losses}"


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_shape_names_expected_shape(name: str) -> None:
    model = get_model(name).eval()
    n = model.min_length
    with pytest.raises(InputShapeError) as err:
        model(torch.randn(2, 3, 2048))
    assert str(err.value) == (f"{name} expects input (batch, 1, length >= {n}); got (2, 3, 2048)")
    with pytest.raises(InputShapeError, match=rf"length >= {n}\); got \(2, 1, {n - 1}\)"):
        model(torch.randn(2, 1, n - 1))
    with pytest.raises(InputShapeError, match=r"got \(2048,\)"):
        model(torch.randn(2048))
    assert isinstance(err.value, ValueError)
    # the shortest accepted window works, in train mode too
    assert model(torch.randn(2, 1, n)).shape == (2, 10)
    assert model.train()(torch.randn(2, 1, n)).shape == (2, 10)


@pytest.mark.parametrize("name", MODELS)
def test_spec_rebuilds_same_network_without_hydra(name: str) -> None:
    model = get_model(name, num_classes=7).eval()
    spec = get_model_spec(model)
    assert spec["name"] == name and spec["kwargs"]["num_classes"] == 7
    spec = json.loads(json.dumps(spec))  # survives a model card round trip
    rebuilt = build_from_spec(spec).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 2048)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_unknown_model_lists_registered_names() -> None:
    with pytest.raises(UnknownModelError) as err:
        get_model("drsn_xx")
    msg = str(err.value)
    assert "'drsn_xx'" in msg
    assert all(name in msg for name in MODELS)
    assert isinstance(err.value, ValueError)


def test_unknown_kwarg_names_key_and_accepted_ones() -> None:
    with pytest.raises(ModelParamError) as err:
        get_model("drsn_cw", num_clases=4)
    msg = str(err.value)
    assert "'num_clases'" in msg and "num_classes" in msg and "stage_channels" in msg


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"stage_channels": [8, 4, 16]}, "stage_channels"),
        ({"stem_channels": 8, "stage_channels": [4, 8, 16]}, "stage_channels"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"units_per_stage": [4, 4]}, "units_per_stage"),
        ({"stage_strides": [2, 0, 2]}, "stage_strides"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_invalid_skeleton_values_are_refused(kwargs: dict, key: str) -> None:
    with pytest.raises(ModelParamError, match=f"'{key}'"):
        get_model("drsn_cw", **kwargs)


def test_convnet_may_shrink_channels_but_ran_needs_three_units() -> None:
    assert get_model("convnet1d", stage_channels=[8, 4, 4]).eval()(torch.randn(1, 1, 256)).shape
    with pytest.raises(ModelParamError, match="'units_per_stage'"):
        get_model("ran1d", units_per_stage=2)
    with pytest.raises(ModelParamError, match="'mask_depths'"):
        get_model("ran1d", mask_depths=[1, 1])


def test_depth_and_width_parameters_change_the_network() -> None:
    small = get_model("drsn_cw", stage_channels=[4, 8], units_per_stage=[1, 2], stage_strides=2)
    names = [n for n, _ in small.named_children()]
    assert names == ["stem", "stages", "head", "fc"]
    assert [len(s) for s in small.stages] == [1, 2]
    assert small.fc.in_features == 8 and small.min_length == 8
    assert small.eval()(torch.randn(2, 1, 100)).shape == (2, 10)


def test_register_model_refuses_duplicates_and_var_kwargs() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("drsn_cw")(lambda *, num_classes=10: None)
    with pytest.raises(ValueError, match="keyword argument"):
        register_model("new_model_kw")(lambda **kwargs: None)
    assert "new_model_kw" not in list_models()


def test_get_model_accepts_omegaconf_containers() -> None:
    params = OmegaConf.create({"stage_channels": [4, 8, 16], "units_per_stage": [1, 1, 1]})
    model = get_model("drsn_cs", num_classes=3, **params)
    spec = get_model_spec(model)
    assert spec["kwargs"]["stage_channels"] == [4, 8, 16]
    assert type(spec["kwargs"]["units_per_stage"]) is list
    json.dumps(spec)


def _model_yamls() -> list[Path]:
    return sorted(CONF_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", _model_yamls(), ids=lambda p: p.stem)
def test_model_yaml_builds(path: Path) -> None:
    cfg = OmegaConf.load(path)
    assert list(cfg.defaults) == ["base_model", "_self_"]
    assert cfg.name == path.stem
    params = OmegaConf.to_container(cfg.params, resolve=True)
    model = get_model(cfg.name, num_classes=4, in_channels=1, **params).eval()
    assert model(torch.randn(2, 1, 2048)).shape == (2, 4)


def test_every_registered_model_has_a_yaml() -> None:
    assert {p.stem for p in _model_yamls()} == set(MODELS)


def test_drsn_yaml_is_the_papers_table_ii_network() -> None:
    for name in ("drsn_cs", "drsn_cw"):
        params = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{name}.yaml").params)
        assert params == {
            "stem_channels": 4,
            "stage_channels": [4, 8, 16],
            "units_per_stage": 4,
            "kernel_size": 3,
            "stem_stride": 2,
            "stage_strides": [2, 2, 2],
        }
