"""Plotting helpers. Figures are built with matplotlib's object API on the Agg canvas: no display,
no pyplot global state, safe in tests, workers and headless servers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from fault_diag.noise import NoiseError, add_noise_np, realised_snr_db

if TYPE_CHECKING:
    from fault_diag.data.spectral import BandProfile, SpectralFlag


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself to fig; Agg renders without a display
    return fig


def plot_noisy_example(
    signal: np.ndarray,
    fs_hz: float,
    snr_db: float,
    kind: str,
    seed: int | None = 0,
    *,
    span_s: float = 0.05,
    nperseg: int = 1024,
) -> Figure:
    """Show a clean signal next to its noisy version: a short time span and both Welch spectra.

    Noise is added with :func:`fault_diag.noise.add_noise_np` at ``snr_db`` over the whole
    ``signal`` (so the realised SNR, printed in the title, is exact for the whole array).

    Args:
        signal: 1-D raw signal (e.g. a window or a stretch of a CWRU recording), floating point;
            torch tensors are accepted and copied to numpy.
        fs_hz: sampling rate in Hz (sets the time and frequency axes).
        snr_db: target SNR in dB.
        kind: ``"gaussian"``, ``"pink"`` or ``"laplacian"`` (``"none"`` plots the signal twice).
        seed: noise seed (None: fresh entropy).
        span_s: seconds of signal drawn in the time panel (from the start).
        nperseg: Welch segment length (capped at the signal length).

    Returns:
        A matplotlib ``Figure`` with two axes: ``axes[0]`` amplitude vs time (clean and noisy),
        ``axes[1]`` PSD vs frequency on log-log axes (clean and noisy). Save it with
        :func:`save_figure` (or ``fig.savefig``).

    Raises:
        NoiseError: a signal that is not 1-D or is empty, a non-positive ``fs_hz`` or ``span_s``,
            plus whatever :func:`fault_diag.noise.add_noise_np` raises for bad SNR or kind.
        TypeError: an integer signal.
    """
    if hasattr(signal, "detach"):
        signal = signal.detach().cpu().numpy()
    x = np.asarray(signal)
    if x.ndim != 1 or x.size == 0:
        raise NoiseError(f"signal must be a non-empty 1-D array, got shape {x.shape}")
    if not np.isfinite(fs_hz) or fs_hz <= 0:
        raise NoiseError(f"fs_hz={fs_hz!r} must be a positive sampling rate in Hz")
    if not np.isfinite(span_s) or span_s <= 0:
        raise NoiseError(f"span_s={span_s!r} must be a positive duration in seconds")
    from scipy.signal import welch  # here: scipy.signal costs a second to import

    noisy = add_noise_np(x, snr_db, kind, seed=seed)

    import torch  # local: realised_snr_db works on tensors

    realised = float(realised_snr_db(torch.from_numpy(x), torch.from_numpy(noisy)))
    n_show = max(2, min(x.size, int(round(span_s * fs_hz))))
    t_ms = np.arange(n_show) / fs_hz * 1e3
    seg = min(nperseg, x.size)
    f_clean, p_clean = welch(x.astype(np.float64), fs=fs_hz, nperseg=seg)
    f_noisy, p_noisy = welch(noisy.astype(np.float64), fs=fs_hz, nperseg=seg)
    keep = f_clean > 0  # log frequency axis: drop DC

    fig = _new_figure((10.0, 4.0))
    ax_t, ax_f = fig.subplots(1, 2)
    ax_t.plot(t_ms, noisy[:n_show], color="tab:red", lw=0.8, alpha=0.8, label=f"noisy ({kind})")
    ax_t.plot(t_ms, x[:n_show], color="tab:blue", lw=1.0, label="clean")
    ax_t.set_xlabel("time (ms)")
    ax_t.set_ylabel("amplitude")
    ax_t.set_title(f"first {n_show / fs_hz * 1e3:g} ms")
    ax_t.legend(loc="upper right", fontsize="small")

    ax_f.loglog(f_noisy[keep], p_noisy[keep], color="tab:red", lw=0.8, label=f"noisy ({kind})")
    ax_f.loglog(f_clean[keep], p_clean[keep], color="tab:blue", lw=1.0, label="clean")
    ax_f.set_xlabel("frequency (Hz)")
    ax_f.set_ylabel("PSD (units$^2$/Hz)")
    ax_f.set_title(f"Welch PSD, nperseg={seg}")
    ax_f.legend(loc="lower left", fontsize="small")
    shown = f"{realised:.3f}".replace("-0.000", "0.000")  # no "-0.000" for a tiny negative error
    fig.suptitle(f"{kind} noise, target SNR {snr_db:g} dB, realised {shown} dB")
    return fig


FLAG_COLOURS = {"high": "tab:red", "low": "tab:cyan"}


def plot_band_profile(
    profile: BandProfile,
    flags: Sequence[SpectralFlag] = (),
    *,
    title: str | None = None,
) -> Figure:
    """Heat map of a setup's band power profile: classes (rows) x bands (columns), shares in %.

    Each cell shows the class's mean per-window share of power in the band (from
    :func:`fault_diag.data.spectral.band_power_profile`); a colour bar gives the scale (0-100 %).
    Flags from :func:`fault_diag.data.spectral.flag_spectral_outliers` are outlined over the run of
    bands they name: red when the class holds far more power there than every other class, cyan when
    far less.

    Args:
        profile: the band profile.
        flags: flags to outline (usually all of ``flag_spectral_outliers(profile)``).
        title: figure title (default: "band power profile").

    Returns:
        A matplotlib ``Figure`` with the heat map in ``axes[0]`` and the colour bar in ``axes[1]``;
        save it with :func:`save_figure`.
    """
    shares = np.asarray(profile.shares, dtype=np.float64) * 100
    n_classes, n_bands = shares.shape
    fig = _new_figure((max(6.0, 1.0 * n_bands + 3.0), max(3.0, 0.42 * n_classes + 1.6)))
    ax = fig.subplots()
    im = ax.imshow(shares, aspect="auto", cmap="viridis", vmin=0.0, vmax=100.0)
    ax.set_xticks(range(n_bands), labels=[f"{lab}Hz" for lab in profile.band_labels()])
    ax.set_yticks(range(n_classes), labels=profile.class_names)
    ax.set_xlabel("frequency band")
    ax.set_ylabel("class")
    for r in range(n_classes):
        for c in range(n_bands):
            v = shares[r, c]
            # Dark text on the bright (yellow) end of viridis, light text elsewhere.
            ax.text(
                c,
                r,
                "-" if np.isnan(v) else f"{v:.1f}",
                ha="center",
                va="center",
                fontsize="small",
                color="black" if v > 60 else "white",
            )
    edges = profile.band_edges_hz
    for flag in flags:
        if flag.class_name not in profile.class_names:
            continue
        row = profile.class_names.index(flag.class_name)
        first = int(np.argmin(np.abs(np.asarray(edges[:-1]) - flag.band_hz[0])))
        last = int(np.argmin(np.abs(np.asarray(edges[1:]) - flag.band_hz[1])))
        ax.add_patch(
            Rectangle(
                (first - 0.5, row - 0.5),
                last - first + 1,
                1,
                fill=False,
                edgecolor=FLAG_COLOURS.get(flag.direction, "tab:red"),
                linewidth=2.5,
                clip_on=False,  # a flag on the first or last row/column stays whole
            )
        )
    if flags:
        used = sorted({f.direction for f in flags}, key=list(FLAG_COLOURS).index)
        fig.legend(
            handles=[
                Patch(
                    facecolor="none",
                    edgecolor=FLAG_COLOURS[d],
                    linewidth=2.5,
                    label=f"flag: far {'more' if d == 'high' else 'less'} than every other class",
                )
                for d in used
            ],
            loc="outside lower center",  # below the axes; constrained layout makes room
            ncol=len(used),
            fontsize="small",
            frameon=False,
        )
    fig.colorbar(im, ax=ax, label="share of window power (%)")
    ax.set_title(title or "band power profile")
    return fig


#: Resolution of the PNG copy of a publication figure (the SVG copy is resolution-free).
PUBLICATION_DPI = 200


def plot_confusion_matrix(
    cm: np.ndarray, class_names: Sequence[str], title: str = "confusion matrix"
) -> Figure:
    """A confusion matrix for a paper: each row normalised to the share (%) of its true class, on a
    fixed 0-100 % colour scale with a colour bar; every cell shows the share and, below it, the
    count of windows (x draws).

    Args:
        cm: ``(classes, classes)`` counts, rows = true class, columns = predicted class.
        class_names: the name of each class, in the order of ``cm``.
        title: the axes title.
    """
    counts = np.asarray(cm, dtype=float)
    n = len(class_names)
    if counts.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {counts.shape} for {n} class names")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(100 * counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = max(4.5, 0.55 * n + 2.5)
    fig = _new_figure((side + 1.0, side))
    ax = fig.add_subplot()
    im = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=100.0)
    fig.colorbar(im, ax=ax, label="share of the true class (%)", shrink=0.85)
    small = n > 8
    for i in range(n):
        for j in range(n):
            colour = "white" if shares[i, j] > 55 else "black"
            text = f"{shares[i, j]:.0f}" + ("" if small else f"\n({counts[i, j]:.0f})")
            ax.text(j, i, text, ha="center", va="center", fontsize=7 if small else 8, color=colour)
    ax.set_xticks(range(n), list(class_names), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), list(class_names), fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    return fig


def save_publication(fig: Figure, path: str | os.PathLike[str]) -> list[Path]:
    """``fig`` as SVG and as a :data:`PUBLICATION_DPI` PNG (``path`` with either suffix, or none);
    both atomic (:func:`save_figure`), the SVG without a creation date and with fixed ids, so that
    a regenerated figure is byte-identical. Returns ``[svg, png]``."""
    import matplotlib

    base = Path(path)
    if base.suffix.lower() in (".png", ".svg"):
        base = base.with_suffix("")
    with matplotlib.rc_context({"svg.hashsalt": "fault-diag"}):
        svg = save_figure(fig, base.with_name(base.name + ".svg"), metadata={"Date": None})
    png = save_figure(fig, base.with_name(base.name + ".png"), dpi=PUBLICATION_DPI)
    return [svg, png]


def save_figure(
    fig: Figure,
    path: str | os.PathLike[str],
    *,
    dpi: int = PUBLICATION_DPI,
    metadata: dict[str, str | None] | None = None,
) -> Path:
    """Save ``fig`` atomically (temp file in the same folder, then ``os.replace``); returns the path.

    The format follows the suffix (``.png``, ``.pdf``, ``.svg``); the folder is created if needed.
    A failed save leaves no partial file behind.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = out.suffix.lstrip(".").lower() or "png"
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=dpi, metadata=metadata)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def plot_snr_curves(
    curves: dict[str, list[tuple[float, float]]],
    title: str,
    *,
    ylabel: str = "balanced accuracy",
    chance: float | None = None,
) -> Figure:
    """One run's score against SNR: one line per curve (e.g. per noise kind; a label ending in
    ``(AdaBN)`` is drawn dashed), the chance level dotted, the legend outside the data.

    Args:
        curves: label -> ``[(snr_db, value), ...]``.
        title: the axes title.
        ylabel: what the values are.
        chance: the chance level (1 / classes), drawn when given.
    """
    fig = _new_figure((6.4, 3.8))
    ax = fig.add_subplot()
    for label, points in curves.items():
        xs = [x for x, _ in points]
        ys = [y for _, y in points]
        ax.plot(xs, ys, marker="o", ms=3, lw=1.4, ls="--" if label.endswith("(AdaBN)") else "-",
                label=label)  # fmt: skip
    if chance is not None:
        ax.axhline(chance, color="0.5", lw=0.8, ls=":", label="chance")
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig
