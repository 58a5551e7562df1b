"""fd-predict's verdict on every CWRU recording, clean and with noise at one SNR (issue 13 item 5).

For each recording of the setup (36 fault files + 97.mat in cwru10) the exported bundle classifies
the recording's **test region** only (every recording was used in training; its test region, cut
by the same leak-free time split, was not): the region is taken from the built dataset's window
table, at the model's rate. The noisy versions add noise to that whole region (at the model's rate,
after the 48 kHz normal recording is decimated, so every recording gets the same in-band SNR) and
run it through ``fault_diag.predict.predict_recording`` exactly as ``fd-predict`` does (the bundle's
band filter, windows, onnxruntime). The verdict is the class of the mean probability over windows.

    python scripts/verdicts.py --bundle BUNDLE [--snr-db 0] [--out docs/results/verdicts.md]

``FAULT_DIAG_DATA_DIR`` names the recordings folder, as for every command.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KINDS = ("gaussian", "pink", "laplacian")


def test_regions(setup_cfg: dict) -> dict[str, tuple[int, int, str]]:
    """``{file: (start, stop, class)}`` of each recording's test region, model-rate samples."""
    from fault_diag.data import build_dataset

    ds = build_dataset(setup_cfg)
    test = ds.meta[ds.meta["split"] == "test"]
    out = {}
    for file, rows in test.groupby("file"):
        out[str(file)] = (
            int(rows["start"].min()),
            int(rows["stop"].max()),
            str(rows["class_name"].iloc[0]),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="an fd-export bundle folder")
    p.add_argument("--snr-db", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise")
    p.add_argument("--out", default=None, help="write the Markdown table here (default: stdout)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from fault_diag.bundle.load import load_bundle
    from fault_diag.data.readers import read_recording
    from fault_diag.data.resample import resample
    from fault_diag.noise import add_noise_np
    from fault_diag.paths import recordings_dir
    from fault_diag.predict import predict_recording

    bundle = load_bundle(args.bundle)
    card = bundle.card
    split = card["split_protocol"]
    data_cfg = {
        "setup": split["setup"],
        "fs_hz": card["sampling_rate_hz"],
        "window_length": card["window_length"],
        "channel": card["channel"],
        "split_fractions": split["split_fractions"],
        "train_hop": split["train_hop"],
        "band_hz": split.get("band_hz"),
    }
    regions = test_regions(data_cfg)
    folder = recordings_dir()
    fs = int(card["sampling_rate_hz"])
    conditions = ["clean", *KINDS]
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for file, (start, stop, label) in sorted(
            regions.items(), key=lambda kv: int(Path(kv[0]).stem)
        ):
            path = folder / file
            sig = read_recording(path, card["channel"], int(Path(file).stem))
            x = resample(sig.data, _rate(split, file), fs)
            segment = np.ascontiguousarray(x[start:stop])
            row: dict[str, object] = {
                "file": file,
                "class": label,
                "windows": (stop - start) // card["window_length"],
            }
            for cond in conditions:
                y = (
                    segment
                    if cond == "clean"
                    else add_noise_np(
                        segment, args.snr_db, cond, seed=args.seed * 1000 + int(Path(file).stem)
                    )
                )
                npy = Path(tmp) / f"{Path(file).stem}_{cond}.npy"
                np.save(npy, y.astype(np.float32))
                res = predict_recording(bundle, npy, fs_hz=fs)
                verdict = res.verdict_mean_probability["label"]
                share = sum(w.label == label for w in res.windows) / len(res.windows)
                row[cond] = (verdict, share)
            rows.append(row)
    seconds = time.perf_counter() - t0

    env = card.get("envelope") or {}
    source = card.get("export", {}).get("source", {})
    lines = [
        f"# fd-predict verdicts at {args.snr_db:g} dB",
        "",
        f"Regenerate: `python scripts/verdicts.py --bundle BUNDLE --snr-db {args.snr_db:g}` (or "
        "`make verdicts VERDICT_RUN=<run>`), on "
        f"{time.strftime('%Y-%m-%d')}. Model: {card['model']['name']}, {env.get('protocol')} protocol "
        f"(SNR {env.get('train_snr_db_range')} dB, kinds {env.get('train_kinds')}, "
        f"{env.get('clean_fraction', 0):.0%} clean), band {card.get('band_hz') or 'full'}, trained at "
        f"commit {str(card.get('git_commit', '?'))[:7]} (run {card.get('mlflow_run_id')}, "
        f"exported from {source.get('kind', 'a run folder')}).",
        "",
        "Each recording's test region; noise at "
        f"{args.snr_db:g} dB added at {fs} Hz (seed {args.seed}); verdict = class of the mean "
        "probability over the windows; in brackets the share of windows classified correctly.",
        "",
        "| file | class | windows | "
        + " | ".join(f"{c}" if c == "clean" else f"{c} {args.snr_db:g} dB" for c in conditions)
        + " |",
        "|---|---|---:|" + "|".join("---" for _ in conditions) + "|",
    ]
    correct = dict.fromkeys(conditions, 0)
    for row in rows:
        cells = []
        for cond in conditions:
            verdict, share = row[cond]  # type: ignore[misc]
            ok = verdict == row["class"]
            correct[cond] += ok
            cells.append(f"{'✓' if ok else '✗ ' + verdict} ({share:.0%})")
        lines.append(
            f"| {row['file']} | {row['class']} | {row['windows']} | " + " | ".join(cells) + " |"
        )
    lines.append(
        "| **correct verdicts** | | | "
        + " | ".join(f"**{correct[c]} / {len(rows)}**" for c in conditions)
        + " |"
    )
    lines += ["", f"({len(rows)} recordings x {len(conditions)} conditions in {seconds:.0f} s)"]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


def _rate(split: dict, file: str) -> int:
    """The recording's own sampling rate, from the card's provenance of the training recordings."""
    for rec in split.get("recordings", []):
        if rec["file"] == file:
            return int(rec["fs_orig_hz"])
    raise SystemExit(f"{file}: not among the model's training recordings")


if __name__ == "__main__":
    sys.exit(main())
