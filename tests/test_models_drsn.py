"""DRSN-specific checks against the paper's description (Zhao et al., IEEE TII 2020): threshold
branch, soft thresholding, identity shortcut, unit order, threshold read-out, parameter count."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from fault_diag.models import (
    capture_thresholds,
    get_model,
    shrinkage_units,
    threshold_summary,
)
from fault_diag.models.blocks import PreActResidualUnit
from fault_diag.models.drsn import rsbu

VARIANTS = {"drsn_cs": False, "drsn_cw": True}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """These networks are tiny: a second intra-op thread gains nothing, and on a loaded machine
    spinning OpenMP threads made the same tests 10-100x slower. Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _units(model: torch.nn.Module) -> list[tuple[str, PreActResidualUnit]]:
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, PreActResidualUnit) and m.transform is not None
    ]


def test_default_drsn_cw_parameter_count_is_stable() -> None:
    # Hand count, num_classes=10, in_channels=1 (BN: weight + bias; convs have no bias).
    # stem Conv(1->4, k3): 12
    # RSBU-CW(i->o): BN(i) 2i + conv 3io + BN(o) 2o + conv 3oo + branch [FC 2o..: o*o+o, BN 2o,
    #   FC o*o+o] = 2o^2 + 4o
    #   stage1 4->4:  8 + 48 + 8 + 48 + 48            = 160, x4              =  640
    #   stage2 4->8:  8 + 96 + 16 + 192 + 160         = 472; 8->8: 576 x3    = 2200
    #   stage3 8->16: 16 + 384 + 32 + 768 + 576       = 1776; 16->16: 2176 x3 = 8304
    # head BN(16): 32; FC(16->10): 170
    # total 12 + 640 + 2200 + 8304 + 32 + 170 = 11358
    model = get_model("drsn_cw")
    assert sum(p.numel() for p in model.parameters()) == 11358
    # CS differs only in the branch's last FC (o -> 1 instead of o -> o): o^2 - 1 fewer per unit
    cs = get_model("drsn_cs")
    fewer = 4 * ((16 - 1) + (64 - 1) + (256 - 1))
    assert sum(p.numel() for p in cs.parameters()) == 11358 - fewer


def test_table_ii_layout() -> None:
    model = get_model("drsn_cw")
    assert (model.stem.in_channels, model.stem.out_channels) == (1, 4)
    assert (model.stem.kernel_size, model.stem.stride) == ((3,), (2,))
    units = _units(model)
    assert len(units) == 12
    for stage, width in zip(model.stages, (4, 8, 16), strict=True):
        assert len(stage) == 4
        strides = [u.conv1.stride[0] for u in stage]
        assert strides == [2, 1, 1, 1]
        assert all(u.conv2.out_channels == width for u in stage)
    x = torch.randn(2, 1, 2048)
    assert model.stages(model.stem(x)).shape == (2, 16, 2048 // 16)


@pytest.mark.parametrize(("name", "channel_wise"), VARIANTS.items())
def test_last_fc_of_threshold_branch_has_1_or_c_outputs(name: str, channel_wise: bool) -> None:
    for _, unit in _units(get_model(name)):
        channels = unit.conv2.out_channels
        branch = unit.transform.threshold
        assert branch.fc1.in_features == branch.fc1.out_features == channels
        assert branch.fc2.out_features == (channels if channel_wise else 1)


def test_residual_branch_is_pre_activation_in_paper_order() -> None:
    torch.manual_seed(0)
    unit = rsbu(4, 8, 2, 3, channel_wise=True).eval()
    for bn in (unit.bn1, unit.bn2):  # non-trivial BN statistics so the order matters
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 4, 64)
    expected = unit.conv2(F.relu(unit.bn2(unit.conv1(F.relu(unit.bn1(x))))))
    torch.testing.assert_close(unit.residual(x), expected)
    assert unit.conv1.stride == (2,) and unit.conv2.stride == (1,)


@pytest.mark.parametrize(("name", "channel_wise"), VARIANTS.items())
def test_threshold_formula_uses_mean_abs_residual(name: str, channel_wise: bool) -> None:
    torch.manual_seed(1)
    unit = rsbu(4, 8, 1, 3, channel_wise=channel_wise).eval()
    r = torch.randn(3, 8, 50) + 0.5  # mean of signed r differs from mean |r|
    branch = unit.transform.threshold
    m = r.abs().mean(-1)
    alpha = torch.sigmoid(branch.fc2(F.relu(branch.bn(branch.fc1(m)))))
    tau = branch(r.abs())[..., 0]
    if channel_wise:
        assert tau.shape == (3, 8)
        torch.testing.assert_close(tau, alpha * m)
    else:
        assert tau.shape == (3, 1)
        torch.testing.assert_close(tau, alpha * r.abs().mean(dim=(1, 2))[:, None])


