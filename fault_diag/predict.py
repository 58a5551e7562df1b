"""Run an exported bundle on a recording: read, resample to the model's rate, window, classify.

The bundle (:mod:`fault_diag.bundle`) carries everything needed: the sampling rate and window length
the model was trained with, the channel, the labels, and the per-window normalisation inside its
graph. What the recording file does not carry is its own sampling rate when it is a ``.csv`` or
``.npy``; then ``fs_hz`` is required. For a ``.mat`` named by its CWRU file number (``97.mat``) the
rate comes from the CWRU catalogue (97-100 are 48 kHz, not 12 kHz).

Windows are cut from the (optionally restricted, ``start``/``stop``) signal with ``hop`` samples
between starts (default: the window length, no overlap); samples after the last whole window are
reported as unused. Two aggregate verdicts are given: the class of the mean probability over windows,
and the majority vote of the per-window classes.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fault_diag.bundle.load import Bundle, load_bundle, softmax

log = logging.getLogger(__name__)

RECORDING_SUFFIXES = (".mat", ".csv", ".npy", ".npz")
# What fd-predict accepts, checked before resampling or cutting windows: an absurd --fs-hz or --hop
# would otherwise ask for tens of GiB (--fs-hz 1000000000000 made resample_poly build a filter of
# 5e9 taps, 37 GiB) or classify nonsense (--fs-hz 7 upsampled 300k samples 1714x into 25k windows).
RATE_RANGE = (1 / 8, 1000)  # recording rate / model rate: below 1/8 the recording holds almost
# nothing of the band the model learned from; above 1000x, decimate the recording first
MAX_RESAMPLE_FACTOR = 200_000  # max(up, down) of a polyphase resampling: its filter has 20x taps
MAX_MODEL_SAMPLES = 1 << 28  # samples of the recording at the model's rate (2 GiB as float64)
MAX_WINDOW_BYTES = 1 << 30  # the float32 windows of one call (hop 1 on a long recording)
MAX_HOP = (1 << 31) - 1


class PredictError(ValueError):
    """The recording cannot be classified as asked (unknown rate, too short, bad range, ...)."""


class UnknownRateError(PredictError):
    """The recording's sampling rate is neither given nor known from a source's catalogue."""


class RecordingTooShortError(PredictError):
    """The (selected part of the) recording is shorter than one window."""


def recording_rate(path: str | Path, fs_hz: float | None = None) -> tuple[int, str]:
    """(sampling rate in Hz, where it came from) for ``path``.

    ``fs_hz`` wins when given. Else a ``.mat`` that a built-in data source's catalogue knows (a CWRU
    file number, a HIT-SM file name) takes the catalogue's rate; anything else raises
    :class:`UnknownRateError`.
    """
    path = Path(path)
    if fs_hz is not None:
        # isfinite first: int(inf) raises OverflowError, which is no message for a user
        if not (math.isfinite(float(fs_hz)) and float(fs_hz) > 0 and float(fs_hz) == int(fs_hz)):
            raise PredictError(
                f"--fs-hz={fs_hz!r} is invalid: expected a positive integer rate in Hz"
            )
        rate, how = int(fs_hz), "given (--fs-hz)"
        known = _catalogue_rate(path)
        if known is not None and known != rate:
            log.warning(
                "%s: --fs-hz %d differs from the %d Hz a data source's catalogue gives this file; "
                "using %d Hz as given",
                path,
                rate,
                known,
                rate,
            )
        return rate, how
    if path.suffix.lower() != ".mat":
        raise UnknownRateError(
            f"{path}: a {path.suffix} file does not record its sampling rate; pass --fs-hz "
            "(e.g. --fs-hz 12000)"
        )
    known = _catalogue_rate(path)
    if known is None:
        raise UnknownRateError(
            f"{path}: the sampling rate is unknown (no built-in source's catalogue has this file "
            "name: a CWRU file number such as 105.mat, or a HIT-SM recording); pass --fs-hz"
        )
    return known, f"catalogue ({path.name})"


def allowed_rates(fs_model_hz: int) -> tuple[int, int]:
    """The recording rates (Hz) accepted for a model trained at ``fs_model_hz`` (inclusive)."""
    return math.ceil(fs_model_hz * RATE_RANGE[0]), int(fs_model_hz * RATE_RANGE[1])


def check_rate(fs_in_hz: int, fs_model_hz: int) -> None:
    """Refuse, with the allowed range, a recording rate that is absurd for the model, or whose
    resampling to the model's rate needs an oversized polyphase filter."""
    from fault_diag.data.resample import plan_resampling

    low, high = allowed_rates(fs_model_hz)
    if not low <= fs_in_hz <= high:
        raise PredictError(
            f"a recording rate of {fs_in_hz} Hz is outside the range accepted for this model: "
            f"{low} to {high} Hz (1/8 to {RATE_RANGE[1]:g} times its "
            f"{fs_model_hz} Hz); check --fs-hz"
        )
    plan = plan_resampling(fs_in_hz, fs_model_hz)
    if plan.method == "resample_poly" and max(plan.up, plan.down) > MAX_RESAMPLE_FACTOR:
        raise PredictError(
            f"resampling {fs_in_hz} -> {fs_model_hz} Hz needs a polyphase filter with up={plan.up}, "
            f"down={plan.down} ({20 * max(plan.up, plan.down) + 1:,} taps); accepted: up and down "
            f"up to {MAX_RESAMPLE_FACTOR:,}. Give the rate rounded to a value sharing a larger "
            f"common divisor with {fs_model_hz} Hz, or resample the recording first"
        )


