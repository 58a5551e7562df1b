"""The training engine (fault_diag.training.engine), concurrent sweep members (.concurrent) and
``fd-sweep`` (.sweep).

What a user relies on:
- the fast path feeds the network exactly the windows and noise the eager loop feeds it;
- ``trainer.compile=true`` reaches the eager path's accuracy (slow: compiles on the CPU);
- members trained concurrently give the results of the same members trained one by one;
- incompatible members are refused with the key that differs.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from fault_diag.cli.sweep import main
from fault_diag.noise import add_noise, noise_generator
from fault_diag.training.concurrent import (
    ConcurrentError,
    check_compatible,
    default_group_size,
    group_compatible,
    train_concurrent,
)
from fault_diag.training.engine import (
    FastPathError,
    TrainStep,
    epoch_inputs,
    epoch_order,
    resolve_compile_mode,
    run_epoch,
)
from fault_diag.training.loop import build_classifier, config_fingerprint, train
from fault_diag.training.sweep import plan_sweep

# Small real-data runs, as tests/test_train.py's SMALL: 0 HP files, non-overlapping training windows.
SMALL = [
    "noise=gaussian",  # matched runs (the default noise group is mixed)
    "data.loads=[0]",
    "data.train_hop=2048",
    "trainer.progress=false",
    "trainer.num_threads=1",
    "tracking=none",
    "noise.test_snr_grid_db=[-4,4]",
    "noise.test_kinds=[gaussian,pink]",
]


def compose_members(overrides: list[str], sweeps: list[str]):
    """One typed config per member of the sweep ``overrides + sweeps`` (fd-sweep's expansion)."""
    return plan_sweep([*overrides, *sweeps]).configs


def _cfg(*overrides: str):
    return compose_members([*SMALL, *overrides], [])[0]


def _compose(*overrides: str):
    """The composed Hydra DictConfig, as fd-train's job receives it."""
    from hydra import compose, initialize_config_dir

    from fault_diag.config import register_configs
    from fault_diag.paths import config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[*SMALL, *overrides])
    cfg.paths.output_dir = "/tmp/x"  # resolved without Hydra's run folder
    return cfg