@pytest.mark.parametrize(("name", "channel_wise"), VARIANTS.items())
def test_soft_threshold_zeroes_exactly_where_abs_r_below_tau(name: str, channel_wise: bool) -> None:
    torch.manual_seed(2)
    unit = rsbu(4, 4, 1, 3, channel_wise=channel_wise).eval()
    x = torch.randn(2, 4, 200)
    r = unit.residual(x)
    tau = unit.transform.threshold(r.abs())
    out = unit.transform(r)
    below = r.abs() <= tau
    assert below.any() and (~below).any()  # the check below is not vacuous
    assert (out[below] == 0).all()
    expected = torch.sign(r) * (r.abs() - tau)
    torch.testing.assert_close(out[~below], expected[~below])
    # the unit adds the (here trivial) identity shortcut to the thresholded residual
    torch.testing.assert_close(unit(x), x + out)


@pytest.mark.parametrize(("name", "channel_wise"), VARIANTS.items())
def test_captured_thresholds_are_per_sample_and_bounded(name: str, channel_wise: bool) -> None:
    torch.manual_seed(3)
    model = get_model(name).eval()
    x = torch.randn(3, 1, 1024)
    with capture_thresholds(model) as taus:
        model(x)
    units = _units(model)
    assert list(taus) == [n for n, _ in units]
    assert list(taus)[0] == "stages.stage1.unit1"
    # recompute unit by unit: each captured tau is 0 < tau < the mean |r| it scales
    h = model.stem(x)
    for unit_name, unit in units:
        r = unit.residual(h)
        tau = taus[unit_name]
        assert not tau.requires_grad
        if channel_wise:
            assert tau.shape == (3, unit.conv2.out_channels)
            scale = r.abs().mean(-1)
        else:
            assert tau.shape == (3, 1)
            scale = r.abs().mean(dim=(1, 2))[:, None]
        torch.testing.assert_close(tau, unit.transform.threshold(r.abs())[..., 0])
        assert (tau > 0).all() and (tau < scale).all()
        h = unit(h)


def test_capture_costs_nothing_outside_the_block() -> None:
    model = get_model("drsn_cw").eval()

    def hook_count() -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

    assert hook_count() == 0
    with capture_thresholds(model) as taus:
        assert hook_count() == 12
        model(torch.randn(2, 1, 512))
    assert hook_count() == 0
    before = {k: v.clone() for k, v in taus.items()}
    model(torch.randn(4, 1, 512))  # not recorded any more
    assert all(torch.equal(taus[k], before[k]) for k in before)
    # hooks are removed on error too
    with pytest.raises(RuntimeError), capture_thresholds(model):
        raise RuntimeError("boom")
    assert hook_count() == 0


def test_capture_replaces_or_accumulates_batches() -> None:
    model = get_model("drsn_cs").eval()
    with capture_thresholds(model) as last:
        model(torch.randn(2, 1, 512))
        model(torch.randn(3, 1, 512))
    assert all(v.shape == (3, 1) for v in last.values())
    with capture_thresholds(model, accumulate=True) as stacked:
        model(torch.randn(2, 1, 512))
        model(torch.randn(3, 1, 512))
    assert all(v.shape == (5, 1) for v in stacked.values())


def test_capture_on_model_without_thresholds_is_empty() -> None:
    model = get_model("resnet1d").eval()
    assert shrinkage_units(model) == {}
    with capture_thresholds(model) as taus:
        model(torch.randn(2, 1, 512))
    assert taus == {}


def test_threshold_summary_means_per_stage() -> None:
    model = get_model("drsn_cw").eval()
    with capture_thresholds(model) as taus:
        model(torch.randn(2, 1, 1024))
    summary = threshold_summary(taus)
    assert list(summary) == ["stage1", "stage2", "stage3", "all"]
    stage2 = torch.cat([v.flatten() for k, v in taus.items() if ".stage2." in k])
    assert summary["stage2"] == pytest.approx(stage2.double().mean().item())
    every = torch.cat([v.flatten() for v in taus.values()])
    assert summary["all"] == pytest.approx(every.double().mean().item())


