"""Noise at a controlled SNR: Gaussian, pink (1/f) and Laplacian, in torch, seeded, on any device.

Definitions (docs/design-notes.md section 3)::

    SNR_dB = 10 log10(P_signal / P_noise),   P = mean square over the window's samples

computed per window AND per channel, i.e. over the last axis of a ``(batch, channels, length)``
tensor. Noise is added to the *raw* signal, before any normalisation. Every draw is rescaled so
that the realised SNR of each window and channel equals the target (within 1e-3 dB for float32 and
float64 inputs), not only in expectation. Two bugs seen in peer code are avoided on purpose: the
power is a mean over the window length (not a sum divided by the number of windows), and the noise
level follows the SNR (not a fixed sigma).

Kinds:

- ``gaussian``: white, N(0, P_noise).
- ``laplacian``: Laplace(0, b) with b = sqrt(P_noise / 2) (variance 2 b^2 = P_noise, excess
  kurtosis 3, i.e. kurtosis 6), drawn by the inverse CDF from one uniform per sample.
- ``pink``: power spectral density proportional to 1/f, made by shaping white Gaussian noise in
  the frequency domain: the white spectrum (i.i.d. complex Gaussian bins, which is what rfft of
  white noise is) times 1/sqrt(k) at bin k, DC bin set to 0 so each window is zero-mean, then
  irfft. The DRSN paper (Zhao et al., IEEE TII 2020) tests all three kinds.

Reproducibility: pass a ``torch.Generator`` on the same device as the data. The draw depends on
the generator state, the shape (so the batch partition) and the device type: CPU and CUDA streams
differ for the same seed. For a test set that every model must see identically, derive the
generator with :func:`noise_generator` from (config seed, kind, SNR, split) and noise the whole
split in one call on the CPU (a CWRU test split is a few thousand windows), then keep or move the
noisy copy. Training noise may be drawn per batch on the training device.

Example: the generators ``fd-train`` uses (:mod:`fault_diag.training`), so this reproduces its
draws::

    # validation / test: the whole split at once, on the CPU, fixed by noise.seed
    # (draw d > 0 of a condition appends "draw", d to the parts)
    g = noise_generator(cfg.noise.seed, kind, float(snr_db), "test")
    x_test_noisy = add_noise(x_test_raw, snr_db, kind, generator=g)

    # training noise (TrainingNoise: matched or mixed), drawn per batch on the training device;
    # redraw_each_epoch=true: one generator per epoch, seeded by (trainer.seed, epoch)
    noise = TrainingNoise([kind], (snr_db, snr_db))
    g = noise_generator(cfg.trainer.seed, "train", epoch, device=device)
    noisy = noise.apply(x_batch, g)
    # redraw_each_epoch=false: the training split noised once before training, each window keeps
    # its noise whatever the shuffling: noise_generator(cfg.trainer.seed, "train-fixed")

The config schema and protocol helpers live in :mod:`fault_diag.noise_config` (no torch import)
and are re-exported here.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from fault_diag.noise_config import (
    CONFIG_KINDS,
    NOISE_KINDS,
    PROTOCOLS,
    NoiseConfig,
    NoiseConfigError,
    NoiseError,
    grid_conditions,
    train_condition,
    validate_noise_config,
)

__all__ = [
    "CONFIG_KINDS",
    "NOISE_KINDS",
    "PROTOCOLS",
    "NoiseConfig",
    "NoiseConfigError",
    "NoiseError",
    "add_noise",
    "add_noise_np",
    "band_limit_noise",
    "check_band",
    "derive_seed",
    "grid_conditions",
    "make_noise",
    "noise_generator",
    "realised_snr_db",
    "scale_noise_to_snr",
    "train_condition",
    "validate_noise_config",
]

#: Largest |value| of 1 - |u| kept away from 0 in the Laplacian inverse CDF (u in [-1, 1)):
#: torch's uniform_ can return the lower bound, where log(0) would give -inf.
_LAPLACE_CLAMP = 1.0 - 2.0**-24
#: Mean squares below this (or non-finite) in the fast float32 pass are recomputed in float64:
#: float32 squares underflow for amplitudes below ~1e-19 and overflow above ~1e19.
_MS_TINY_F32 = 1e-30
_ZERO_POWER_RULES = ("keep", "raise")


# --------------------------------------------------------------------------------------------
# input checks


def _check_kind(kind: Any, *, allow_none: bool) -> str:
    choices = (*NOISE_KINDS, "none") if allow_none else NOISE_KINDS
    if not isinstance(kind, str) or kind not in choices:
        raise NoiseError(f"noise kind {kind!r} is not known; expected one of: {', '.join(choices)}")
    return kind


def _check_float_dtype(dtype: torch.dtype, what: str) -> None:
    if not dtype.is_floating_point:
        raise TypeError(
            f"{what} has dtype {dtype}; noise needs a floating-point tensor "
            "(convert integer ADC counts with .float() and apply the sensor's scale first)"
        )


def _check_generator(generator: Optional[torch.Generator], device: torch.device) -> None:
    if generator is not None and generator.device.type != device.type:
        raise NoiseError(
            f"the generator is on {generator.device} but the data is on {device}; create it with "
            f"torch.Generator(device={str(device)!r}) or noise_generator(..., device=x.device)"
        )


def _snr_tensor(snr_db: Any, x: Tensor) -> Tensor:
    """SNR(s) in dB as a float64 tensor broadcastable to ``x.shape[:-1] + (1,)``; checked finite."""
    if isinstance(snr_db, bool) or snr_db is None or isinstance(snr_db, str | bytes):
        raise NoiseError(f"snr_db={snr_db!r} is not a number; expected a finite SNR in dB")
    if isinstance(snr_db, numbers.Real):
        value = float(snr_db)
        if not math.isfinite(value):
            raise NoiseError(f"snr_db={snr_db!r} is not finite; expected a finite SNR in dB")
        return torch.tensor(value, dtype=torch.float64, device=x.device)
    try:
        t = torch.as_tensor(snr_db)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise NoiseError(f"snr_db={snr_db!r} is not a number or an array of numbers") from exc
    if t.dtype == torch.bool or t.is_complex():
        raise NoiseError(f"snr_db has dtype {t.dtype}; expected real numbers in dB")
    t = t.to(dtype=torch.float64)
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0]) if t.ndim else ()
        where = f"[{', '.join(map(str, idx))}]" if idx else ""
        raise NoiseError(f"snr_db{where}={float(t[idx])} is not finite; expected finite SNRs in dB")
    t = t.to(device=x.device)
    lead = tuple(x.shape[:-1])
    if t.numel() == 1:
        return t.reshape(())
    if t.ndim == 1 and x.ndim >= 2:
        # One value per window: applies to every channel of that window.
        if t.shape[0] != x.shape[0]:
            raise NoiseError(
                f"snr_db has {t.shape[0]} values but the batch has {x.shape[0]} windows; "
                "give one SNR per window, a scalar, or a tensor broadcastable to (batch, channels)"
            )
        return t.reshape((x.shape[0],) + (1,) * (x.ndim - 1))
    try:
        if torch.broadcast_shapes(tuple(t.shape), lead) != lead:
            raise RuntimeError
    except RuntimeError as exc:
        raise NoiseError(
            f"snr_db of shape {tuple(t.shape)} does not broadcast to the windows' shape {lead}"
        ) from exc
    return t.unsqueeze(-1)


# --------------------------------------------------------------------------------------------
# raw draws


def _pink_weights(length: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Gains of the rfft bins for pink noise: 1/sqrt(k) at bin k >= 1, 0 at DC, unit total power.

    They multiply a one-sided spectrum whose bins are i.i.d. circular complex Gaussians with
    E|Z_k|^2 = 1, which :func:`_pink` turns into ``irfft(..., norm="forward")`` (no 1/length).
    The mean square of the result is then sum_k w_k^2 over the *full* (two-sided) spectrum: bins
    1..ceil(length/2)-1 count twice (their mirror image), DC and (even length) Nyquist once;
    the gains are divided by its square root so the draw has unit expected power. The Nyquist bin
    of a real signal is real, so its imaginary part is zeroed and its gain carries sqrt(2) to keep
    E|Z|^2 = 1 there too.
    """
    k = torch.arange(length // 2 + 1, dtype=torch.float64)
    w = torch.zeros_like(k)
    w[1:] = k[1:].rsqrt()  # |H(f)|^2 = 1/f
    mult = torch.full_like(w, 2.0)
    mult[0] = 1.0
    if length % 2 == 0:
        mult[-1] = 1.0
    w = w / math.sqrt(float((mult * w.square()).sum()))
    if length % 2 == 0:
        w[-1] *= math.sqrt(2.0)  # real part only: N(0, 1/2) -> N(0, 1)
    return w.to(device=device, dtype=dtype)


def _pink(
    shape: tuple[int, ...],
    device: torch.device,
    dtype: torch.dtype,
    generator: Optional[torch.Generator],
) -> Tensor:
    """Pink noise by shaping white Gaussian noise in the frequency domain.

    The rfft of i.i.d. N(0, 1) samples is, bin by bin, an independent circular complex Gaussian
    (real at DC and Nyquist), so we draw that spectrum directly instead of drawing samples and
    transforming them: the same distribution, one FFT fewer (about 35 % faster on the dev CPU).
    Then multiply by 1/sqrt(f) (DC set to 0: zero-mean windows) and irfft.
    """
    length = shape[-1]
    if length < 2:
        raise NoiseError(f"pink noise needs windows of at least 2 samples, got length {length}")
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    spec = torch.randn(
        (*shape[:-1], length // 2 + 1), generator=generator, device=device, dtype=cdtype
    )
    if length % 2 == 0:
        # The Nyquist bin of a real signal is real. pocketfft ignores its imaginary part, but a
        # C2R FFT given a non-Hermitian input is unspecified (cuFFT), so zero it explicitly.
        torch.view_as_real(spec)[..., -1, 1].zero_()
    spec.mul_(_pink_weights(length, device, dtype))
    return torch.fft.irfft(spec, n=length, dim=-1, norm="forward")


def make_noise(
    kind: str,
    shape: int | Sequence[int] | torch.Size,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    generator: Optional[torch.Generator] = None,
    band: Optional[Sequence[float]] = None,
) -> Tensor:
    """Draw raw noise of unit expected power (mean square 1), independent across all but the last axis.

    Args:
        kind: ``"gaussian"``, ``"pink"`` or ``"laplacian"``.
        shape: output shape; the last axis is time (pink noise is shaped along it).
        device: where to draw; defaults to the generator's device, else the CPU.
        dtype: a floating dtype; draws are made in float32 (float64 if asked) and cast.
        generator: a ``torch.Generator`` on ``device`` for reproducible draws.
        band: ``(low, high)`` as fractions of the sampling rate (0 <= low < high <= 0.5): the draw
            is band-limited to it (see :func:`band_limit_noise`); None: full band.

    Returns:
        A tensor of ``shape``. Its mean square is 1 in expectation, not exactly (and below 1 when
        band-limited): :func:`add_noise` rescales each window exactly.

    Raises:
        NoiseError: unknown kind, a generator on another device type, pink noise with windows
            shorter than 2 samples (a 1/f spectrum needs a non-DC bin).
        TypeError: a non-floating dtype.
    """
    kind = _check_kind(kind, allow_none=False)
    _check_float_dtype(dtype, "the requested noise")
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    _check_generator(generator, device)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    if math.prod(shape) == 0:
        return torch.empty(shape, device=device, dtype=dtype)

    if kind == "gaussian":
        out = torch.randn(shape, generator=generator, device=device, dtype=work)
    elif kind == "laplacian":
        # Inverse CDF: u ~ U[-1, 1), |x| = -b log(1 - |u|) is Exp(1/b), sign(x) = sign(u).
        # b = 1/sqrt(2) gives variance 2 b^2 = 1. Clamp keeps log finite when u = -1 is drawn.
        u = torch.empty(shape, device=device, dtype=work).uniform_(-1.0, 1.0, generator=generator)
        mag = u.abs().clamp_(max=_LAPLACE_CLAMP).neg_().log1p_().mul_(-1.0 / math.sqrt(2.0))
        out = mag.copysign_(u)
    else:
        out = _pink(shape, device, work, generator)
    if band is not None:
        out = band_limit_noise(out, band)
    return out if out.dtype == dtype else out.to(dtype)


def check_band(band: Sequence[float]) -> tuple[float, float]:
    """``(low, high)`` as fractions of the sampling rate, checked: 0 <= low < high <= 0.5."""
    try:
        low, high = (float(b) for b in band)
    except (TypeError, ValueError) as exc:
        raise NoiseError(
            f"band={band!r}: expected (low, high) as fractions of the sampling rate"
        ) from exc
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low < high <= 0.5):
        raise NoiseError(
            f"band={band!r}: expected 0 <= low < high <= 0.5 (fractions of the sampling rate)"
        )
    return low, high


def band_limit_noise(noise: Tensor, band: Sequence[float]) -> Tensor:
    """Keep only the rfft bins of each window (last axis) whose frequency lies in ``band``.

    ``band`` is ``(low, high)`` in fractions of the sampling rate. A brick-wall mask in the
    frequency domain: exact for stationary noise, zero phase, no transition band. The recordings
    of a band-limited setup are filtered by a linear-phase FIR (``fault_diag.data``) whose
    transition band is narrow, so noise and signal then occupy the same band and the SNR is the
    in-band SNR. Filtering sums many samples, so band-limited Laplacian noise keeps its spectrum
    but is closer to Gaussian in its tails than the full-band draw.
    """
    low, high = check_band(band)
    length = noise.shape[-1]
    freq = torch.fft.rfftfreq(length, device=noise.device)  # cycles per sample, 0..0.5
    keep = (freq >= low) & (freq <= high)
    spec = torch.fft.rfft(noise, dim=-1)
    spec = spec * keep.to(spec.real.dtype)
    return torch.fft.irfft(spec, n=length, dim=-1)


# --------------------------------------------------------------------------------------------
# exact scaling


def _mean_square(t: Tensor) -> Tensor:
    """Mean square over the last axis as float64, shape ``t.shape[:-1] + (1,)``.

    float32 inputs use a float32 norm (pairwise-summed, relative error ~1e-7, 30x faster than a
    float64 copy); windows whose float32 result could have under/overflowed are redone in float64.
    """
    length = t.shape[-1]
    if t.dtype == torch.float64:
        return torch.linalg.vector_norm(t, dim=-1, keepdim=True).square() / length
    ms = torch.linalg.vector_norm(t, dim=-1, keepdim=True).double().square() / length
    suspect = ~torch.isfinite(ms) | (ms < _MS_TINY_F32)
    if bool(suspect.any()):
        exact = torch.linalg.vector_norm(t, dim=-1, keepdim=True, dtype=torch.float64)
        ms = torch.where(suspect, exact.square() / length, ms)
    return ms


def _scale(
    x: Tensor, noise: Tensor, snr: Tensor, zero_power: str
) -> tuple[Tensor, Tensor]:  # (scaled noise in x's working dtype, signal mean square)
    p_signal = _mean_square(x)
    bad = ~torch.isfinite(p_signal)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0][:-1])
        raise NoiseError(
            f"window {idx} (batch, channel...) holds NaN or inf values; its signal power is "
            "undefined, so no SNR can be set (clean the recording first)"
        )
    if zero_power == "raise":
        zero = p_signal == 0
        if bool(zero.any()):
            idx = tuple(int(i) for i in zero.nonzero()[0][:-1])
            raise NoiseError(
                f"{int(zero.sum())} window(s) have zero signal power (first: {idx}); "
                "the SNR is undefined there (zero_power='raise')"
            )
    p_noise = _mean_square(noise)
    target = p_signal / torch.pow(10.0, snr / 10.0)
    # p_noise > 0 with probability 1 for a fresh draw; the guard keeps a zero window zero.
    gain = torch.where(p_noise > 0, torch.sqrt(target / p_noise), torch.zeros_like(target))
    return noise.mul_(gain.to(noise.dtype)), p_signal