def check_windows(n_samples: int, fs_in_hz: int, fs_model_hz: int, length: int, hop: int) -> None:
    """Refuse, before resampling, a recording part too long for one call or a ``hop`` outside the
    range that keeps its windows within :data:`MAX_WINDOW_BYTES` (the message gives the range)."""
    from fault_diag.data.resample import plan_resampling

    plan = plan_resampling(fs_in_hz, fs_model_hz)
    n_model = math.ceil(n_samples * plan.up / plan.down)
    if n_model > MAX_MODEL_SAMPLES:
        raise PredictError(
            f"{n_samples:,} samples at {fs_in_hz} Hz are {n_model:,} at the model's {fs_model_hz} Hz, "
            f"more than the {MAX_MODEL_SAMPLES:,} one call handles; classify parts of the "
            "recording with --start/--stop"
        )
    max_windows = max(1, MAX_WINDOW_BYTES // (4 * length))
    span = max(0, n_model - length)
    min_hop = max(1, math.ceil(span / (max_windows - 1))) if max_windows > 1 else MAX_HOP
    n_windows = span // hop + 1 if 1 <= hop <= MAX_HOP else 0
    if not 1 <= hop <= MAX_HOP or n_windows > max_windows:
        why = (
            f"{n_windows:,} windows of {length} samples ({n_windows * length * 4 / 2**30:.1f} GiB)"
            if hop >= 1 and n_windows > max_windows
            else "not a usable number of samples"
        )
        raise PredictError(
            f"--hop {hop}: {why}; accepted for this recording: {min_hop} to {MAX_HOP} samples at "
            f"the model's rate (at most {max_windows:,} windows), or a part of it with --start/--stop"
        )


def _catalogue_rate(path: Path) -> int | None:
    """The rate a data source's catalogue gives for a file named as one of its files (CWRU:
    ``105.mat``; HIT-SM: ``MFS/IR2_600.mat``), else None (see fault_diag.data.sources)."""
    from fault_diag.data.sources import known_rate

    if path.suffix.lower() != ".mat":
        return None
    found = known_rate(path)
    return None if found is None else found[0]


def cut_windows(x: np.ndarray, window_length: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``(n, 1, window_length)`` float32 and their start indices; hop between starts."""
    if hop < 1:
        raise PredictError(f"hop={hop} is invalid: expected a positive number of samples")
    if x.size < window_length:
        raise RecordingTooShortError(
            f"the signal has {x.size} samples but one window needs {window_length}"
        )
    starts = np.arange(0, x.size - window_length + 1, hop, dtype=np.int64)
    view = np.lib.stride_tricks.sliding_window_view(x, window_length)
    windows = np.ascontiguousarray(view[starts], dtype=np.float32).reshape(-1, 1, window_length)
    return windows, starts  # reshape gives canonical strides (see data/dataset.py)


@dataclass
class WindowPrediction:
    """One window: where it starts (seconds and model-rate samples), its class and probabilities."""

    index: int
    start_sample: int
    start_s: float
    label: str
    probability: float
    probabilities: dict[str, float] = field(repr=False)


@dataclass
class PredictionResult:
    """Everything ``fd-predict`` prints."""

    recording: str
    variable: str
    bundle: str
    model: str
    runtime: str
    labels: list[str]
    fs_recording_hz: int
    fs_source: str
    fs_model_hz: int
    resampling: str
    selection: dict[str, int]
    window_length: int
    hop: int
    n_windows: int
    unused_tail_samples: int
    windows: list[WindowPrediction]
    mean_probability: dict[str, float]
    verdict_mean_probability: dict[str, Any]
    verdict_majority: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    envelope: dict[str, Any] = field(default_factory=dict)  # what the model was trained on
    warnings: list[str] = field(default_factory=list)  # where this recording falls outside it
    band_hz: list[float] | None = None  # band-limiting applied, as in training
    adapt_bn: bool = False  # BatchNorm statistics re-estimated on this recording (AdaBN)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def predict_windows(bundle: Bundle, windows: np.ndarray) -> np.ndarray:
    """Class probabilities ``(n, len(labels))`` of RAW windows."""
    return bundle.probabilities(windows)


def predict_recording(
    bundle: Bundle | str | Path,
    recording: str | Path,
    *,
    fs_hz: float | None = None,
    channel: str | None = None,
    hop: int | None = None,
    start: int | None = None,
    stop: int | None = None,
    runtime: str = "onnx",
    adapt_bn: bool = False,
) -> PredictionResult:
    """Classify ``recording`` window by window with ``bundle`` (a :class:`Bundle` or its folder).

    ``start``/``stop`` select samples ``[start, stop)`` of the recording at ITS OWN rate (before any
    resampling). ``channel`` defaults to the card's (a ``.mat`` variable DE/FE/BA, a CSV column or
    ``.npz`` key; a file holding a single signal needs none, whatever its variable is called). A
    model trained on single-variable files (card channel ``single-variable``, or ``per-file`` when
    its files were read by different names) reads each recording's only signal: a ``.mat`` whose
    variable name changes from file to file (HIT-SM: ``z20_4``, ``VarName5``) is read as it is.
    When the model was trained on a band-limited setup (card ``band_hz``), the recording is
    filtered exactly as the training recordings were.

    ``adapt_bn``: AdaBN (Li et al. 2016) on this recording: the network is rebuilt in torch from the
    bundle's verified ``.pt2`` weights and its BatchNorm statistics are re-estimated on the
    recording's own windows (unlabelled, so legitimate in deployment) before they are classified.
    The bundle itself is not changed. A model without BatchNorm is used as it is, with a note.
    """
    from fault_diag.data.readers import read_recording
    from fault_diag.data.resample import plan_resampling, resample

    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle, runtime)
    path = Path(recording)
    if path.suffix.lower() not in RECORDING_SUFFIXES:
        raise PredictError(
            f"{path}: unsupported format {path.suffix!r}; expected one of {RECORDING_SUFFIXES}"
        )
    if not path.is_file():
        raise PredictError(f"{path}: no such file")
    fs_in, fs_source = recording_rate(path, fs_hz)
    # NaN/Inf -> NonFiniteSignalError; several signals and none named -> a DataError saying so
    sig = read_recording(path, channel or _card_channel(bundle.card))
    x = sig.data
    n_total = int(x.size)
    lo = 0 if start is None else int(start)
    hi = n_total if stop is None else int(stop)
    if not 0 <= lo < hi <= n_total:
        raise PredictError(
            f"{path}: sample range start={start} stop={stop} is invalid for a recording of "
            f"{n_total} samples: expected 0 <= start < stop <= {n_total}"
        )
    x = x[lo:hi]
    fs_model = bundle.sampling_rate_hz
    check_rate(fs_in, fs_model)  # before resampling: an absurd rate would allocate GiBs
    check_windows(
        x.size,
        fs_in,
        fs_model,
        bundle.window_length,
        bundle.window_length if hop is None else int(hop),
    )
    plan = plan_resampling(fs_in, fs_model)
    x = resample(x, fs_in, fs_model)
    band_hz = bundle.card.get("band_hz")
    if band_hz is not None:
        from fault_diag.data.filters import band_limit

        x = band_limit(x, fs_model, [float(b) for b in band_hz])
    length = bundle.window_length
    hop = length if hop is None else int(hop)
    if x.size < length:
        need = math.ceil(length * fs_in / fs_model)
        raise RecordingTooShortError(
            f"{path}: {hi - lo} samples at {fs_in} Hz ({x.size} at the model's {fs_model} Hz) are "
            f"shorter than one window of {length} samples at {fs_model} Hz (needs {need} samples "
            f"at {fs_in} Hz)"
        )
    windows, starts = cut_windows(x, length, hop)
    notes = list(sig.notes)
    if adapt_bn:
        probs, note = _adapted_probabilities(bundle, windows)
        if note:
            notes.append(note)
    else:
        probs = bundle.probabilities(windows)
    labels = bundle.labels
    top = probs.argmax(axis=1)
    offset_model = (
        lo * fs_model / fs_in
    )  # window starts as model-rate samples of the whole recording
    per_window = [
        WindowPrediction(
            index=i,
            start_sample=int(round(offset_model + s)),
            start_s=float((offset_model + s) / fs_model),
            label=labels[int(top[i])],
            probability=float(probs[i, top[i]]),
            probabilities={lab: float(p) for lab, p in zip(labels, probs[i], strict=True)},
        )
        for i, s in enumerate(starts)
    ]
    mean = probs.mean(axis=0)
    best = int(mean.argmax())
    votes = Counter(int(t) for t in top)
    # majority: most votes; a tie is broken by the higher mean probability
    winner = max(votes, key=lambda k: (votes[k], mean[k]))
    used_until = int(starts[-1]) + length
    return PredictionResult(
        recording=str(path),
        variable=sig.variable,
        bundle=str(bundle.path),
        model=str(bundle.card["model"]["name"]),
        runtime="onnxruntime" if bundle.runtime == "onnx" else "torch.export (.pt2)",
        labels=labels,
        fs_recording_hz=fs_in,
        fs_source=fs_source,
        fs_model_hz=fs_model,
        resampling=plan.describe(),
        selection={"start": lo, "stop": hi, "n_samples_recording": n_total},
        window_length=length,
        hop=hop,
        n_windows=len(per_window),
        unused_tail_samples=int(x.size - used_until),
        windows=per_window,
        mean_probability={lab: float(p) for lab, p in zip(labels, mean, strict=True)},
        verdict_mean_probability={"label": labels[best], "probability": float(mean[best])},
        verdict_majority={
            "label": labels[winner],
            "votes": int(votes[winner]),
            "n_windows": len(per_window),
            "fraction": float(votes[winner] / len(per_window)),
        },
        notes=notes,
        envelope=dict(bundle.card.get("envelope") or {}),
        warnings=envelope_warnings(bundle.card, fs_in),
        band_hz=None if band_hz is None else [float(b) for b in band_hz],
        adapt_bn=adapt_bn,
    )


def _card_channel(card: dict[str, Any]) -> str:
    """The channel to read a recording by when none is given: the card's, where a dataset of
    single-signal files (or of files read by different names) means "the file's only signal"."""
    from fault_diag.data.readers import PER_FILE, SINGLE_VARIABLE

    channel = str(card["channel"])
    return SINGLE_VARIABLE if channel in (SINGLE_VARIABLE, PER_FILE) else channel


def torch_classifier(bundle: Bundle) -> Any:
    """The bundle's classifier as a torch module, rebuilt from the card's model spec with the
    weights (parameters and BatchNorm statistics) of the bundle's verified ``.pt2``."""
    import torch

    from fault_diag.bundle.card import PT2_FILE
    from fault_diag.bundle.load import check_pt2_archive, classifier_from_state

    pt2 = bundle.path / PT2_FILE
    if not pt2.is_file():
        raise PredictError(f"{bundle.path}: --adapt-bn needs {PT2_FILE} (the torch weights)")
    # load_bundle verified the file's sha256 against the card; check_pt2_archive refuses pickles.
    check_pt2_archive(pt2)
    program = torch.export.load(str(pt2))
    state = {k: v.detach().clone() for k, v in program.state_dict.items()}
    return classifier_from_state(bundle.card, state)


def _adapted_probabilities(bundle: Bundle, windows: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Probabilities after AdaBN on ``windows`` (see :func:`predict_recording`), and a note."""
    import torch

    from fault_diag.training.evaluation import adapt_batchnorm, has_batchnorm

    model = torch_classifier(bundle)
    if not has_batchnorm(model):
        return bundle.probabilities(windows), (
            f"--adapt-bn: {bundle.card['model']['name']} has no BatchNorm layer; used as exported"
        )
    if windows.shape[0] < 2:
        raise PredictError("--adapt-bn needs at least 2 windows to estimate BatchNorm statistics")
    x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
    adapted = adapt_batchnorm(model, x)
    with torch.no_grad():
        logits = adapted(x).double().numpy()
    note = (
        f"AdaBN: BatchNorm statistics re-estimated on this recording's {windows.shape[0]} "
        "windows (torch, weights from the bundle's .pt2)"
    )
    return softmax(logits), note


def envelope_warnings(card: dict[str, Any], fs_recording_hz: int) -> list[str]:
    """Where a recording falls outside what the model was trained on, as far as is known for sure.

    No SNR is estimated from the raw recording (its noise floor cannot be told from the fault
    signature without labels); the warnings cover the sampling rate, the band and a single-SNR
    (matched) model.
    """
    out: list[str] = []
    env = card.get("envelope") or {}
    fs_model = int(card["sampling_rate_hz"])
    if fs_recording_hz < fs_model:
        out.append(
            f"the recording is sampled at {fs_recording_hz} Hz, below the model's {fs_model} Hz: "
            f"it holds nothing above {fs_recording_hz / 2:g} Hz, where the training windows had "
            "content; it was upsampled, and the verdict may not be reliable"
        )
    band = card.get("band_hz")
    if band is not None and fs_recording_hz / 2 < float(band[1]):
        out.append(
            f"the model's band is {band[0]:g}-{band[1]:g} Hz but the recording's Nyquist "
            f"frequency is {fs_recording_hz / 2:g} Hz"
        )
    protocol = env.get("protocol") or (card.get("noise_protocol") or {}).get("noise_protocol")
    snr_range = env.get("train_snr_db_range")
    if protocol == "matched" and snr_range is not None:
        out.append(
            f"this model was trained at one SNR ({snr_range[0]:g} dB, "
            f"{', '.join(env.get('train_kinds') or [])} noise; matched protocol): on recordings "
            "cleaner or noisier than that its accuracy can be far lower (a mixed-protocol model, "
            "`make train`, covers a range of SNRs)"
        )
    elif protocol == "clean_train":
        out.append(
            "this model was trained on clean recordings only (clean-train protocol): noise in the "
            "recording can send fault windows to the wrong class; --adapt-bn helps"
        )
    return out


def format_envelope(env: dict[str, Any]) -> str:
    """One line: the protocol, SNR range, kinds and band the model was trained on."""
    if not env:
        return "trained on: (the card records no training envelope)"
    parts = [f"{env.get('protocol')} protocol"]
    snr = env.get("train_snr_db_range")
    if snr is None:
        parts.append("clean windows")
    else:
        parts.append(f"SNR {snr[0]:g}..{snr[1]:g} dB" if snr[0] != snr[1] else f"SNR {snr[0]:g} dB")
        parts.append(f"kinds {', '.join(env.get('train_kinds') or [])}")
        if env.get("clean_fraction"):
            parts.append(f"{float(env['clean_fraction']):.0%} clean")
    band = env.get("band_hz")
    parts.append(f"band {band[0]:g}-{band[1]:g} Hz" if band else "full band")
    return "trained on: " + ", ".join(parts)


def format_result(result: PredictionResult, max_windows: int | None = None) -> str:
    """Human-readable report: the recording, one line per window, the two verdicts."""
    r = result
    sel = r.selection
    part = (
        "whole recording"
        if sel["start"] == 0 and sel["stop"] == sel["n_samples_recording"]
        else f"samples {sel['start']}..{sel['stop']} of {sel['n_samples_recording']}"
    )
    lines = [
        f"recording: {r.recording} ({r.variable}, {r.fs_recording_hz} Hz from {r.fs_source}; {part})",
        f"model: {r.model} ({r.runtime}), {len(r.labels)} classes, {r.fs_model_hz} Hz, "
        f"window {r.window_length}; resampling: {r.resampling}",
        f"{r.n_windows} windows, hop {r.hop} ({r.unused_tail_samples} tail samples unused)"
        + (
            f"; band-limited to {r.band_hz[0]:g}-{r.band_hz[1]:g} Hz as in training"
            if r.band_hz
            else ""
        )
        + ("; AdaBN on this recording" if r.adapt_bn else ""),
        format_envelope(r.envelope),
        *[f"warning: {w}" for w in r.warnings],
        "",
        f"{'window':>6} {'start_s':>8}  {'class':<10} {'p':>6}   {'runner-up':<10} {'p':>6}",
    ]
    shown = r.windows if max_windows is None else r.windows[:max_windows]
    for w in shown:
        ranked = sorted(w.probabilities.items(), key=lambda kv: -kv[1])
        second = ranked[1] if len(ranked) > 1 else ("", 0.0)
        lines.append(
            f"{w.index:>6} {w.start_s:>8.3f}  {w.label:<10} {w.probability:>6.3f}   "
            f"{second[0]:<10} {second[1]:>6.3f}"
        )
    if len(shown) < len(r.windows):
        lines.append(
            f"   ... {len(r.windows) - len(shown)} more windows (--all or --json to see them)"
        )
    vm, vj = r.verdict_mean_probability, r.verdict_majority
    lines += [
        "",
        f"verdict (mean probability): {vm['label']}  (p = {vm['probability']:.3f})",
        f"verdict (majority vote):    {vj['label']}  ({vj['votes']}/{vj['n_windows']} windows)",
    ]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


__all__ = [
    "PredictError",
    "PredictionResult",
    "RecordingTooShortError",
    "UnknownRateError",
    "WindowPrediction",
    "allowed_rates",
    "check_rate",
    "check_windows",
    "cut_windows",
    "format_result",
    "predict_recording",
    "predict_windows",
    "recording_rate",
    "torch_classifier",
    "envelope_warnings",
    "format_envelope",
]
