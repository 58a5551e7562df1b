#!/usr/bin/env python
"""fault-diag benchmark suite: one run, one JSON file, one Markdown report (``make bench``).

Parts (``--only`` selects, comma-separated; default all):

- ``data``: dataset build, cold (empty cache) and warm (from the cache), via scripts/bench_data.py.
- ``noise``: noise generation per kind, raw draw and exact-SNR ``add_noise`` (windows/s), via
  scripts/bench_noise.py's timer.
- ``train``: training throughput (samples/s; forward + backward + optimizer step, and the input
  pipeline) of every registered model at batch 128 and 1024, for
  ``reference``  a plain eager loop written here the way most published code trains: a torch
  DataLoader over a TensorDataset, Gaussian noise at the SNR added per batch in numpy,
  ``loss.item()`` per batch;
  ``eager``      the project's engine (fault_diag.training.engine, what loop.train and the
                 concurrent trainer run): whole-epoch inputs and noise on the device, one step;
  ``eager_bf16`` the same with bf16 autocast (``trainer.amp=true``), on a CPU with native bf16;
  ``compiled``   the engine's step with torch.compile (``trainer.compile=true``);
  ``concurrent`` K sweep members stacked with vmap (the engine's stacked step), all samples;
  each as a ratio to ``reference`` (same network, batch, data, noise kind and SNR).
- ``infer``: inference latency per window (batch 1) and throughput (batch 256) of the exported
  model: torch.export (.pt2, reloaded) and ONNX (torch.onnx.export dynamo=True,
  external_data=False) in onnxruntime on the CPU, with eager torch for comparison.
- ``sweep``: wall time of the standard sweep, 3 noise kinds x 11 SNRs (-10..+10 dB) x DRSN-CW and
  ResNet on cwru10, at ``--sweep-epochs`` epochs, one member at a time (loop.train) and concurrently
  (train_sweep). By default one noise kind is measured and the 3-kind figure is extrapolated (x3,
  labelled so); ``--sweep-full`` measures all 66 runs.
- ``profile``: torch.profiler breakdown of one DRSN-CW training step (what limits the CPU path).

Timings alternate between the variants round by round (A B C A B C ...) and report medians, so a
change in the machine's load hits all variants alike; the 1-minute load average is recorded at the
start and end, and ``--wait-load`` waits (up to ``--wait-max-s``) for a quiet machine first.

    FAULT_DIAG_DATA_DIR=../shared/data/cwru python scripts/bench.py            # everything
    python scripts/bench.py --quick                                           # a few minutes
    python scripts/bench.py --only train,infer --threads 1 --out outputs/bench
    python scripts/bench.py --device cuda --only train,sweep                  # on a GPU machine
    python scripts/bench.py --update-docs docs/benchmarks.md                  # rewrite the tables

Writes ``<out>/bench.json`` and ``<out>/bench.md`` (atomically); ``--update-docs`` replaces the
generated block of that Markdown file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))  # bench_data.py and bench_noise.py, reused
sys.path.insert(0, str(SCRIPTS.parent))

PARTS = ("data", "noise", "train", "infer", "sweep", "profile")
SWEEP_KINDS = ("gaussian", "pink", "laplacian")
SWEEP_SNRS_DB = tuple(range(-10, 11, 2))
SWEEP_MODELS = ("drsn_cw", "resnet1d")
DOC_START = "<!-- bench:start -->"
DOC_END = "<!-- bench:end -->"


# ------------------------------------------------------------------------------------------------
# machine, load, output


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU model and cores, GPU model, versions, thread count."""
    from bench_noise import cpu_model

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:  # pragma: no cover - optional
        ort_version = None
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    if gpu is None and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpu_model": gpu or "none",
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }


def loadavg() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the OS has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def wait_for_quiet(threshold: float, max_s: float) -> dict[str, Any]:
    """Poll the 1-minute load average until it is below ``threshold`` or ``max_s`` have passed."""
    t0 = time.monotonic()
    while True:
        load = loadavg()
        if load is None or load[0] < threshold:
            return {"threshold": threshold, "waited_s": time.monotonic() - t0, "met": True}
        if time.monotonic() - t0 >= max_s:
            return {"threshold": threshold, "waited_s": time.monotonic() - t0, "met": False}
        print(f"  load average {load[0]:.2f} >= {threshold}: waiting", file=sys.stderr, flush=True)
        time.sleep(15)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def restored_env(*names: str) -> Iterator[None]:
    """Restore environment variables that a reused benchmark function changes."""
    saved = {n: os.environ.get(n) for n in names}
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# data and noise (reusing scripts/bench_data.py and scripts/bench_noise.py)


def have_recordings() -> bool:
    """True when CWRU .mat files are where the project reads them ($FAULT_DIAG_DATA_DIR or data/)."""
    from fault_diag.paths import recordings_dir

    folder = recordings_dir()
    return folder.is_dir() and any(folder.glob("*.mat"))


NO_DATA = "no CWRU recordings: set FAULT_DIAG_DATA_DIR or run `make data`"