def scale_noise_to_snr(
    x: Tensor, noise: Tensor, snr_db: float | Tensor, *, zero_power: str = "keep"
) -> Tensor:
    """Rescale ``noise`` (any kind, e.g. a recorded noise) so each window of ``x + noise`` has the SNR.

    Args:
        x: clean signal, floating, last axis time.
        noise: same shape as ``x``; not modified.
        snr_db: as in :func:`add_noise`.
        zero_power: as in :func:`add_noise`.

    Returns:
        The scaled noise (dtype of ``x``), to be added to ``x``.
    """
    _check_float_dtype(x.dtype, "x")
    _check_float_dtype(noise.dtype, "noise")
    if noise.shape != x.shape:
        raise NoiseError(f"noise has shape {tuple(noise.shape)} but x has {tuple(x.shape)}")
    if zero_power not in _ZERO_POWER_RULES:
        raise NoiseError(f"zero_power={zero_power!r}; expected one of {_ZERO_POWER_RULES}")
    snr = _snr_tensor(snr_db, x)
    if x.numel() == 0:
        return torch.zeros_like(x)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    xs = x.to(work)
    scaled, _ = _scale(xs, noise.to(device=x.device, dtype=work, copy=True), snr, zero_power)
    return scaled.to(x.dtype)


def add_noise(
    x: Tensor,
    snr_db: float | Tensor | None,
    kind: str,
    *,
    generator: Optional[torch.Generator] = None,
    zero_power: str = "keep",
    band: Optional[Sequence[float]] = None,
) -> Tensor:
    """Add noise of ``kind`` to raw windows so each window and channel has exactly ``snr_db``.

    Vectorised (no loop over windows); runs on ``x``'s device. The noise is drawn with
    :func:`make_noise`, then each window/channel (last axis) is rescaled so that its mean square
    is exactly ``P_signal / 10**(snr_db / 10)``; the realised SNR (:func:`realised_snr_db`) is
    within 1e-3 dB of the target for float32/float64 ``x`` (powers and gains are computed in
    float64, see ``_mean_square``). float16/bfloat16 inputs are noised in float32 and rounded back,
    which limits the realised accuracy to that of the output dtype.

    Args:
        x: raw (not normalised) signal, usually ``(batch, channels, length)``; any shape whose
            last axis is time works. Must be floating point.
        snr_db: target SNR in dB: a number, a 0-d tensor, a 1-D tensor/array with one value per
            window (``x.shape[0]`` values, applied to every channel), or a tensor broadcastable
            to ``x.shape[:-1]`` (e.g. per window and channel). Ignored (may be None) when
            ``kind="none"``.
        kind: ``"gaussian"``, ``"pink"``, ``"laplacian"``, or ``"none"`` (returns a copy of x).
        generator: ``torch.Generator`` on x's device type for a reproducible draw
            (see :func:`noise_generator`); None uses torch's global generator.
        zero_power: rule for a window whose signal power is 0 (all zeros): ``"keep"`` (default)
            adds noise of zero power, so the window stays all-zero and its realised SNR is NaN
            (0/0); ``"raise"`` raises :class:`NoiseError`. ``keep`` is the default because in an
            SNR sweep a silent segment (a sensor drop-out) has no defined SNR: inventing a noise
            level for it would need an arbitrary reference, and aborting a sweep of thousands of
            windows over one of them helps nobody; ``P_noise = 0 / 10**(snr/10) = 0`` is also
            what the definition gives.
        band: ``(low, high)`` in fractions of the sampling rate: the noise is confined to that
            band (:func:`band_limit_noise`) before it is scaled, so the SNR holds for the
            band-limited noise; None (default): full-band noise.

    Returns:
        A new tensor, same shape, dtype and device as ``x`` (never ``x`` itself).

    Raises:
        NoiseError (a ValueError): unknown kind; NaN/inf/non-numeric/bool SNR (names the value)
            or an SNR array whose shape does not fit the windows; a window containing NaN or inf;
            a generator on another device type; with ``zero_power="raise"``, a zero-power window.
        TypeError: ``x`` of integer, bool or complex dtype (noise needs floating point).

    Rules for degenerate input: an empty ``x`` (no windows, or windows of length 0) is returned
    as a copy after the kind and SNR are checked (there is nothing to add noise to). Checking
    for NaN windows costs one host-device synchronisation per call on CUDA.
    """
    kind = _check_kind(kind, allow_none=True)
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}; see add_noise_np")
    _check_float_dtype(x.dtype, "x")
    if zero_power not in _ZERO_POWER_RULES:
        raise NoiseError(f"zero_power={zero_power!r}; expected one of {_ZERO_POWER_RULES}")
    if kind == "none":
        return x.clone()
    _check_generator(generator, x.device)
    snr = _snr_tensor(snr_db, x)
    if x.numel() == 0:
        return x.clone()
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    xs = x.to(work)
    noise = make_noise(kind, x.shape, device=x.device, dtype=work, generator=generator, band=band)
    scaled, _ = _scale(xs, noise, snr, zero_power)
    out = scaled.add_(xs)
    return out if out.dtype == x.dtype else out.to(x.dtype)


