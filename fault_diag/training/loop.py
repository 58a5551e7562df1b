"""The training loop: device-resident data, noise drawn on the device, model selection on validation.

Protocols (docs/design-notes.md section 3):

- ``matched``: training windows get noise of ``noise.kind`` at ``noise.snr_db`` (redrawn every epoch,
  or drawn once), validation and test use the same kind and SNR with noise fixed by ``noise.seed``.
- ``clean_train``: the model is trained and selected on clean windows (WDCNN's protocol) and then tested
  on a grid of SNRs.

In both, after training the best-on-validation weights are evaluated once on the test split at the
training condition and on every (kind, SNR) of the test grid. The test split is never used to choose
anything.

Reproducibility and resume: the shuffling order and the training noise of epoch ``e`` come from
generators seeded by ``(trainer.seed, e)``, not from a global RNG stream, so a run killed after epoch
``e`` and resumed from its checkpoint continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from fault_diag.config import Config, DataConfig, ModelConfig, NoiseConfig, as_config
from fault_diag.data import WindowedDataset
from fault_diag.metric_names import CONDITION_METRICS, metric_name
from fault_diag.models import get_model
from fault_diag.noise import TrainingNoise, noise_generator
from fault_diag.noise_config import grid_conditions, train_condition
from fault_diag.preprocess import Classifier
from fault_diag.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fault_diag.training.engine import (
    MemberState,
    epoch_metrics,
    make_optimizer,
    make_scheduler,
    member_epoch_inputs,
    run_epoch,
    setup_runtime,
    validate,
)
from fault_diag.training.evaluation import (
    ConditionResult,
    EvaluationReport,
    condition_name,
    evaluate_condition,
    has_batchnorm,
    noisy_test_copies,
)
from fault_diag.training.metrics import per_class_table

log = logging.getLogger(__name__)


def config_fingerprint(cfg: Config | DictConfig) -> str:
    """Hash of everything that changes the training result (not paths, tracking or progress bars)."""
    plain = dataclasses.asdict(as_config(cfg))
    keep = {k: plain[k] for k in ("data", "noise", "model")}
    trainer = dict(plain["trainer"])
    for volatile in ("progress", "resume", "num_threads", "device"):
        trainer.pop(volatile, None)
    if not trainer.get("compile", False):
        # The eager path's fingerprint is what it was before the compiled path existed, so its
        # checkpoints still resume; a compiled run only resumes as a compiled run.
        trainer.pop("compile", None)
        trainer.pop("compile_mode", None)
    keep["trainer"] = trainer
    # data.lenient=false (the default) is how data was always read: leaving it out keeps
    # the fingerprints, and so the resumability, of checkpoints written before it existed
    keep["data"] = {
        k: v for k, v in keep["data"].items() if k != "root" and not (k == "lenient" and v is False)
    }
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    """Everything a tracker or a report needs from one finished training run."""

    model: Classifier
    class_names: list[str]
    history: list[dict[str, float]]
    best_epoch: int
    best_val_acc: float
    test_metrics: dict[str, float]
    grid_accuracy: dict[tuple[str, float], float]
    confusion: np.ndarray
    per_class: pd.DataFrame
    thresholds: dict[str, Any] | None
    protocol: dict[str, Any]
    seconds: float
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)  # seconds per phase
    evaluation: EvaluationReport = field(default_factory=EvaluationReport)


def build_classifier(model: ModelConfig, num_classes: int, in_channels: int) -> Classifier:
    """The model named by ``model.name`` behind per-window standardisation."""
    kwargs = {str(k): v for k, v in (model.params or {}).items()}
    network = get_model(model.name, num_classes=num_classes, in_channels=in_channels, **kwargs)
    return Classifier(network)


EpochCallback = Callable[[int, dict[str, float]], None]


def train(
    cfg: Config | DictConfig,
    dataset: WindowedDataset,
    output_dir: Path,
    *,
    on_epoch_end: EpochCallback | None = None,
    checkpoint_extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on ``dataset`` under ``cfg.noise``'s protocol; resume when a checkpoint exists.

    ``checkpoint_extra`` is stored in the checkpoint (e.g. the tracking run id, so a resumed run logs
    into the same run); read it back with :func:`read_checkpoint_extra`.
    """
    t0 = time.perf_counter()
    config = as_config(cfg)
    t = config.trainer
    runtime = setup_runtime(t)
    torch.manual_seed(t.seed)  # weight initialisation
    data = prepare_split_tensors(config, dataset, runtime.device)
    model = build_classifier(config.model, len(dataset.class_names), int(data.x_train.shape[1]))
    model = model.to(runtime.device)
    opt = make_optimizer(t, model.parameters())
    sched = make_scheduler(t, opt)
    member = MemberState.start(model, t.select)
    ckpt = Checkpoint(output_dir, config_fingerprint(config), checkpoint_extra)
    start_epoch = ckpt.resume(model, opt, sched, member, runtime.device) if t.resume else 0

    n_train = int(data.x_train.shape[0])
    step = runtime.step(model, opt, t.batch_size)
    bar = EpochBar(config, start_epoch, batches=-(-n_train // t.batch_size))
    t_epochs = time.perf_counter()
    try:
        for epoch in range(start_epoch, t.epochs):
            if member.out_of_patience(t.early_stopping_patience):
                break
            model.train()
            x_epoch, y_epoch = member_epoch_inputs(
                data.x_train,
                data.y_train,
                data.train_noise,
                redraw=data.redraw,
                seed=t.seed,
                epoch=epoch,
                batch_size=t.batch_size,
            )
            loss_sum, correct = run_epoch(step, x_epoch, y_epoch, t.batch_size, bar.on_batch)
            del x_epoch, y_epoch
            sched.step()
            val_loss, val_acc, _ = validate(
                model, data.x_val, data.y_val, t.eval_batch_size, runtime.amp
            )
            metrics = {
                **epoch_metrics(loss_sum, correct, n_train)[0],
                "val/loss": val_loss,
                "val/acc": val_acc,
                "lr": opt.param_groups[0]["lr"],
            }
            member.end_epoch(epoch + 1, metrics, model)
            ckpt.save(epoch + 1, model, opt, sched, member)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, metrics)
            bar.epoch_done(epoch + 1, metrics)
    finally:
        bar.close()
        step.close()
    epochs_s = time.perf_counter() - t_epochs
    result = finish_training(config, dataset, model, data, member, amp=runtime.amp, t0=t0)
    result.timing = {"epochs_s": epochs_s, "test_s": result.seconds - (t_epochs - t0) - epochs_s}
    return result


class Checkpoint:
    """``<output_dir>/checkpoints/last.pt``: written after every epoch, read back on a resume,
    refused when it was written by another configuration (its fingerprint)."""

    def __init__(self, output_dir: Path, fingerprint: str, extra: dict[str, Any] | None) -> None:
        self.path = output_dir / "checkpoints" / "last.pt"
        self.fingerprint = fingerprint
        self.extra = dict(extra or {})

    def resume(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler,
        member: MemberState,
        device: torch.device,
    ) -> int:
        """Load the checkpoint into the objects when it exists; returns the epochs it holds."""
        if not self.path.exists():
            return 0
        state = load_checkpoint(self.path, map_location=device)
        _check_fingerprint(self.path, state.get("fingerprint"), self.fingerprint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        member.load_state_dict(state)
        log.info("resumed from %s after epoch %d", self.path, int(state["epoch"]))
        return int(state["epoch"])

    def save(
        self,
        epoch: int,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler,
        member: MemberState,
    ) -> None:
        """Everything a resume after ``epoch`` (1-based) needs, atomically."""
        save_checkpoint(
            self.path,
            {
                "fingerprint": self.fingerprint,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                **member.state_dict(),
                "extra": self.extra,
            },
        )


class EpochBar:
    """One progress bar over every batch of the run, the epoch in its label (an epoch of a large
    setup is minutes on a CPU); nothing with ``trainer.progress=false``."""

    def __init__(self, config: Config, start_epoch: int, batches: int) -> None:
        self.name, self.epochs = config.model.name, config.trainer.epochs
        self.bar: Any = None
        self.on_batch: Callable[[], None] | None = None
        if config.trainer.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.epochs * batches,
                initial=start_epoch * batches,
                desc=f"{self.name} epoch {start_epoch + 1}/{self.epochs}",
                unit="batch",
            )
            self.on_batch = self.bar.update

    def epoch_done(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_description(
                f"{self.name} epoch {min(epoch + 1, self.epochs)}/{self.epochs}"
            )
            self.bar.set_postfix(
                loss=f"{metrics['train/loss']:.3f}", val_acc=f"{metrics['val/acc']:.3f}"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_fingerprint(path: Path, found: object, expected: str) -> None:
    if found != expected:
        raise CheckpointError(
            f"checkpoint {path} was written by a different configuration "
            f"(fingerprint {found} != {expected}); "
            "use another output directory or trainer.resume=false"
        )


@dataclass
class SplitTensors:
    """The three splits on the training device, with the validation noise of the training condition."""

    x_train: Tensor  # raw; noised once when the training noise is fixed (no redraw)
    y_train: Tensor
    x_val: Tensor  # noised at the training condition (fixed by noise.seed)
    y_val: Tensor
    x_test_clean: Tensor
    y_test: Tensor
    matched: bool  # True when training windows get noise (matched with a kind, or mixed)
    train_kind: str  # the protocol's training kind: a noise kind, "none" or "mixed"
    train_snr: float | None
    train_noise: TrainingNoise | None = None  # how training windows are noised (None: clean)
    band: tuple[float, float] | None = None  # noise band, fractions of the sampling rate
    redraw: bool = True  # training noise redrawn every epoch


def noise_band(data: DataConfig, noise: NoiseConfig) -> tuple[float, float] | None:
    """The band noise is confined to: ``data.band_hz`` / ``data.fs_hz`` with ``noise.band=data``."""
    if data.band_hz is None or noise.band != "data":
        return None
    fs = float(data.fs_hz)
    return float(data.band_hz[0]) / fs, float(data.band_hz[1]) / fs


def training_noise(noise: NoiseConfig, band: tuple[float, float] | None) -> TrainingNoise | None:
    """The :class:`TrainingNoise` of ``noise``'s protocol, or None for clean training."""
    nz = noise
    if nz.protocol == "mixed":
        kinds = list(nz.train_kinds if nz.train_kinds else nz.test_kinds)
        weights = nz.train_kind_weights
        assert nz.train_snr_db_range is not None  # validate_noise_config requires it
        low, high = (float(v) for v in nz.train_snr_db_range)
        return TrainingNoise(
            kinds,
            (low, high),
            weights=None if weights is None else [float(w) for w in weights],
            clean_fraction=float(nz.clean_fraction),
            band=band,
        )
    if nz.protocol == "matched" and nz.kind != "none":
        assert nz.snr_db is not None  # validate_noise_config requires it
        snr = float(nz.snr_db)
        return TrainingNoise([str(nz.kind)], (snr, snr), band=band)
    return None


def eval_copies(
    data: SplitTensors,
    x_clean: Tensor,
    kind: str,
    snr_db: float | None,
    seed: int,
    draws: int,
    split: str,
) -> list[Tensor]:
    """``draws`` noisy copies of an evaluation split under one condition, drawn on the CPU.

    ``kind="mixed"``: each copy is one fixed draw of the mixed training distribution.
    """
    if kind != "mixed":
        return noisy_test_copies(x_clean, kind, snr_db, seed, draws, split=split, band=data.band)
    assert data.train_noise is not None
    x_cpu = x_clean.detach().cpu()
    out = []
    for d in range(int(draws)):
        parts: list[object] = ["mixed", split] + (["draw", d] if d else [])
        gen = noise_generator(seed, *parts, device="cpu")
        out.append(data.train_noise.apply(x_cpu, gen).to(x_clean.device))
    return out


def prepare_split_tensors(
    config: Config,
    dataset: WindowedDataset,
    device: torch.device,
    shared: dict[str, Tensor] | None = None,
) -> SplitTensors:
    """Move the splits to ``device`` and apply the fixed noises of ``cfg.noise``'s protocol.

    Draws only from explicitly seeded generators, never from torch's global generator, so weight
    initialisation (seeded just before) does not depend on it. ``shared``: a dict that keeps the
    clean device tensors between calls (concurrent members share one copy; nothing mutates them).
    Validation noise is drawn on the CPU (one fixed draw of the training condition).
    """
    t, nz = config.trainer, config.noise
    raw = shared if shared is not None else {}
    if not raw:
        for name in ("train", "val", "test"):
            x_np, y_np = dataset.split(name)
            if len(x_np) == 0:
                raise ValueError(
                    f"the {name} split of the dataset is empty; check data.split_fractions"
                )
            # A copy with canonical strides: a size-1 axis with an odd stride is "contiguous" to
            # numpy and torch but selects another oneDNN convolution kernel (other rounding).
            raw[f"x_{name}"] = torch.from_numpy(np.array(x_np, order="C", copy=True)).to(device)
            raw[f"y_{name}"] = torch.from_numpy(y_np).to(device)
    x_train, y_train = raw["x_train"], raw["y_train"]
    x_val_clean, y_val = raw["x_val"], raw["y_val"]
    x_test_clean, y_test = raw["x_test"], raw["y_test"]

    band = noise_band(config.data, nz)
    noise = training_noise(nz, band)
    matched = noise is not None
    trained_on = train_condition(nz)  # ("mixed", None), ("none", None) or (kind, snr_db)
    train_kind = trained_on.kind
    train_snr = None if trained_on.snr_db is None else float(trained_on.snr_db)
    data = SplitTensors(
        x_train,
        y_train,
        x_val_clean,
        y_val,
        x_test_clean,
        y_test,
        matched,
        train_kind,
        train_snr,
        train_noise=noise,
        band=band,
        redraw=bool(nz.redraw_each_epoch),
    )
    data.x_val = eval_copies(data, x_val_clean, train_kind, train_snr, int(nz.seed), 1, "val")[0]
    if noise is not None and not data.redraw:
        gen = noise_generator(t.seed, "train-fixed", device=device)
        data.x_train = noise.apply(x_train, gen)
    return data


def _healthy_index(dataset: WindowedDataset) -> int | None:
    healthy = getattr(dataset, "healthy_class", None)
    if healthy is None:
        healthy = (dataset.protocol or {}).get("healthy_class")
    names = list(dataset.class_names)
    return names.index(healthy) if healthy in names else None


def evaluate_all(
    config: Config,
    model: nn.Module,
    data: SplitTensors,
    class_names: list[str],
    healthy_index: int | None,
    amp: bool = False,
) -> EvaluationReport:
    """Score ``model`` once on the test split: the training condition, clean, every grid point;
    each also after AdaBN when ``eval.adapt_bn`` (and the model has BatchNorm)."""
    nz, t = config.noise, config.trainer
    draws = int(nz.test_draws)
    seed = int(nz.seed)
    adapt = bool(config.eval.adapt_bn)
    report = EvaluationReport(
        labels=data.y_test.cpu().numpy(),
        class_names=list(class_names),
        healthy_class=None if healthy_index is None else class_names[healthy_index],
        test_draws=draws,
    )
    if adapt and not has_batchnorm(model):
        report.adabn_skipped = f"{config.model.name} has no BatchNorm layer: AdaBN does not apply"
        adapt = False
    conditions: list[tuple[str, str, float | None]] = [
        ("train", data.train_kind, data.train_snr),
        ("clean", "none", None),
    ]
    conditions += [
        (condition_name(c.kind, float(c.snr_db)), c.kind, float(c.snr_db))
        for c in grid_conditions(nz)
        if c.snr_db is not None
    ]
    variants = [False, True] if adapt else [False]
    # Each condition's noisy copies are drawn once and scored by every variant; a training
    # condition that is also clean or a grid point is scored once and named twice.
    done: dict[tuple[str, float | None, bool], ConditionResult] = {}
    bar = None
    if config.trainer.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(conditions), desc="test grid", unit="condition")
    for name, kind, snr in conditions:
        copies = None
        for adabn in variants:
            key = (kind, snr, adabn)
            label = condition_name(kind, snr, train=name == "train", adabn=adabn)
            if key not in done:
                if copies is None:
                    copies = eval_copies(data, data.x_test_clean, kind, snr, seed, draws, "test")
                done[key] = evaluate_condition(
                    model,
                    copies,
                    data.y_test,
                    name=label,
                    kind=kind,
                    snr_db=snr,
                    num_classes=len(class_names),
                    healthy_index=healthy_index,
                    batch_size=int(t.eval_batch_size),
                    amp=amp,
                    adabn=adabn,
                )
            report.conditions.append(dataclasses.replace(done[key], name=label))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    # Plain results first, then AdaBN: the order of the printout and of window_scores.npz.
    report.conditions.sort(key=lambda c: c.adabn)
    return report


def test_metrics_of(report: EvaluationReport) -> dict[str, float]:
    """MLflow metrics of an :class:`EvaluationReport` (names from :mod:`fault_diag.metric_names`)."""
    out: dict[str, float] = {}
    for c in report.conditions:
        train = c.name.split("/")[0] == "train"
        clean = not train and c.kind == "none"
        for metric in CONDITION_METRICS:
            name = metric_name(
                metric,
                None if train or clean else c.kind,
                None if train or clean else c.snr_db,
                clean=clean,
                adabn=c.adabn,
            )
            out[name] = c.metrics[metric]
        if train and not c.adabn:
            out["test/loss"] = c.metrics["loss"]
    return out


def finish_training(
    config: Config,
    dataset: WindowedDataset,
    model: Classifier,
    data: SplitTensors,
    member: MemberState,
    *,
    amp: bool,
    t0: float,
) -> TrainResult:
    """Load the selected weights, test once (training condition, clean, grid; plain and AdaBN)."""
    nz = config.noise
    selector = member.selector
    class_names = list(dataset.class_names)
    # The test split is touched once, with the weights chosen on validation.
    model.load_state_dict(selector.best_state)
    report = evaluate_all(config, model, data, class_names, _healthy_index(dataset), amp)
    train_cond = report.get("train")
    assert train_cond is not None
    test_metrics = test_metrics_of(report)
    grid: dict[tuple[str, float], float] = {
        (c.kind, float(c.snr_db)): c.metrics["acc"]
        for c in report.conditions
        if not c.adabn and c.snr_db is not None and not c.name.startswith("train")
    }
    x_thr = eval_copies(
        data, data.x_test_clean, data.train_kind, data.train_snr, int(nz.seed), 1, "test"
    )[0]
    thresholds = _threshold_summary(model, x_thr)
    noise = data.train_noise
    protocol = {
        "noise_protocol": nz.protocol,
        "train_noise": data.train_kind,
        "train_snr_db": data.train_snr,
        "redraw_each_epoch": bool(nz.redraw_each_epoch),
        "test_noise_seed": int(nz.seed),
        "test_draws": int(nz.test_draws),
        "noise_band": nz.band,
        "noise_band_hz": None
        if data.band is None
        else [data.band[0] * float(config.data.fs_hz), data.band[1] * float(config.data.fs_hz)],
        "model_selection": selector.describe(),
        "select": selector.rule,
        "adapt_bn": any(c.adabn for c in report.conditions),
        "healthy_class": report.healthy_class,
        "split": dataset.protocol,
    }
    if nz.protocol == "mixed" and noise is not None:
        protocol["train_distribution"] = noise.describe()
    return TrainResult(
        model=model.cpu().eval(),
        class_names=class_names,
        history=member.history,
        best_epoch=selector.best_epoch,
        best_val_acc=selector.best_val_acc,
        test_metrics=test_metrics,
        grid_accuracy=grid,
        confusion=train_cond.confusion,
        per_class=per_class_table(train_cond.confusion, class_names),
        thresholds=thresholds,
        protocol=protocol,
        seconds=time.perf_counter() - t0,
        stopped_early=member.stopped_early,
        evaluation=report,
    )


def _threshold_summary(model: Classifier, x: Tensor) -> dict[str, Any] | None:
    """Per-unit mean learned threshold of a DRSN model on ``x`` (None for models without thresholds)."""
    from fault_diag.models import capture_thresholds

    with torch.no_grad(), capture_thresholds(model) as store:
        model.eval()
        model(x[:512])
    if not store:
        return None
    return {name: float(v.float().mean()) for name, v in store.items()}


def check_resumable(cfg: Config | DictConfig, output_dir: Path) -> None:
    """Raise :class:`CheckpointError` now when ``output_dir`` holds a checkpoint of another
    configuration (the check :func:`train` makes), so that the caller refuses the run before it
    touches anything else, such as the tracking run the earlier job recorded."""
    config = as_config(cfg)
    ckpt_path = output_dir / "checkpoints" / "last.pt"
    if not (config.trainer.resume and ckpt_path.exists()):
        return
    _check_fingerprint(
        ckpt_path, load_checkpoint(ckpt_path).get("fingerprint"), config_fingerprint(config)
    )


def read_checkpoint_extra(output_dir: Path) -> dict[str, Any]:
    """The ``checkpoint_extra`` stored by :func:`train` in ``output_dir``'s last checkpoint, or {}."""
    path = output_dir / "checkpoints" / "last.pt"
    if not path.exists():
        return {}
    try:
        return dict(load_checkpoint(path).get("extra", {}))
    except CheckpointError:
        return {}