@pytest.mark.parametrize("name", VARIANTS)
def test_gradients_reach_the_threshold_branch(name: str) -> None:
    torch.manual_seed(4)
    model = get_model(name).train()
    out = model(torch.randn(4, 1, 1024))
    F.cross_entropy(out, torch.tensor([0, 1, 2, 3])).backward()
    for unit_name, unit in _units(model):
        branch = unit.transform.threshold
        for fc in (branch.fc1, branch.fc2):
            assert fc.weight.grad is not None and fc.weight.grad.abs().sum() > 0, unit_name


@pytest.mark.parametrize("channel_wise", [False, True], ids=["cs", "cw"])
@pytest.mark.parametrize(("c_in", "c_out"), [(4, 7), (4, 8), (5, 5)])
@pytest.mark.parametrize("length", [100, 101])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_shortcut_subsamples_and_zero_pads_channels(
    channel_wise: bool, c_in: int, c_out: int, length: int, stride: int
) -> None:
    unit = rsbu(c_in, c_out, stride, 3, channel_wise=channel_wise).eval()
    x = torch.randn(2, c_in, length)
    out_len = math.ceil(length / stride)
    assert unit(x).shape == (2, c_out, out_len)
    short = unit.shortcut(x)
    assert short.shape == (2, c_out, out_len)
    front = (c_out - c_in) // 2
    torch.testing.assert_close(short[:, front : front + c_in], x[..., ::stride])
    zero = torch.ones(c_out, dtype=torch.bool)
    zero[front : front + c_in] = False
    assert int(zero.sum()) == c_out - c_in
    assert (short[:, zero] == 0).all()
    # unit output = shortcut + thresholded residual, nothing after the addition
    torch.testing.assert_close(unit(x), short + unit.transform(unit.residual(x)))


@pytest.mark.parametrize("name", ["drsn_cs", "drsn_cw", "resnet1d", "se_resnet1d"])
def test_no_relu_after_the_addition(name: str) -> None:
    torch.manual_seed(5)
    model = get_model(name).eval()
    h = model.stem(torch.randn(2, 1, 1024))
    for stage in model.stages:
        for unit in stage:
            h = unit(h)
            assert (h < 0).any(), "unit output has no negative value: activation after the add?"


@pytest.mark.parametrize("tau_channels", [6, 1], ids=["channel-wise", "channel-shared"])
def test_training_soft_threshold_matches_the_formula_and_its_autograd(tau_channels: int) -> None:
    """The hand-written backward of the training-time soft threshold gives the formula's values and
    the gradients autograd derives from ``sign(r) * relu(|r| - tau)`` (bit for bit for ``r``)."""
    from fault_diag.models.blocks import soft_threshold

    torch.manual_seed(0)
    r = torch.randn(4, 6, 50, requires_grad=True)
    tau = (0.8 * torch.rand(4, tau_channels, 1)).requires_grad_()
    y = soft_threshold(r, tau)
    g = torch.randn_like(y)
    y.backward(g)

    r_ref, tau_ref = r.detach().clone().requires_grad_(), tau.detach().clone().requires_grad_()
    y_ref = torch.sign(r_ref) * F.relu(r_ref.abs() - tau_ref)
    y_ref.backward(g)
    assert torch.equal(y, y_ref)
    assert torch.equal(r.grad, r_ref.grad)
    torch.testing.assert_close(tau.grad, tau_ref.grad)
    assert tau.grad.shape == tau.shape and (tau.grad != 0).any()
    with torch.no_grad():  # inference / export take the plain formula
        assert torch.equal(soft_threshold(r, tau), y_ref)


def test_training_soft_threshold_under_vmap_and_bf16_autocast() -> None:
    """Stacked sweep members (torch.func.vmap) and CPU bf16 autocast both run through it."""
    from torch.func import vmap

    from fault_diag.models.blocks import soft_threshold

    r = torch.randn(3, 4, 6, 20, requires_grad=True)
    tau = torch.rand(3, 4, 6, 1, requires_grad=True)
    y = vmap(soft_threshold)(r, tau)
    y.sum().backward()
    assert r.grad is not None and tau.grad is not None and tau.grad.shape == tau.shape
    for i in range(3):
        torch.testing.assert_close(
            y[i], torch.sign(r[i]) * F.relu(r[i].abs() - tau[i]), rtol=0, atol=0
        )

    rb = torch.randn(2, 6, 20).bfloat16().requires_grad_()
    taub = torch.rand(2, 6, 1, requires_grad=True)  # the threshold branch's FCs give float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yb = soft_threshold(rb, taub)
    yb.float().sum().backward()
    assert yb.dtype == torch.bfloat16 and rb.grad.dtype == torch.bfloat16
    assert taub.grad.dtype == torch.float32