def add_noise_np(
    x: np.ndarray,
    snr_db: float,
    kind: str,
    *,
    seed: int | None = None,
    zero_power: str = "keep",
) -> np.ndarray:
    """numpy convenience: noise a single recording (``(length,)`` or ``(channels, length)``).

    The SNR holds over the whole array's last axis (each channel). Windows cut from the result
    afterwards will each have an SNR *around* the target; to get it exactly per window, cut the
    windows first and use :func:`add_noise` (the training pipeline does).

    Args:
        x: floating-point array (float32 or float64; integer arrays raise TypeError).
        snr_db: target SNR in dB (anything :func:`add_noise` accepts).
        kind: as in :func:`add_noise`.
        seed: seed of a CPU generator; the same seed gives the same noise. None: fresh entropy.
        zero_power: as in :func:`add_noise`.

    Returns:
        A new array with the same shape and dtype.
    """
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(
            f"x has dtype {arr.dtype}; noise needs a floating-point array (use x.astype(np.float64))"
        )
    if arr.ndim == 0:
        raise NoiseError(
            "x is a scalar; expected a recording of shape (length,) or (channels, length)"
        )
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(derive_seed(seed, "add_noise_np"))
    t = torch.from_numpy(np.ascontiguousarray(arr))
    out = add_noise(t, snr_db, kind, generator=gen, zero_power=zero_power)
    return out.numpy().astype(arr.dtype, copy=False)