def part_data(args: argparse.Namespace) -> dict[str, Any]:
    """Cold and warm dataset build of cwru10 (bench_data.bench)."""
    if not have_recordings():
        return {"skipped": NO_DATA}
    from bench_data import bench

    with restored_env("FAULT_DIAG_CACHE_DIR"):
        return bench("cwru10", 1 if args.quick else 3)


def part_noise(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """make_noise / add_noise windows per second for each kind (bench_noise.time_it)."""
    from bench_noise import time_it

    from fault_diag.noise import NOISE_KINDS, add_noise, make_noise, noise_generator

    windows = 2000 if args.quick else 10_000
    repeats = 3 if args.quick else 7
    shape = (windows, 1, 2048)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    rows = []
    for kind in NOISE_KINDS:
        gen = noise_generator(0, "bench", kind, device=device)
        for op, fn in (
            ("make_noise", lambda k=kind, g=gen: make_noise(k, shape, device=device, generator=g)),
            ("add_noise", lambda k=kind, g=gen: add_noise(x, 0.0, k, generator=g)),
        ):
            wall, cpu = time_it(fn, device, repeats)
            med = statistics.median(wall)
            rows.append(
                {
                    "kind": kind,
                    "op": op,
                    "median_s": med,
                    "median_cpu_s": statistics.median(cpu),
                    "windows_per_s": windows / med,
                    "msamples_per_s": windows * 2048 / med / 1e6,
                }
            )
    return {"windows": windows, "length": 2048, "repeats": repeats, "rows": rows}


# ------------------------------------------------------------------------------------------------
# training throughput


def training_windows(n: int, length: int = 2048) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` raw windows + labels: the real cwru10 training split when available, else synthetic."""
    if have_recordings():
        try:
            from fault_diag.data import DataConfig, build_dataset

            x, y = build_dataset(DataConfig(setup="cwru10")).split("train")
            reps = -(-n // len(x))
            x, y = np.concatenate([x] * reps)[:n], np.concatenate([y] * reps)[:n]
            return np.ascontiguousarray(x), np.ascontiguousarray(y), "cwru10 training windows"
        except Exception as exc:  # noqa: BLE001 - fall back, and say so in the report
            log(f"  real data unavailable ({exc}); synthetic windows instead")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((n, 1, length)) * 0.2).astype(np.float32)
    return x, (np.arange(n) % 10).astype(np.int64), f"synthetic ({NO_DATA})"


def _model(name: str, device: torch.device, seed: int = 0) -> torch.nn.Module:
    from fault_diag.models import get_model
    from fault_diag.preprocess import Classifier

    torch.manual_seed(seed)
    return Classifier(get_model(name, num_classes=10, in_channels=1)).to(device)


def _sgd(params: Any) -> torch.optim.Optimizer:
    # The project's default optimiser (DRSN paper): SGD, momentum 0.9, weight decay 1e-4.
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)


class Variant:
    """A training path; ``epoch()`` runs one pass over the benchmark's windows."""

    samples_per_epoch: int

    def epoch(self) -> None:
        raise NotImplementedError


class PeerReference(Variant):
    """How most published CWRU code trains: DataLoader over a TensorDataset, numpy noise per batch."""

    def __init__(self, name, x, y, batch, device, snr_db=0.0):
        from torch.utils.data import DataLoader, TensorDataset

        self.model, self.device, self.snr_db = _model(name, device), device, snr_db
        self.opt = _sgd(self.model.parameters())
        ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        self.loader = DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True)
        self.rng = np.random.default_rng(0)
        self.samples_per_epoch = (len(x) // batch) * batch

    def epoch(self) -> None:
        self.model.train()
        running = 0.0
        for xb, yb in self.loader:
            xn = xb.numpy()
            # Gaussian noise at the SNR, per window, in numpy on the host (exact power scaling).
            p_signal = np.mean(xn**2, axis=-1, keepdims=True)
            noise = self.rng.standard_normal(xn.shape, dtype=np.float32)
            noise *= np.sqrt(
                p_signal / 10 ** (self.snr_db / 10) / np.mean(noise**2, axis=-1, keepdims=True)
            )
            xb = torch.from_numpy(xn + noise).to(self.device)
            yb = yb.to(self.device)
            loss = F.cross_entropy(self.model(xb), yb)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            running += loss.item()  # the usual per-batch logging: one host sync per batch


class ProjectEngine(Variant):
    """fault_diag.training.engine, the path every trainer runs: epoch inputs + run_epoch(TrainStep);
    ``compile`` and ``amp`` are the step's switches (trainer.compile, trainer.amp)."""

    def __init__(self, name, x, y, batch, device, snr_db=0.0, compile=False, amp=False):
        from fault_diag.training.engine import TrainStep

        self.model, self.device, self.batch, self.snr_db = (
            _model(name, device),
            device,
            batch,
            snr_db,
        )
        self.opt = _sgd(self.model.parameters())
        self.step = TrainStep(
            self.model, self.opt, device=device, amp=amp, compile=compile, batch_size=batch
        )
        self.x, self.y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        self.samples_per_epoch = len(x)
        self.n_epoch = 0

    def epoch(self) -> None:
        from fault_diag.noise import noise_generator
        from fault_diag.training.engine import epoch_inputs, epoch_order, run_epoch

        self.model.train()
        n, dev = self.samples_per_epoch, self.device
        order = epoch_order(0, self.n_epoch, n, dev)
        gen = noise_generator(0, "train", self.n_epoch, device=dev)
        self.n_epoch += 1
        x_ep, y_ep = epoch_inputs(self.x, self.y, order, self.batch, "gaussian", self.snr_db, gen)
        loss_sum, _ = run_epoch(self.step, x_ep, y_ep, self.batch)
        loss_sum.item()


class ProjectConcurrent(Variant):
    """K members stacked (the engine's TrainStep.stacked, as the concurrent trainer runs them);
    counts all K x samples."""

    def __init__(self, name, x, y, batch, device, members, snr_db=0.0, compile=False, amp=False):
        import copy

        from torch.func import stack_module_state

        from fault_diag.training.engine import TrainStep

        models = [_model(name, device, seed=k) for k in range(members)]
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta").train()
        self.opt = _sgd(list(params.values()))
        self.step = TrainStep.stacked(
            base,
            params,
            buffers,
            self.opt,
            device=device,
            amp=amp,
            compile=compile,
            batch_size=batch,
        )
        self.k, self.device, self.batch, self.snr_db = members, device, batch, snr_db
        self.x, self.y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        self.n = len(x)
        self.samples_per_epoch = members * len(x)
        self.n_epoch = 0

    def epoch(self) -> None:
        from fault_diag.noise import noise_generator
        from fault_diag.training.engine import epoch_inputs, epoch_order

        dev, n = self.device, self.n
        xs, ys = [], []
        for k in range(self.k):  # each member: own order and noise (SNRs spread over the grid)
            order = epoch_order(k, self.n_epoch, n, dev)
            gen = noise_generator(k, "train", self.n_epoch, device=dev)
            snr = SWEEP_SNRS_DB[k % len(SWEEP_SNRS_DB)]
            xe, ye = epoch_inputs(self.x, self.y, order, self.batch, "gaussian", snr, gen)
            xs.append(xe)
            ys.append(ye)
        self.n_epoch += 1
        x_ep, y_ep = torch.stack(xs), torch.stack(ys)
        del xs, ys
        from fault_diag.training.engine import run_epoch

        loss_sum, _ = run_epoch(self.step, x_ep, y_ep, self.batch)
        loss_sum.sum().item()


def time_variants(
    variants: dict[str, Variant], device: torch.device, rounds: int
) -> dict[str, dict[str, Any]]:
    """Warm each variant up (one epoch: compilation happens here), then alternate timed epochs.

    A variant that fails (e.g. a compiler error on a new GPU stack) is reported with its error and
    left out of the rounds, so one broken path does not hide the others' figures.
    """
    out: dict[str, dict[str, Any]] = {}
    live: dict[str, Variant] = {}
    for name, v in variants.items():
        t0 = time.perf_counter()
        try:
            v.epoch()
            sync(device)
        except Exception as exc:  # noqa: BLE001 - recorded in the report
            log(f"    {name} failed: {exc!r}"[:400])
            out[name] = {"error": repr(exc)[:2000]}
            continue
        out[name] = {"warmup_s": time.perf_counter() - t0, "wall": [], "cpu": []}
        live[name] = v
    for _ in range(rounds):
        for name, v in live.items():
            c0, t0 = time.process_time(), time.perf_counter()
            v.epoch()
            sync(device)
            out[name]["wall"].append(v.samples_per_epoch / (time.perf_counter() - t0))
            out[name]["cpu"].append(v.samples_per_epoch / max(time.process_time() - c0, 1e-9))
    for name, v in live.items():
        r = out[name]
        r["samples_per_s"] = statistics.median(r["wall"])
        r["samples_per_cpu_s"] = statistics.median(r["cpu"])
        r["samples_per_epoch"] = v.samples_per_epoch
    return out


def part_train(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Samples/s of every model and batch size, per training path, and ratios to the reference."""
    from fault_diag.models import list_models
    from fault_diag.training.engine import bf16_supported

    models = list_models() if args.models == "all" else args.models.split(",")
    compile_models = (
        models if args.compile_models == "all" else [m for m in args.compile_models.split(",") if m]
    )
    concurrent_models = [m for m in SWEEP_MODELS if m in models]
    on_gpu = device.type == "cuda"
    rows = []
    source = ""
    plan = [(batch, models) for batch in args.batch_sizes]
    if not on_gpu and not args.quick and "drsn_cw" in models and args.members > 1:
        # Where stacking pays on a CPU: small batches (K x 32 = 128 windows per stacked step).
        plan.append((32, ["drsn_cw"]))
    for batch, batch_models in plan:
        steps = args.steps or (40 if on_gpu else (8 if batch <= 256 else 2))
        if batch < 128 and not args.steps:
            steps = 8 * 128 // batch
        x, y, source = training_windows(batch * steps)
        for name in batch_models:
            log(f"  train {name} batch {batch}")
            variants: dict[str, Variant] = {
                "reference": PeerReference(name, x, y, batch, device),
                "eager": ProjectEngine(name, x, y, batch, device),
            }
            if not on_gpu and bf16_supported(device):
                variants["eager_bf16"] = ProjectEngine(name, x, y, batch, device, amp=True)
            if name in compile_models:
                variants["compiled"] = ProjectEngine(
                    name, x, y, batch, device, compile=True, amp=args.amp
                )
            if name in concurrent_models and args.members > 1:
                variants["concurrent"] = ProjectConcurrent(name, x, y, batch, device, args.members)
                if on_gpu and name in compile_models:
                    variants["concurrent_compiled"] = ProjectConcurrent(
                        name, x, y, batch, device, args.members, compile=True, amp=args.amp
                    )
            timed = time_variants(variants, device, args.rounds)
            ref = timed["reference"].get("samples_per_s", float("nan"))
            for vname, r in timed.items():
                if "error" in r:
                    rows.append({"model": name, "batch": batch, "variant": vname, **r})
                    continue
                rows.append(
                    {
                        "model": name,
                        "batch": batch,
                        "variant": vname,
                        "samples_per_s": r["samples_per_s"],
                        "samples_per_cpu_s": r["samples_per_cpu_s"],
                        "ratio_to_reference": r["samples_per_s"] / ref,
                        "warmup_s": r["warmup_s"],
                        "rounds_samples_per_s": r["wall"],
                        "samples_per_epoch": r["samples_per_epoch"],
                    }
                )
            del variants
    return {
        "data": source,
        "noise": "gaussian, 0 dB (reference: numpy; project: torch on the device)",
        "optimizer": "SGD momentum 0.9, weight decay 1e-4",
        "rounds": args.rounds,
        "concurrent_members": args.members,
        "amp": bool(args.amp and bf16_supported(device)),
        "cpu_bf16_native": bool(not on_gpu and bf16_supported(device)),
        "rows": rows,
    }


# ------------------------------------------------------------------------------------------------
# inference of the exported model


def _latency(fn: Callable[[], Any], n: int) -> list[float]:
    for _ in range(max(3, n // 10)):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _ort_run(sess: Any, x: torch.Tensor) -> np.ndarray:
    return sess.run(None, {"x": x.numpy()})[0]


def part_infer(args: argparse.Namespace) -> dict[str, Any]:
    """Latency (batch 1) and throughput (batch 256) of eager torch, pt2 and ONNX Runtime on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:  # e.g. the offline GPU machines: time torch and pt2 only
        ort = None
    from fault_diag.models import get_model
    from fault_diag.preprocess import Classifier

    rows = []
    n_lat = 50 if args.quick else 300
    n_thr = 3 if args.quick else 10
    batch = 256
    for name in args.infer_models.split(","):
        log(f"  infer {name}")
        torch.manual_seed(0)
        model = Classifier(get_model(name, num_classes=10, in_channels=1)).eval()
        example = (torch.randn(2, 1, 2048),)
        dyn = ({0: torch.export.Dim("batch", min=1, max=65536)},)
        x1 = torch.randn(1, 1, 2048)
        xb = torch.randn(batch, 1, 2048)
        with tempfile.TemporaryDirectory(prefix="fd-bench-") as tmp:
            t0 = time.perf_counter()
            ep = torch.export.export(model, example, dynamic_shapes=dyn)
            pt2_path = Path(tmp) / f"{name}.pt2"
            torch.export.save(ep, pt2_path)
            pt2 = torch.export.load(pt2_path).module()
            export_pt2_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            onnx_path = Path(tmp) / f"{name}.onnx"
            torch.onnx.export(
                model,
                example,
                str(onnx_path),
                dynamo=True,
                external_data=False,
                dynamic_shapes=dyn,
                input_names=["x"],
                output_names=["logits"],
            )
            export_onnx_s = time.perf_counter() - t0
            onnx_bytes = onnx_path.stat().st_size
            with torch.inference_mode():
                ref1, refb = model(x1).numpy(), model(xb).numpy()
            runners: dict[str, Callable[[torch.Tensor], Any]] = {
                "torch eager": model,
                "pt2 (torch.export)": pt2,
            }
            if ort is not None:
                so = ort.SessionOptions()
                so.intra_op_num_threads = args.threads
                so.inter_op_num_threads = 1
                sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
                runners["onnxruntime CPU"] = functools.partial(_ort_run, sess)
            for rname, run in runners.items():
                with torch.inference_mode():
                    out1 = np.asarray(run(x1))
                    outb = np.asarray(run(xb))
                    lat = _latency(functools.partial(run, x1), n_lat)
                    thr = _latency(functools.partial(run, xb), n_thr)
                rows.append(
                    {
                        "model": name,
                        "runtime": rname,
                        "latency_ms_median": statistics.median(lat) * 1e3,
                        "latency_ms_p90": float(np.percentile(lat, 90)) * 1e3,
                        "throughput_windows_per_s": batch / statistics.median(thr),
                        "max_abs_diff_vs_eager": float(
                            max(np.abs(out1 - ref1).max(), np.abs(outb - refb).max())
                        ),
                    }
                )
        rows.append(
            {
                "model": name,
                "runtime": "export cost",
                "export_pt2_s": export_pt2_s,
                "export_onnx_s": export_onnx_s,
                "onnx_bytes": onnx_bytes,
            }
        )
    return {"threads": args.threads, "batch_throughput": batch, "rows": rows}


# ------------------------------------------------------------------------------------------------
# the standard sweep


def part_sweep(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Wall time of the standard sweep, one member at a time and concurrently."""
    if not have_recordings():
        return {"skipped": NO_DATA}
    import dataclasses

    from fault_diag.data import build_dataset
    from fault_diag.training.concurrent import default_group_size, train_sweep
    from fault_diag.training.engine import bf16_supported
    from fault_diag.training.loop import train
    from fault_diag.training.sweep import plan_sweep

    kinds = SWEEP_KINDS if args.sweep_full else SWEEP_KINDS[:1]
    snrs = SWEEP_SNRS_DB if not args.quick else SWEEP_SNRS_DB[::5]
    base = [
        "data=cwru10",
        f"trainer.epochs={args.sweep_epochs}",
        "trainer.progress=false",
        f"trainer.num_threads={args.threads}",
        f"trainer.device={device.type}",
        "tracking=none",
    ]
    if args.sweep_compile:
        base.append("trainer.compile=true")
    if args.amp and bf16_supported(device):
        base.append("trainer.amp=true")
    cfgs = plan_sweep(
        [
            *base,
            f"model={','.join(SWEEP_MODELS)}",
            f"noise={','.join(kinds)}",
            f"noise.snr_db={','.join(str(s) for s in snrs)}",
        ]
    ).configs
    dataset = build_dataset(cfgs[0].data)
    measured_runs = len(cfgs)
    full_runs = len(SWEEP_KINDS) * len(SWEEP_SNRS_DB) * len(SWEEP_MODELS)
    scale = full_runs / measured_runs
    modes: dict[str, Any] = {}
    for mode in args.sweep_modes.split(","):
        log(f"  sweep {mode}: {measured_runs} runs x {args.sweep_epochs} epoch(s)")
        t0 = time.perf_counter()
        if mode == "sequential":
            with tempfile.TemporaryDirectory(prefix="fd-bench-") as tmp:
                for i, cfg in enumerate(cfgs):
                    cfg = dataclasses.replace(
                        cfg, trainer=dataclasses.replace(cfg.trainer, resume=False)
                    )
                    cfg.paths = dataclasses.replace(cfg.paths, output_dir=f"{tmp}/{i}")
                    train(cfg, dataset, Path(tmp) / str(i))
        elif mode == "concurrent":
            group = args.sweep_group or default_group_size(cfgs[0].trainer)
            train_sweep(cfgs, dataset, max_members=group)
        else:
            raise SystemExit(f"--sweep-modes: unknown mode {mode!r} (sequential, concurrent)")
        wall = time.perf_counter() - t0
        modes[mode] = {
            "measured_s": wall,
            "measured_runs": measured_runs,
            "full_sweep_s": wall * scale,
            "full_sweep_is_extrapolated": scale != 1.0,
        }
        if mode == "concurrent":
            modes[mode]["max_members_per_group"] = group
    return {
        "epochs": args.sweep_epochs,
        "kinds_measured": list(kinds),
        "snrs_db_measured": list(snrs),
        "models": list(SWEEP_MODELS),
        "full_sweep_runs": full_runs,
        "training_windows_per_epoch": int((dataset.meta["split"] == "train").sum()),
        "test_grid": "3 kinds x 11 SNRs per run (the default noise.test_kinds / test_snr_grid_db)",
        "compile": bool(args.sweep_compile),
        "amp": bool(args.amp and bf16_supported(device)),
        "modes": modes,
    }


# ------------------------------------------------------------------------------------------------
# profile


def _category(op: str) -> str:
    name = op.lower()
    if "convolution" in name or "conv" in name:
        return "convolution backward" if "backward" in name else "convolution forward"
    if "batch_norm" in name:
        return "batch norm fwd+bwd"
    if "optimizer" in name or "sgd" in name or "foreach" in name:
        return "optimizer"
    if "compiledfxgraph" in name or name.startswith("graph_") or "cpp_fused" in name:
        return "inductor fused kernels"
    if any(k in name for k in ("mm", "addmm", "linear", "bmm")):
        return "matmul (FC layers)"
    return "element-wise, reductions, other ops"


def part_profile(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Where one DRSN-CW training step at batch 128 spends its time (eager, and compiled if asked)."""
    from torch.profiler import ProfilerActivity, profile

    from fault_diag.training.engine import TrainStep

    results = {}
    x = torch.randn(128, 1, 2048, device=device)
    y = torch.arange(128, device=device) % 10
    variants = ["eager"] + (["compiled"] if args.profile_compiled else [])
    for variant in variants:
        model = _model("drsn_cw", device)
        opt = _sgd(model.parameters())
        step = TrainStep(model, opt, device=device, compile=variant == "compiled")
        for _ in range(3):
            step(x, y)
        sync(device)
        steps = 5
        t0 = time.perf_counter()
        for _ in range(steps):
            step(x, y)
        sync(device)
        wall_ms = (time.perf_counter() - t0) / steps * 1e3
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            for _ in range(steps):
                step(x, y)
            sync(device)
        events = prof.key_averages()
        total_self = sum(e.self_cpu_time_total for e in events) / steps / 1e3
        # Operator calls the dispatcher sees (an aten op called by another aten op not counted).
        n_ops = (
            sum(
                1
                for e in prof.events()
                if e.name.startswith("aten::")
                and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))
            )
            / steps
        )
        cats: dict[str, float] = {}
        for e in events:
            if (
                e.key.startswith("aten::")
                or "Optimizer" in e.key
                or e.key.startswith("graph_")
                or "CompiledFxGraph" in e.key  # the self time of inductor's fused C++ kernels
            ):
                c = _category(e.key)
                cats[c] = cats.get(c, 0.0) + e.self_cpu_time_total / steps / 1e3
        top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
        # The same step at batch 1: what a step costs whatever the batch (dispatch, Python,
        # launches, optimizer): the floor below which a larger batch cannot go per step.
        x1, y1 = x[:2], y[:2]  # batch 2: BatchNorm needs more than one value per channel
        for _ in range(3):
            step(x1, y1)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps * 4):
            step(x1, y1)
        sync(device)
        floor_ms = (time.perf_counter() - t0) / (steps * 4) * 1e3
        results[variant] = {
            "wall_ms_per_step": wall_ms,
            "batch2_wall_ms_per_step": floor_ms,
            "profiled_self_cpu_ms_per_step": total_self,
            "aten_ops_per_step": n_ops,
            "categories_ms": dict(sorted(cats.items(), key=lambda kv: -kv[1])),
            "top_ops": [
                {
                    "op": e.key[:80],
                    "calls_per_step": e.count / steps,
                    "self_ms_per_step": e.self_cpu_time_total / steps / 1e3,
                }
                for e in top
            ],
        }
    return {"model": "drsn_cw", "batch": 128, "variants": results}


# ------------------------------------------------------------------------------------------------
# report


def _fmt(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (the block that --update-docs puts into docs/benchmarks.md)."""
    m, parts = report["machine"], report["parts"]
    load = report["load"]
    lines = [
        f"Generated by `{report['command']}` on {report['date']}.",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpu_cores']} cores; GPU: {m['gpu_model']}; "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, Python {m['python']}; "
        f"device `{m['device']}`, torch threads {m['torch_threads']}.",
        f"- Load average (1 min) at start {load['start'][0]:.2f}, at end {load['end'][0]:.2f} "
        f"on {m['cpu_cores']} cores"
        + (
            f" (waited {load['wait']['waited_s']:.0f} s for < {load['wait']['threshold']}; "
            f"{'reached' if load['wait']['met'] else 'NOT reached: the machine was loaded'})"
            if load.get("wait")
            else ""
        )
        + ".",
        f"- Wall time of the whole benchmark: {report['wall_s'] / 60:.1f} min.",
        "",
    ]
    d = parts.get("data")
    if d:
        lines += ["### Dataset build (cwru10)", ""]
        if "skipped" in d:
            lines += [f"Skipped: {d['skipped']}.", ""]
        else:
            lines += [
                "| windows | files | cold median (s) | warm median (s) | budget cold / warm (s) |",
                "|---:|---:|---:|---:|---:|",
                f"| {d['n_windows']:,} | {d['n_files']} | {d['cold_s']['median']:.2f} | "
                f"{d['warm_s']['median']:.3f} | {d['budget_s']['cold']:g} / {d['budget_s']['warm']:g} |",
                "",
            ]
    nz = parts.get("noise")
    if nz:
        lines += [
            f"### Noise generation ({nz['windows']:,} windows x {nz['length']} samples, float32)",
            "",
            "| kind | make_noise (windows/s) | add_noise, exact SNR (windows/s) |",
            "|---|---:|---:|",
        ]
        by = {(r["kind"], r["op"]): r for r in nz["rows"]}
        for kind in dict.fromkeys(r["kind"] for r in nz["rows"]):
            lines.append(
                f"| {kind} | {_fmt(by[(kind, 'make_noise')]['windows_per_s'])} | "
                f"{_fmt(by[(kind, 'add_noise')]['windows_per_s'])} |"
            )
        lines.append("")
    tr = parts.get("train")
    if tr:
        variants = list(dict.fromkeys(r["variant"] for r in tr["rows"]))
        lines += [
            "### Training throughput (samples/s; ratio to the reference in parentheses)",
            "",
            f"Data: {tr['data']}; noise: {tr['noise']}; {tr['optimizer']}; median of "
            f"{tr['rounds']} alternating rounds. `concurrent` counts the samples of all "
            f"{tr['concurrent_members']} stacked members.",
            "",
            "| model | batch | " + " | ".join(variants) + " |",
            "|---|---:|" + "---:|" * len(variants),
        ]
        keyed = {(r["model"], r["batch"], r["variant"]): r for r in tr["rows"]}
        for model, batch in dict.fromkeys((r["model"], r["batch"]) for r in tr["rows"]):
            cells = []
            for v in variants:
                r = keyed.get((model, batch, v))
                if r is None:
                    cells.append("")
                elif "error" in r:
                    cells.append("failed (see JSON)")
                elif v == "reference":
                    cells.append(_fmt(r["samples_per_s"]))
                else:
                    cells.append(f"{_fmt(r['samples_per_s'])} ({r['ratio_to_reference']:.2f}x)")
            lines.append(f"| `{model}` | {batch} | " + " | ".join(cells) + " |")
        warm = [
            r
            for r in tr["rows"]
            if r["variant"] in ("compiled", "concurrent_compiled") and "warmup_s" in r
        ]
        if warm:
            lines += [
                "",
                "Compile (first epoch) time: "
                + ", ".join(
                    f"`{r['model']}` batch {r['batch']} {r['variant']}: {r['warmup_s']:.0f} s"
                    for r in warm
                )
                + ".",
            ]
        lines.append("")
    inf = parts.get("infer")
    if inf:
        lines += [
            f"### Inference of the exported model (CPU, {inf['threads']} thread(s))",
            "",
            "| model | runtime | latency per window, batch 1 (ms, median / p90) | "
            f"throughput, batch {inf['batch_throughput']} (windows/s) | max abs diff vs eager |",
            "|---|---|---:|---:|---:|",
        ]
        for r in inf["rows"]:
            if r["runtime"] == "export cost":
                continue
            lines.append(
                f"| `{r['model']}` | {r['runtime']} | {r['latency_ms_median']:.3f} / "
                f"{r['latency_ms_p90']:.3f} | {_fmt(r['throughput_windows_per_s'])} | "
                f"{r['max_abs_diff_vs_eager']:.1e} |"
            )
        for r in inf["rows"]:
            if r["runtime"] == "export cost":
                lines.append(
                    f"\nExport of `{r['model']}`: torch.export + save + load "
                    f"{r['export_pt2_s']:.1f} s; ONNX (dynamo) {r['export_onnx_s']:.1f} s, "
                    f"{r['onnx_bytes'] / 1024:.0f} KiB, one file."
                )
        lines.append("")
    sw = parts.get("sweep")
    if sw:
        lines += ["### Standard sweep (3 noise kinds x 11 SNRs x DRSN-CW and ResNet, cwru10)", ""]
        if "skipped" in sw:
            lines += [f"Skipped: {sw['skipped']}.", ""]
        else:
            lines += [
                f"{sw['epochs']} epoch(s) per run, {sw['training_windows_per_epoch']:,} training "
                f"windows per epoch, test grid {sw['test_grid']}; measured: "
                f"{len(sw['kinds_measured'])} kind(s) x {len(sw['snrs_db_measured'])} SNR(s) x "
                f"2 models.",
                "",
                "| mode | runs measured | measured wall (s) | full sweep (66 runs) |",
                "|---|---:|---:|---:|",
            ]
            for mode, r in sw["modes"].items():
                full = f"{r['full_sweep_s'] / 60:.1f} min" + (
                    " (extrapolated)" if r["full_sweep_is_extrapolated"] else " (measured)"
                )
                label = mode
                if mode == "concurrent":
                    k = r.get("max_members_per_group")
                    label += f" ({k or 'all'} member(s) per group)"
                lines.append(f"| {label} | {r['measured_runs']} | {r['measured_s']:.0f} | {full} |")
            lines.append("")
    pr = parts.get("profile")
    if pr:
        lines += [f"### Profile of one `{pr['model']}` training step, batch {pr['batch']}", ""]
        for variant, r in pr["variants"].items():
            lines += [
                f"{variant}: {r['wall_ms_per_step']:.1f} ms per step "
                f"({128 / r['wall_ms_per_step'] * 1e3:,.0f} samples/s); "
                f"{r['aten_ops_per_step']:.0f} operator calls per step "
                f"({r['wall_ms_per_step'] / max(r['aten_ops_per_step'], 1) * 1e3:.0f} us each on "
                f"average); the same step at batch 2 takes {r['batch2_wall_ms_per_step']:.1f} ms "
                f"({r['batch2_wall_ms_per_step'] / r['wall_ms_per_step']:.0%} of the batch-128 step: "
                "the per-step cost that does not scale with the batch).",
                "",
                "| where | ms per step | share |",
                "|---|---:|---:|",
            ]
            total = sum(r["categories_ms"].values()) or 1.0
            for cat, ms in r["categories_ms"].items():
                lines.append(f"| {cat} | {ms:.1f} | {ms / total:.0%} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def update_docs(path: Path, block: str) -> None:
    """Replace the text between the bench markers of ``path`` (append the markers if absent)."""
    text = path.read_text() if path.exists() else ""
    generated = f"{DOC_START}\n<!-- generated by scripts/bench.py; do not edit by hand -->\n\n{block}{DOC_END}"
    if DOC_START in text and DOC_END in text:
        head, rest = text.split(DOC_START, 1)
        tail = rest.split(DOC_END, 1)[1]
        text = head + generated + tail
    else:
        text = text.rstrip() + "\n\n" + generated + "\n"
    write_atomic(path, text)


# ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", default=",".join(PARTS), help=f"parts to run: {','.join(PARTS)}")
    ap.add_argument("--quick", action="store_true", help="a small run (minutes): fewer of each")
    ap.add_argument("--threads", type=int, default=1, help="torch / onnxruntime intra-op threads")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 (training, noise, sweep)")
    ap.add_argument("--models", default=None, help="models for 'train' (default: all; quick: 2)")
    ap.add_argument("--batch-sizes", default=None, help="default 128,1024 (quick: 128)")
    ap.add_argument("--steps", type=int, default=None, help="batches per timed epoch")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per variant")
    ap.add_argument(
        "--compile-models",
        default=None,
        help="models timed compiled (default: drsn_cw,resnet1d on CPU, all on CUDA; '' for none)",
    )
    ap.add_argument("--members", type=int, default=None, help="concurrent members (CPU 4, CUDA 11)")
    ap.add_argument(
        "--amp",
        action="store_true",
        help="bf16 autocast in the compiled paths and the sweep (CUDA, or a CPU with native bf16)",
    )
    ap.add_argument("--infer-models", default="drsn_cw,resnet1d")
    ap.add_argument("--sweep-epochs", type=int, default=1)
    ap.add_argument("--sweep-full", action="store_true", help="all 3 kinds (default: 1, x3)")
    ap.add_argument("--sweep-modes", default="sequential,concurrent")
    ap.add_argument("--sweep-group", type=int, default=None, help="max concurrent members")
    ap.add_argument("--sweep-compile", action="store_true", help="trainer.compile=true in sweeps")
    ap.add_argument("--profile-compiled", action="store_true", help="also profile compiled")
    ap.add_argument("--wait-load", type=float, default=None, help="wait for 1-min load < this")
    ap.add_argument("--wait-max-s", type=float, default=600)
    ap.add_argument("--out", type=Path, default=Path("outputs/bench"))
    ap.add_argument("--update-docs", type=Path, default=None, help="e.g. docs/benchmarks.md")
    args = ap.parse_args(argv)
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        ap.error(f"--only: unknown part(s) {sorted(unknown)}; choose from {','.join(PARTS)}")
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    on_gpu = args.device.startswith("cuda")
    args.models = args.models or ("drsn_cw,resnet1d" if args.quick else "all")
    args.batch_sizes = [
        int(b) for b in (args.batch_sizes or ("128" if args.quick else "128,1024")).split(",")
    ]
    args.rounds = args.rounds or (2 if args.quick else 3)
    if args.compile_models is None:
        args.compile_models = "all" if on_gpu else ("drsn_cw" if args.quick else "drsn_cw,resnet1d")
    args.members = args.members or (11 if on_gpu else 4)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts; write JSON + Markdown; optionally update the docs."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    command = "python scripts/bench.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    wait = wait_for_quiet(args.wait_load, args.wait_max_s) if args.wait_load else None
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "fault-diag",
        "command": command.strip(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(device),
        "load": {"start": loadavg(), "wait": wait},
        "quick": args.quick,
        "parts": {},
    }
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "data": lambda: part_data(args),
        "noise": lambda: part_noise(args, device),
        "train": lambda: part_train(args, device),
        "infer": lambda: part_infer(args),
        "sweep": lambda: part_sweep(args, device),
        "profile": lambda: part_profile(args, device),
    }
    for part in PARTS:
        if part in args.only.split(","):
            load_before = loadavg()
            log(f"[{part}] load average {load_before}")
            t0 = time.perf_counter()
            report["parts"][part] = runners[part]()
            report["parts"][part]["part_wall_s"] = time.perf_counter() - t0
            report["parts"][part]["loadavg_before"] = load_before
    report["load"]["end"] = loadavg()
    report["wall_s"] = time.perf_counter() - t_start
    md = markdown(report)
    write_atomic(args.out / "bench.json", json.dumps(report, indent=2, default=str) + "\n")
    write_atomic(args.out / "bench.md", md)
    if args.update_docs is not None:
        update_docs(args.update_docs, md)
    print(md)
    log(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