def legacy_fingerprint(cfg) -> str:
    """The fingerprint formula checkpoints were written with before the typed config (2026-11)."""
    import hashlib

    plain = OmegaConf.to_container(cfg, resolve=True)
    keep = {k: plain[k] for k in ("data", "noise", "model") if k in plain}
    trainer = dict(plain.get("trainer", {}))
    for volatile in ("progress", "resume", "num_threads", "device"):
        trainer.pop(volatile, None)
    if not trainer.get("compile", False):
        trainer.pop("compile", None)
        trainer.pop("compile_mode", None)
    keep["trainer"] = trainer
    keep["data"] = {
        k: v for k, v in keep["data"].items() if k != "root" and not (k == "lenient" and v is False)
    }
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def small_dataset(cwru_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from fault_diag.data import build_dataset

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAULT_DIAG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return build_dataset(_cfg().data)


# ------------------------------------------------------------------------------------------------
# fast path: inputs and step, no compiler


@pytest.mark.parametrize("kind", ["gaussian", "pink", "laplacian"])
def test_epoch_inputs_equal_the_eager_loops_per_batch_noise_bit_for_bit(kind: str) -> None:
    gen_data = torch.Generator().manual_seed(7)
    x = torch.randn(300, 1, 512, generator=gen_data) * 0.3
    y = torch.arange(300) % 10
    order = epoch_order(3, 5, 300, torch.device("cpu"))
    batch = 64  # 300 = 4 x 64 + 44: the short last batch too
    x_ep, y_ep = epoch_inputs(x, y, order, batch, kind, -3.0, noise_generator(3, "train", 5))
    gen = noise_generator(3, "train", 5)
    for start in range(0, 300, batch):
        idx = order[start : start + batch]
        expected = add_noise(x[idx], -3.0, kind, generator=gen)  # what loop.py's eager path does
        assert torch.equal(x_ep[start : start + batch], expected), f"batch at {start} differs"
        assert torch.equal(y_ep[start : start + batch], y[idx])


def test_epoch_inputs_without_noise_is_the_shuffled_split() -> None:
    x, y = torch.randn(10, 1, 64), torch.arange(10)
    order = torch.randperm(10)
    x_ep, y_ep = epoch_inputs(x, y, order, 4)
    assert torch.equal(x_ep, x[order]) and torch.equal(y_ep, y[order])
    with pytest.raises(FastPathError, match="needs an SNR"):
        epoch_inputs(x, y, order, 4, "gaussian", None, noise_generator(0))


def test_fast_step_without_compiler_trains_exactly_like_the_eager_loop() -> None:
    """The fast path's plumbing (epoch inputs, fused step, device-side sums) changes no number."""
    cfg = compose_members(["model=drsn_cw", "trainer.num_threads=1"], [])[0]
    x = torch.randn(200, 1, 1024, generator=torch.Generator().manual_seed(1))
    y = torch.arange(200) % 10
    order = epoch_order(0, 0, 200, torch.device("cpu"))

    def fresh():
        torch.manual_seed(0)
        model = build_classifier(cfg.model, 10, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        return model, opt

    # Eager reference: the loop body of fault_diag.training.loop.train.
    model_a, opt_a = fresh()
    gen = noise_generator(0, "train", 0)
    loss_a, correct_a = torch.zeros(()), torch.zeros((), dtype=torch.long)
    for start in range(0, 200, 64):
        idx = order[start : start + 64]
        xb = add_noise(x[idx], 0.0, "pink", generator=gen)
        logits = model_a(xb)
        loss = torch.nn.functional.cross_entropy(logits.float(), y[idx])
        opt_a.zero_grad(set_to_none=True)
        loss.backward()
        opt_a.step()
        loss_a += loss.detach() * len(idx)
        correct_a += (logits.argmax(dim=1) == y[idx]).sum()

    model_b, opt_b = fresh()
    x_ep, y_ep = epoch_inputs(x, y, order, 64, "pink", 0.0, noise_generator(0, "train", 0))
    step = TrainStep(model_b, opt_b, device=torch.device("cpu"), compile=False)
    loss_b, correct_b = run_epoch(step, x_ep, y_ep, 64)

    assert torch.equal(loss_a, loss_b) and torch.equal(correct_a, correct_b)
    for (name, a), b in zip(
        model_a.state_dict().items(), model_b.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_compile_mode_resolution_and_refusals() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU
    assert resolve_compile_mode("auto", cpu, 128) == "default"
    assert resolve_compile_mode("auto", cuda, 128) == "reduce-overhead"  # CUDA graphs
    assert resolve_compile_mode("auto", cuda, 4096) == "default"
    assert resolve_compile_mode("max-autotune-no-cudagraphs", cpu, 128) == (
        "max-autotune-no-cudagraphs"
    )
    with pytest.raises(FastPathError, match=r"trainer\.compile_mode='fast'"):
        resolve_compile_mode("fast", cpu, 128)
    with pytest.raises(FastPathError, match="CUDA graphs"):
        resolve_compile_mode("reduce-overhead", cpu, 128)


def test_train_refuses_a_bad_compile_mode_before_training(tmp_path: Path) -> None:
    from fault_diag.config import ConfigError

    with pytest.raises(ConfigError, match=r"trainer\.compile_mode='turbo' is not one of"):
        _cfg("trainer.compile=true", "trainer.compile_mode=turbo")  # at compose time
    cfg = _cfg("trainer.compile=true")
    cfg.trainer.compile_mode = "turbo"  # a config built without validation: train() refuses it too
    with pytest.raises(FastPathError, match="turbo"):
        train(cfg, dataset=None, output_dir=tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [(), ("trainer.compile=true",), ("noise=mixed", "model=wdcnn"), ("data.lenient=true",)],
)
def test_typed_fingerprint_is_the_one_checkpoints_were_written_with(overrides) -> None:
    """The fingerprint of the typed config equals the formula over the composed config used before
    it, so every checkpoint written before resumes; eager runs leave the compile keys out."""
    dcfg = _compose(*overrides)
    assert config_fingerprint(dcfg) == legacy_fingerprint(dcfg)
    eager = _compose()
    with open_dict(eager.trainer):
        del eager.trainer["compile"]
        del eager.trainer["compile_mode"]
    assert legacy_fingerprint(eager) == config_fingerprint(_compose())
    compiled = _compose("trainer.compile=true")
    assert config_fingerprint(compiled) != config_fingerprint(_compose())


# ------------------------------------------------------------------------------------------------
# concurrent members


def test_members_that_differ_in_the_model_are_refused_and_grouped() -> None:
    cfgs = compose_members(
        ["trainer.epochs=1", "noise=gaussian"], ["model=drsn_cw,resnet1d", "noise.snr_db=-2,2"]
    )  # order: (drsn,-2) (drsn,2) (resnet,-2) (resnet,2)
    with pytest.raises(ConcurrentError, match=r"member 2 .*model\.name='resnet1d'"):
        check_compatible(cfgs)
    assert group_compatible(cfgs) == [[0, 1], [2, 3]]
    assert group_compatible(cfgs, max_members=1) == [[0], [1], [2], [3]]
    lr = compose_members([], ["trainer.lr=0.1,0.01"])
    with pytest.raises(ConcurrentError, match=r"trainer\.lr=0\.01"):
        check_compatible(lr)
    with pytest.raises(ConcurrentError, match="at least one"):
        check_compatible([])


def test_cpu_sweeps_stack_members_only_for_small_batches() -> None:
    """On the CPU a stacked step of K x batch windows pays only up to ~128 windows (benchmarks)."""
    paper, small = compose_members(["trainer.device=cpu"], ["trainer.batch_size=128,32"])
    assert default_group_size(paper.trainer) == 1  # one member at a time at the paper's batch
    assert default_group_size(small.trainer) == 4


@pytest.mark.integration
@pytest.mark.parametrize("model", ["resnet1d", "drsn_cw"])
def test_concurrent_members_give_the_results_of_one_by_one_training(
    model: str, small_dataset, tmp_path: Path
) -> None:
    """Three members (3 noise kinds at 3 SNRs, 2 seeds) stacked vs trained one at a time.

    Float tolerance, not equality: vmap turns each member's convolution into one grouped
    convolution and each Linear into a batched matmul, which round differently from the per-member
    kernels (on the CPU a ResNet forward pass is bit-identical, FC layers and backward passes are
    not). The rounding difference grows with every step at lr 0.1: measured on ResNet (2026-11-29),
    the largest weight difference is 1.5e-4 after one epoch and 7e-3 after three (the selected
    epoch is now the last one: ties go to the later epoch), so the test allows 1.5e-2 times the
    tensor's scale; the losses agree to ~1e-4 relative, validation accuracies, best epochs and
    early stops are equal, and test cells agree to two window-draws.
    """
    cfgs = compose_members(
        [
            *SMALL,
            f"model={model}",
            "trainer.epochs=3",
            "trainer.early_stopping_patience=1",
            "trainer.lr_milestones=[0.6]",
        ],
        ["noise.kind=gaussian,pink,laplacian"],
    )
    for i, (cfg, snr_db) in enumerate(zip(cfgs, (-2.0, 4.0, 0.0), strict=True)):
        cfg.noise.snr_db = snr_db
        cfg.trainer.seed = i % 2
        cfg.trainer.resume = False
    seen: list[tuple[int, int]] = []
    together = train_concurrent(
        cfgs, small_dataset, on_epoch_end=lambda i, e, m: seen.append((i, e))
    )
    assert sorted({i for i, _ in seen}) == [0, 1, 2]
    worst_weight_error = 0.0
    for i, (cfg, res) in enumerate(zip(cfgs, together, strict=True)):
        cfg.paths.output_dir = str(tmp_path / f"solo{i}")
        alone = train(cfg, small_dataset, tmp_path / f"solo{i}")
        assert len(res.history) == len(alone.history), f"member {i}: early stop differs"
        for h_c, h_a in zip(res.history, alone.history, strict=True):
            assert math.isclose(h_c["train/loss"], h_a["train/loss"], rel_tol=1e-3), (i, h_c, h_a)
            assert h_c["val/acc"] == h_a["val/acc"] and h_c["lr"] == h_a["lr"]
        assert res.best_epoch == alone.best_epoch and res.stopped_early == alone.stopped_early
        # A handful of test windows sit on a decision boundary that the weights' rounding
        # drift can move them across: allow two window-draws per cell, no more.
        n_scored = len(small_dataset.split("test")[1]) * int(cfg.noise.test_draws)
        assert res.test_metrics["test/acc"] == pytest.approx(
            alone.test_metrics["test/acc"], abs=2.0 / n_scored
        )
        assert res.grid_accuracy.keys() == alone.grid_accuracy.keys()
        for cell, acc in alone.grid_accuracy.items():
            assert res.grid_accuracy[cell] == pytest.approx(acc, abs=2.0 / n_scored), cell
        assert res.protocol == alone.protocol
        for name, w in alone.model.state_dict().items():
            got = res.model.state_dict()[name]
            if w.is_floating_point():  # weights and BatchNorm running statistics, per member
                err = float((got - w).abs().max())
                worst_weight_error = max(worst_weight_error, err)
                assert err <= 1.5e-2 * (1.0 + float(w.abs().max())), (
                    f"member {i}: {name} off by {err}"
                )
            else:
                assert torch.equal(got, w), f"member {i}: {name}"
    print(f"{model}: largest weight / running-statistic difference {worst_weight_error:.2e}")


@pytest.mark.integration
def test_concurrent_command_line_writes_each_members_artifacts(
    cwru_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("FAULT_DIAG_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    rc = main(
        [
            *SMALL,
            "trainer.epochs=1",
            "model=resnet1d,convnet1d",  # fd-train -m's sweep syntax
            "noise.snr_db=-4,4",
            f"hydra.sweep.dir={out}",
        ]
    )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    members = summary["members"]
    assert [(m["model"], m["snr_db"]) for m in members] == [
        ("resnet1d", -4.0),
        ("resnet1d", 4.0),
        ("convnet1d", -4.0),
        ("convnet1d", 4.0),
    ]
    for m in members:
        art = Path(m["artifacts"])
        card = json.loads((art / "model_card.json").read_text())
        assert card["model"]["name"] == m["model"] and card["training_snr_db"] == m["snr_db"]
        assert 0.0 <= m["test/acc"] <= 1.0 and (art / "classifier_state.pt").exists()
        assert art.parent == out / str(m["member"])  # one folder per member, as fd-train -m
    assert "test acc" in capsys.readouterr().out


@pytest.mark.integration
def test_concurrent_sweep_is_tracked_in_mlflow_like_a_multirun(
    cwru_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parent run and one child per member, with per-epoch history, test grid and artifacts."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("FAULT_DIAG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "out"
    overrides = [o for o in SMALL if o != "tracking=none"]
    rc = main(
        [
            *overrides,
            "trainer.epochs=2",
            "tracking=mlflow",
            f"tracking.tracking_uri={uri}",
            "tracking.experiment=concurrent_test",
            "model=convnet1d",
            "noise.snr_db=-4,4",
            f"hydra.sweep.dir={out}",
        ]
    )
    assert rc == 0
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("concurrent_test")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("fd.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("fd.role") != "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # the dashboard: a machine-learning experiment (not MLflow's GenAI view), the sweep's result
    # on its parent run as curves against SNR, a table and a figure
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parent_id = parents[0].info.run_id
    curve = client.get_metric_history(parent_id, "curve/bal_acc/gaussian/convnet1d")
    assert sorted(m.step for m in curve) == [-4, 4]
    parent_files = {a.path for a in client.list_artifacts(parent_id)}
    assert {"sweep_grid.json", "accuracy_vs_snr.png"} <= parent_files
    assert sorted(float(r.data.tags["snr_db"]) for r in children) == [-4.0, 4.0]
    summary = {m["run_id"]: m for m in json.loads((out / "summary.json").read_text())["members"]}
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["trained_concurrently"] == "true"
        assert run.data.tags["model"] == "convnet1d" and run.data.tags["protocol"] == "matched"
        history = client.get_metric_history(run.info.run_id, "val/acc")
        assert [m.step for m in history] == [1, 2]
        m = run.data.metrics
        assert m["test/acc"] == pytest.approx(summary[run.info.run_id]["test/acc"])
        assert {"test/acc/gaussian/-4dB", "test/acc/pink/4dB", "test/acc/clean"} <= set(m)
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"model_card.json", "confusion_matrix.png", "classifier_state.pt"} <= names
        assert "accuracy_vs_snr.png" in names
        own = client.get_metric_history(run.info.run_id, "curve/bal_acc/pink")
        assert sorted(m.step for m in own) == [-4, 4]
        (dataset,) = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert dataset.dataset.name == "cwru10"
        card = json.loads(
            Path(summary[run.info.run_id]["artifacts"], "model_card.json").read_text()
        )
        assert card["mlflow_run_id"] == run.info.run_id
    # logging the models pointed mlflow's global URI at the store for a moment, and only a moment:
    # later code in this process (another run, a report, the next test) must not inherit it
    import mlflow

    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri() != uri


# ------------------------------------------------------------------------------------------------
# the compiled path


# Converges in 5 epochs on the CPU (~10 s eager): all loads, 40 % of each recording as test split
# (about 800 non-overlapping test windows, so 0.5 points is ~4 windows), 10 dB. Across seeds 0-2 the
# eager test accuracy spans 97.6-97.9 %: the compiled path's rounding perturbs far less than a seed.
CONVERGING = [
    "data.split_fractions=[0.5,0.1,0.4]",
    "data.train_hop=1024",
    "trainer.batch_size=32",
    "trainer.epochs=5",
    "trainer.lr_milestones=[0.6]",
    "trainer.progress=false",
    "trainer.num_threads=1",
    "tracking=none",
    "model=drsn_cw",
    "noise=gaussian",
    "noise.snr_db=10",
    "noise.test_kinds=[gaussian]",
    "noise.test_snr_grid_db=[4,10]",
]


@pytest.fixture(scope="module")
def converging_dataset(cwru_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from fault_diag.data import build_dataset

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAULT_DIAG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        cfg = compose_members(CONVERGING, [])[0]
        return build_dataset(cfg.data)


def _run(dataset, folder: Path, *overrides: str):
    cfg = compose_members([*CONVERGING, *overrides], [])[0]
    cfg.paths.output_dir = str(folder)
    cfg.trainer.resume = False
    return train(cfg, dataset, folder)


@pytest.mark.slow
@pytest.mark.integration
def test_compiled_fast_path_reaches_the_eager_accuracy(converging_dataset, tmp_path: Path) -> None:
    """trainer.compile=true vs eager on the CPU, seeds 0-2: mean test accuracy within 0.5 points.

    Slow (minutes): inductor compiles the step's forward and backward for the full batch and for
    the epoch's short last batch. The compiled kernels sum in another order (vectorised float32
    reductions, and the fast path's convolution input gradient), so each run takes its own
    trajectory: one run lands a few points either side of its eager twin, about a seed's spread.
    What must hold is that compiling costs no accuracy: the compiled mean over three seeds is not
    below the eager mean by more than 0.5 points. One-sided: a compiled path that ends higher is
    not a defect. Measured 2026-12-07, identical to the last digit at 4608989 and after the engine
    refactor: eager 97.69 / 95.95 / 98.58 % (mean 97.41), compiled 97.90 / 98.67 / 98.38 % (mean
    98.31); the earlier two-sided bound (2026-11-23: eager 97.73, compiled 98.06) predates the
    val_loss selection rule, after which it failed at both commits."""
    eager, fast = [], []
    for seed in (0, 1, 2):
        e = _run(converging_dataset, tmp_path / f"eager{seed}", f"trainer.seed={seed}")
        f = _run(
            converging_dataset,
            tmp_path / f"fast{seed}",
            f"trainer.seed={seed}",
            "trainer.compile=true",
        )
        assert e.test_metrics["test/acc"] > 0.9, f"the reference run (seed {seed}) did not converge"
        eager.append({"test": e.test_metrics["test/acc"], **e.grid_accuracy})
        fast.append({"test": f.test_metrics["test/acc"], **f.grid_accuracy})
    print(f"eager {eager}\ncompiled {fast}")

    def mean(runs: list, key) -> float:
        return sum(r[key] for r in runs) / len(runs)

    assert mean(fast, "test") >= mean(eager, "test") - 0.005
    assert min(r["test"] for r in fast) > 0.9
    # Not compared: the 4 dB grid point of these 10 dB models. Off the training condition single
    # runs scatter far more than the paths differ: 74-90 % across the three eager seeds alone.


@pytest.mark.gpu
@pytest.mark.integration
def test_compiled_cuda_graphs_and_bf16_on_gpu_reach_the_eager_accuracy(
    converging_dataset, tmp_path: Path
) -> None:
    """The GPU fast path (auto = CUDA graphs at batch 32, bf16 autocast) vs eager fp32 on the GPU.

    bf16 rounds far more than float32 reordering: 1 point allowed."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    eager = _run(converging_dataset, tmp_path / "eager", "trainer.device=cuda")
    fast = _run(
        converging_dataset,
        tmp_path / "fast",
        "trainer.device=cuda",
        "trainer.compile=true",
        "trainer.amp=true",
    )
    assert eager.test_metrics["test/acc"] > 0.9
    assert abs(fast.test_metrics["test/acc"] - eager.test_metrics["test/acc"]) <= 0.01


def test_fast_convolutions_train_like_nn_conv1d_and_are_given_back() -> None:
    """The CPU fast path's convolutions: same outputs and (to rounding) gradients as nn.Conv1d, the
    same state dict, plain nn.Conv1d in eval mode and after ``restore_convolutions``."""
    from torch import nn

    from fault_diag.models import get_model
    from fault_diag.training.fastconv import (
        FastConv1d,
        restore_convolutions,
        use_fast_convolutions,
    )

    torch.manual_seed(0)
    ref = get_model("drsn_cw")
    fast = get_model("drsn_cw")
    fast.load_state_dict(ref.state_dict())
    n_stride1 = sum(1 for m in ref.modules() if isinstance(m, nn.Conv1d) and m.stride == (1,))
    assert use_fast_convolutions(fast) == n_stride1 > 0
    assert fast.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(8, 1, 2048)
    y = torch.randint(0, 10, (8,))
    losses = []
    for model in (ref, fast):
        model.train()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=0)  # forward: the same kernel
    for (name, a), b in zip(ref.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)
    restore_convolutions(fast)
    assert not any(type(m) is FastConv1d for m in fast.modules())
    assert sum(type(m) is nn.Conv1d for m in fast.modules()) == sum(
        type(m) is nn.Conv1d for m in ref.modules()
    )


@pytest.mark.integration
def test_bf16_autocast_on_the_cpu_reaches_the_float32_accuracy(
    converging_dataset, tmp_path: Path
) -> None:
    """trainer.amp=true on a CPU with native bf16 vs float32, same seed: within 1 point.

    bf16 keeps 8 bits of mantissa, so the runs part ways after the first steps; what must hold is
    the accuracy they converge to (1 point = ~8 of ~800 test windows)."""
    from fault_diag.training.engine import bf16_supported

    if not bf16_supported(torch.device("cpu")):
        pytest.skip("this CPU has no native bf16 (AVX512-BF16/AMX): trainer.amp is ignored here")
    fp32 = _run(converging_dataset, tmp_path / "fp32")
    bf16 = _run(converging_dataset, tmp_path / "bf16", "trainer.amp=true")
    assert fp32.test_metrics["test/acc"] > 0.9, "the reference run did not converge"
    print(
        f"test acc fp32 {fp32.test_metrics['test/acc']:.4f} bf16 {bf16.test_metrics['test/acc']:.4f}"
    )
    assert bf16.history != fp32.history, "trainer.amp=true changed nothing: autocast not applied"
    assert abs(bf16.test_metrics["test/acc"] - fp32.test_metrics["test/acc"]) <= 0.01


def test_amp_is_refused_with_a_warning_where_bf16_is_not_native(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from fault_diag.training import engine as fast

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with caplog.at_level("WARNING"):
        assert fast.resolve_amp(True, torch.device("cpu")) is False
    assert "trainer.amp=true is ignored on cpu" in caplog.text
    assert fast.resolve_amp(False, torch.device("cpu")) is False
    assert fast.resolve_amp(True, torch.device("cuda")) is True


@pytest.mark.integration
def test_mixed_protocol_members_train_concurrently_as_one_by_one(
    small_dataset, tmp_path: Path
) -> None:
    """The mixed protocol (per-window SNR, kind, clean share) in stacked members: each member draws
    its epoch's noise from its own generator, exactly as train() does."""
    cfgs = compose_members(
        [
            *(a for a in SMALL if not a.startswith("noise=")),
            "noise=mixed",
            "noise.test_kinds=[gaussian,pink]",
            "model=resnet1d",
            "trainer.epochs=2",
            "trainer.lr_milestones=[0.6]",
            "eval.adapt_bn=false",
        ],
        ["trainer.seed=0,1"],
    )
    together = train_concurrent(cfgs, small_dataset)
    for i, (cfg, res) in enumerate(zip(cfgs, together, strict=True)):
        cfg.trainer.resume = False
        cfg.paths.output_dir = str(tmp_path / f"solo{i}")
        alone = train(cfg, small_dataset, tmp_path / f"solo{i}")
        assert res.protocol["noise_protocol"] == "mixed" == alone.protocol["noise_protocol"]
        assert res.protocol["train_distribution"]["clean_fraction"] == 0.25
        for h_c, h_a in zip(res.history, alone.history, strict=True):
            assert math.isclose(h_c["train/loss"], h_a["train/loss"], rel_tol=1e-3), (i, h_c, h_a)
            assert h_c["val/acc"] == h_a["val/acc"]
    # Two seeds draw different noise: their first-epoch losses differ.
    assert together[0].history[0]["train/loss"] != together[1].history[0]["train/loss"]


def test_fingerprint_ignores_data_lenient_false_but_not_lenient_true() -> None:
    """data.lenient (issue 18) is off by default: checkpoints written before it existed resume."""
    cfg = _compose()
    before = cfg.copy()
    with open_dict(before.data):
        del before.data["lenient"]
    assert config_fingerprint(cfg) == legacy_fingerprint(before)
    lenient = _compose("data.lenient=true")  # may drop manifest rows: another fingerprint
    assert config_fingerprint(lenient) != config_fingerprint(cfg)


def test_fd_sweep_keeps_the_old_concurrent_commands_options(tmp_path: Path, capsys) -> None:
    """``python -m fault_diag.training.concurrent --sweep K=V --out DIR`` (the command fd-sweep
    replaced) still means what it meant, with overrides before and after the options."""
    rc = main(
        ["--sweep", "model=drsn_cw,resnet1d", "noise=gaussian", "--out", str(tmp_path), "--dry-run"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "member 1: noise=gaussian model=resnet1d" in out
    assert f"2 members in 2 group(s); folder {tmp_path}" in out