def realised_snr_db(clean: Tensor, noisy: Tensor) -> Tensor:
    """SNR in dB that ``noisy`` realises over ``clean``, per window and channel (last axis reduced).

    Computed in float64: ``10 log10(mean(clean^2) / mean((noisy - clean)^2))``. A zero-power
    clean window with zero noise gives NaN (0/0); noisy == clean with signal gives +inf.

    Returns:
        float64 tensor of shape ``clean.shape[:-1]``.
    """
    if clean.shape != noisy.shape:
        raise NoiseError(f"clean has shape {tuple(clean.shape)} but noisy has {tuple(noisy.shape)}")
    c = clean.to(torch.float64)
    n = noisy.to(device=clean.device, dtype=torch.float64) - c
    return 10.0 * torch.log10(c.square().mean(-1) / n.square().mean(-1))


# --------------------------------------------------------------------------------------------
# seeds


def _seed_token(part: object) -> str:
    if isinstance(part, Tensor):
        if part.numel() != 1:
            raise NoiseError(
                f"seed part {part!r} is a tensor with {part.numel()} values; expected one"
            )
        part = part.item()
    if part is None:
        return "none"
    if isinstance(part, bool):
        return f"b:{part}"
    if isinstance(part, numbers.Integral):
        return f"n:{int(part)}"
    if isinstance(part, numbers.Real):
        value = float(part)
        if not math.isfinite(value):
            raise NoiseError(f"seed part {part!r} is not finite")
        # 4, 4.0 and np.float32(4) name the same SNR (YAML gives ints, the schema floats).
        if value.is_integer():
            return f"n:{int(value)}"
        return f"n:{value!r}"
    if isinstance(part, str):
        return f"s:{part}"
    raise NoiseError(
        f"seed part {part!r} of type {type(part).__name__} is not supported; use str, int, float or None"
    )


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed that depends only on ``seed`` and the values of ``parts`` (not on call order).

    Numbers are compared by value (``-4``, ``-4.0`` and ``np.float64(-4)`` give the same seed);
    strings exactly. The hash (BLAKE2b) is stable across processes, platforms and Python versions,
    unlike ``hash()``.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise NoiseError(f"seed={seed!r} must be an integer")
    text = "\x1f".join(["fault_diag.noise/v1", f"seed:{int(seed)}", *map(_seed_token, parts)])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def noise_generator(
    seed: int, *parts: object, device: torch.device | str | None = None
) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded by :func:`derive_seed` (``seed``, ``*parts``).

    Use e.g. ``noise_generator(cfg.seed, "test", kind, snr_db)`` so the test set's noise depends on
    (base seed, split, kind, SNR) only, whatever else was drawn before. The same seed gives
    different streams on CPU and CUDA; fix test noise on one device type (the CPU).
    """
    gen = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    gen.manual_seed(derive_seed(seed, *parts))
    return gen


# --------------------------------------------------------------------------------------------
# training noise of a protocol


class TrainingNoise:
    """The noise a protocol puts on training windows, drawn batch by batch from one generator.

    ``matched``: every window gets ``kind`` at ``snr_db``. ``mixed``: each window gets its own SNR,
    uniform in dB on ``snr_range_db``, its own kind, drawn from ``kinds`` with ``weights``, and is
    left clean with probability ``clean_fraction``. For a mixed batch the draws come from the
    generator in a fixed order (clean mask, kinds, SNRs, then the noise of each kind for the
    windows of that kind), so a batch's noise depends only on the generator state and the batch:
    resuming at an epoch with that epoch's generator redraws it exactly.

    Args:
        kinds: noise kinds (one for matched).
        snr_range_db: ``(low, high)``; ``low == high`` for a single SNR.
        weights: relative frequency of each kind (None: equal).
        clean_fraction: probability that a window gets no noise.
        band: as in :func:`add_noise`.
    """

    def __init__(
        self,
        kinds: Sequence[str],
        snr_range_db: tuple[float, float],
        *,
        weights: Optional[Sequence[float]] = None,
        clean_fraction: float = 0.0,
        band: Optional[Sequence[float]] = None,
    ) -> None:
        if not kinds:
            raise NoiseError("TrainingNoise needs at least one noise kind")
        self.kinds = [_check_kind(k, allow_none=False) for k in kinds]
        low, high = float(snr_range_db[0]), float(snr_range_db[1])
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise NoiseError(
                f"snr_range_db={snr_range_db!r}: expected finite (low, high), low <= high"
            )
        self.snr_range_db = (low, high)
        w = [1.0] * len(self.kinds) if weights is None else [float(v) for v in weights]
        if (
            len(w) != len(self.kinds)
            or any(v < 0 or not math.isfinite(v) for v in w)
            or sum(w) <= 0
        ):
            raise NoiseError(f"weights={weights!r} do not fit the kinds {self.kinds}")
        self.weights = [v / sum(w) for v in w]
        if not 0.0 <= float(clean_fraction) <= 1.0:
            raise NoiseError(f"clean_fraction={clean_fraction!r} must lie in [0, 1]")
        self.clean_fraction = float(clean_fraction)
        self.band = None if band is None else check_band(band)

    @property
    def is_single(self) -> bool:
        """One kind at one SNR, nothing clean: the matched protocol (drawn exactly as before)."""
        return (
            len(self.kinds) == 1
            and self.snr_range_db[0] == self.snr_range_db[1]
            and self.clean_fraction == 0.0
        )

    def describe(self) -> dict[str, Any]:
        """The distribution, for the run record and the model card."""
        return {
            "kinds": list(self.kinds),
            "weights": [round(w, 6) for w in self.weights],
            "snr_db_range": list(self.snr_range_db),
            "clean_fraction": self.clean_fraction,
            "band": None if self.band is None else list(self.band),
        }

    def draw_conditions(
        self, n: int, generator: Optional[torch.Generator], device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-window ``(clean mask, kind index, SNR in dB)`` of ``n`` windows (mixed draws)."""
        u_clean = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        clean = u_clean < self.clean_fraction
        if len(self.kinds) == 1:
            kind_idx = torch.zeros(n, dtype=torch.long, device=device)
        else:
            probs = torch.tensor(self.weights, dtype=torch.float64, device=device)
            kind_idx = torch.multinomial(probs, n, replacement=True, generator=generator)
        low, high = self.snr_range_db
        u_snr = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        snr = low + (high - low) * u_snr
        return clean, kind_idx, snr

    @torch.no_grad()
    def apply(self, x: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        """A noisy copy of the batch ``x`` (windows on the first axis)."""
        if self.is_single:
            return add_noise(
                x, self.snr_range_db[0], self.kinds[0], generator=generator, band=self.band
            )
        _check_generator(generator, x.device)
        n = x.shape[0]
        clean, kind_idx, snr = self.draw_conditions(n, generator, x.device)
        out = x.clone()
        for k, kind in enumerate(self.kinds):
            sel = ((kind_idx == k) & ~clean).nonzero().flatten()
            if sel.numel() == 0:
                continue
            out[sel] = add_noise(x[sel], snr[sel], kind, generator=generator, band=self.band)
        return out


__all__ += ["TrainingNoise"]
