"""fd-predict end to end: train one epoch (fd-train), export (fd-export), classify real CWRU files.

The trained run and its bundle are built once per session in a tmp project root and shared with
tests/test_serve.py through the session's base temp folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import project_env as _env

from fault_diag.bundle.card import CARD_FILE, BundleError
from fault_diag.bundle.load import classifier_from_state, load_bundle, load_state_dict_file
from fault_diag.data.readers import VariableFallbackWarning
from fault_diag.predict import (
    PredictError,
    RecordingTooShortError,
    UnknownRateError,
    allowed_rates,
    check_rate,
    check_windows,
    predict_recording,
)

pytestmark = pytest.mark.integration

WINDOW = 2048
REGISTERED = "fd-unit"
# 0 HP files only (so 106.mat, 1 HP, is never seen in training), non-overlapping training windows.
SMALL = [
    "model=wdcnn",  # the quickest to train and to export; every model's export is in test_export.py
    "data.loads=[0]",
    "data.train_hop=2048",
    "trainer.progress=false",
    "trainer.num_threads=1",
    "trainer.epochs=1",
    "noise=gaussian",  # matched (the default noise group is mixed)
    "noise.snr_db=0",
    "noise.test_snr_grid_db=[0]",
    "noise.test_kinds=[gaussian]",
    "tracking.experiment=unit",
]


def trained_bundle(base: Path, cwru_dir: Path) -> dict[str, str]:
    """A 1-epoch WDCNN run (model logged), its bundle, registered as fd-unit@champion.

    Built once per pytest session under ``base`` (the session's base temp folder).
    """
    root = base / "fd-trained"
    done = root / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    env = _env(root, cwru_dir, base / "fd-dataset-cache")
    proc = subprocess.run(
        [sys.executable, "-m", "fault_diag.cli.train", *SMALL, f"hydra.run.dir={root}/run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    run_id = run.info.run_id
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fault_diag.cli.export",
            run_id,
            "--out",
            str(root / "bundle"),
            "--register",
            REGISTERED,
            "--alias",
            "champion",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    info = {
        "root": str(root),
        "run_id": run_id,
        "bundle": str(root / "bundle"),
        "state": str(root / "run" / "artifacts" / "classifier_state.pt"),
        "export_stdout": proc.stdout,
    }
    done.write_text(json.dumps(info))
    return info


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cwru_dir: Path) -> dict[str, str]:
    return trained_bundle(tmp_path_factory.getbasetemp(), cwru_dir)


def _fd_predict(*args: str) -> subprocess.CompletedProcess:
    """The real command, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "fault_diag.cli.predict", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _fd_predict_inproc(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """The same entry point called in this process (saves the interpreter start and imports)."""
    from fault_diag.cli.predict import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _eager_classes(trained: dict[str, str], windows: np.ndarray) -> np.ndarray:
    """The classes the trained classifier gives in eager torch (rebuilt from the run's state dict)."""
    card = json.loads((Path(trained["bundle"]) / CARD_FILE).read_text())
    clf = classifier_from_state(card, load_state_dict_file(trained["state"]))
    with torch.no_grad():
        return clf(torch.from_numpy(windows.astype(np.float32))).argmax(1).numpy()


def _read(path: Path) -> np.ndarray:
    from fault_diag.data import read_recording

    return read_recording(path).data


def test_export_summary_and_registration(trained) -> None:
    out = trained["export_stdout"]
    assert "parity onnxruntime" in out and "real windows" in out and "FAILED" not in out
    assert f"registered: {REGISTERED} version 1 (models:/{REGISTERED}@champion)" in out
    card = json.loads((Path(trained["bundle"]) / CARD_FILE).read_text())
    assert card["mlflow_run_id"] == trained["run_id"]
    assert card["export"]["registered_model"]["alias"] == "champion"
    assert card["export"]["source"] == {"kind": "mlflow_run", "run_id": trained["run_id"]}


def test_fd_predict_on_an_unseen_cwru_file(trained, cwru_dir: Path, capsys) -> None:
    """106.mat (IR007, 1 HP) was not in the 0 HP training data; fd-predict agrees with eager torch."""
    proc = _fd_predict(trained["bundle"], str(cwru_dir / "106.mat"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    x = _read(cwru_dir / "106.mat")
    n = x.size // WINDOW
    assert result["n_windows"] == n and result["fs_recording_hz"] == 12000
    assert result["unused_tail_samples"] == x.size - n * WINDOW
    assert [w["start_sample"] for w in result["windows"]] == [i * WINDOW for i in range(n)]
    windows = x[: n * WINDOW].reshape(n, 1, WINDOW)
    expected = [result["labels"][k] for k in _eager_classes(trained, windows)]
    assert [w["label"] for w in result["windows"]] == expected
    probs = np.array(
        [[w["probabilities"][lab] for lab in result["labels"]] for w in result["windows"]]
    )
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    mean = probs.mean(0)
    assert result["verdict_mean_probability"]["label"] == result["labels"][int(mean.argmax())]
    votes = {lab: expected.count(lab) for lab in set(expected)}
    assert result["verdict_majority"]["votes"] == max(votes.values())
    # the human-readable form
    code, out, err = _fd_predict_inproc(
        capsys, trained["bundle"], str(cwru_dir / "106.mat"), "--stop", str(5 * WINDOW)
    )
    assert code == 0, err
    assert "5 windows, hop 2048" in out
    assert "verdict (mean probability): " in out and "verdict (majority vote):" in out


def test_pt2_runtime_gives_the_same_probabilities(trained, cwru_dir: Path) -> None:
    onnx_res = predict_recording(trained["bundle"], cwru_dir / "118.mat", stop=10 * WINDOW)
    pt2_res = predict_recording(
        trained["bundle"], cwru_dir / "118.mat", stop=10 * WINDOW, runtime="pt2"
    )
    assert pt2_res.runtime == "torch.export (.pt2)" and onnx_res.runtime == "onnxruntime"
    for a, b in zip(onnx_res.windows, pt2_res.windows, strict=True):
        assert a.label == b.label
        np.testing.assert_allclose(
            list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5
        )


def test_48khz_recording_is_resampled_and_npy_needs_the_rate(
    trained, cwru_dir: Path, tmp_path: Path, capsys
) -> None:
    from fault_diag.data import resample

    mat = predict_recording(trained["bundle"], cwru_dir / "97.mat")
    assert mat.fs_recording_hz == 48000 and "catalogue" in mat.fs_source
    assert "decimate q=4" in mat.resampling
    x = _read(cwru_dir / "97.mat")
    assert mat.n_windows == resample(x, 48000, 12000).size // WINDOW
    npy = tmp_path / "normal.npy"
    np.save(npy, x)
    with pytest.raises(UnknownRateError, match="--fs-hz"):
        predict_recording(trained["bundle"], npy)
    code, _, err = _fd_predict_inproc(capsys, trained["bundle"], str(npy))
    assert code == 2 and "does not record its sampling rate; pass --fs-hz" in err
    same = predict_recording(trained["bundle"], npy, fs_hz=48000)
    assert [w.label for w in same.windows] == [w.label for w in mat.windows]
    np.testing.assert_allclose(same.windows[3].probability, mat.windows[3].probability, rtol=1e-6)
    # the wrong rate is the user's call, and visibly changes the windowing
    wrong = predict_recording(trained["bundle"], npy, fs_hz=12000)
    assert wrong.n_windows == x.size // WINDOW != mat.n_windows


def test_csv_with_a_named_column(trained, cwru_dir: Path, tmp_path: Path) -> None:
    x = _read(cwru_dir / "106.mat")[: 3 * WINDOW + 100]
    csv = tmp_path / "rec.csv"
    csv.write_text(
        "time_s,DE\n" + "\n".join(f"{i / 12000:.6f},{float(v)!r}" for i, v in enumerate(x)) + "\n"
    )
    res = predict_recording(trained["bundle"], csv, fs_hz=12000)
    ref = predict_recording(trained["bundle"], cwru_dir / "106.mat", stop=3 * WINDOW)
    assert res.n_windows == 3 and res.unused_tail_samples == 100 and res.variable == "DE"
    for a, b in zip(res.windows, ref.windows, strict=True):
        assert a.label == b.label
        assert a.probability == pytest.approx(b.probability, rel=1e-5)


def test_test_region_selection(trained, cwru_dir: Path) -> None:
    card = json.loads((Path(trained["bundle"]) / CARD_FILE).read_text())
    rec = next(r for r in card["split_protocol"]["recordings"] if r["file"] == "105.mat")
    start, stop = rec["regions"]["test"][:2]
    res = predict_recording(trained["bundle"], cwru_dir / "105.mat", start=start, stop=stop)
    assert res.windows[0].start_sample == start
    assert res.n_windows == (stop - start) // WINDOW == rec["regions"]["test"][2]
    with pytest.raises(PredictError, match="0 <= start < stop <="):
        predict_recording(trained["bundle"], cwru_dir / "105.mat", start=stop, stop=start)


def test_bad_recordings_get_clear_errors(trained, cwru_dir: Path, tmp_path: Path, capsys) -> None:
    short = tmp_path / "short.npy"
    np.save(short, np.random.default_rng(0).normal(size=1000))
    with pytest.raises(
        RecordingTooShortError, match="1000 samples at 12000 Hz .* shorter than one window of 2048"
    ):
        predict_recording(trained["bundle"], short, fs_hz=12000)
    # 48 kHz: one 12 kHz window needs 8192 samples
    with pytest.raises(RecordingTooShortError, match="needs 8192 samples at 48000 Hz"):
        predict_recording(trained["bundle"], short, fs_hz=48000)

    nan = tmp_path / "nan.npy"
    x = np.random.default_rng(1).normal(size=5 * WINDOW)
    x[5000] = np.nan
    np.save(nan, x)
    code, _, err = _fd_predict_inproc(capsys, trained["bundle"], str(nan), "--fs-hz", "12000")
    assert code == 2
    assert "nan.npy" in err and "NaN/Inf" in err and "index 5000" in err

    renamed = tmp_path / "my_recording.mat"
    shutil.copy(cwru_dir / "106.mat", renamed)
    with pytest.raises(UnknownRateError, match="no built-in source.s catalogue has this file name"):
        predict_recording(trained["bundle"], renamed)
    with pytest.warns(VariableFallbackWarning, match="using the only DE variable 'X106_DE_time'"):
        ok = predict_recording(trained["bundle"], renamed, fs_hz=12000, stop=2 * WINDOW)
    assert ok.n_windows == 2 and ok.variable == "X106_DE_time"
    assert any("X106_DE_time" in note for note in ok.notes)  # printed under the verdicts

    with pytest.raises(PredictError, match="unsupported format"):
        predict_recording(trained["bundle"], tmp_path / "rec.wav")
    with pytest.raises(PredictError, match="no such file"):
        predict_recording(trained["bundle"], tmp_path / "absent.mat")


def test_fd_predict_refuses_a_tampered_or_incomplete_bundle(
    trained, cwru_dir: Path, tmp_path: Path, capsys
) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(trained["bundle"], bundle)
    card = json.loads((bundle / CARD_FILE).read_text())
    card["labels"][0], card["labels"][1] = card["labels"][1], card["labels"][0]
    (bundle / CARD_FILE).write_text(json.dumps(card))
    code, out, err = _fd_predict_inproc(capsys, str(bundle), str(cwru_dir / "106.mat"))
    assert code == 2
    assert "model_card.json and model.onnx disagree on ['labels']" in err
    assert out == ""
    (bundle / CARD_FILE).unlink()
    code, out, err = _fd_predict_inproc(capsys, str(bundle), str(cwru_dir / "106.mat"))
    assert code == 2 and "model_card.json is missing" in err
    with pytest.raises(BundleError):
        load_bundle(bundle)


def test_fd_export_from_a_registered_alias(trained, tmp_path: Path, monkeypatch, capsys) -> None:
    from fault_diag.bundle.card import SourceError
    from fault_diag.bundle.write import export_from_source
    from fault_diag.cli.export import main as fd_export

    monkeypatch.setenv("FAULT_DIAG_ROOT", trained["root"])  # the store is <root>/mlflow.db
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "from_alias"
    capsys.readouterr()
    code = fd_export(
        [f"models:/{REGISTERED}@champion", "--out", str(out), "--real-windows", "skip", "--json"]
    )
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["export"]["source"]["kind"] == "registered_model"
    assert report["export"]["source"]["run_id"] == trained["run_id"]
    assert report["parity"]["real_windows"]["status"] == "skipped"
    # same weights as the bundle exported from the run id
    x = np.random.default_rng(0).normal(size=(3, 1, WINDOW)).astype(np.float32)
    np.testing.assert_allclose(
        load_bundle(out).logits(x), load_bundle(trained["bundle"]).logits(x), rtol=1e-6
    )
    with pytest.raises(
        SourceError, match=f"registered model 'models:/{REGISTERED}@nope' not found"
    ):
        export_from_source(f"models:/{REGISTERED}@nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------- envelope, band, AdaBN (issue 12/13)


def test_predict_prints_the_training_envelope_and_warns_for_a_single_snr_model(
    trained, cwru_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = _fd_predict_inproc(capsys, trained["bundle"], str(cwru_dir / "106.mat"))
    assert code == 0, err
    assert "trained on: matched protocol, SNR 0 dB, kinds gaussian, full band" in out
    assert "warning: this model was trained at one SNR (0 dB" in out


def test_a_band_limited_card_filters_the_recording_as_in_training(trained, cwru_dir: Path) -> None:
    from fault_diag.bundle.load import load_bundle
    from fault_diag.data.filters import band_limit
    from fault_diag.data.readers import read_recording
    from fault_diag.predict import cut_windows, predict_recording

    bundle = load_bundle(trained["bundle"])
    plain = predict_recording(bundle, cwru_dir / "106.mat")
    assert plain.band_hz is None
    bundle.card["band_hz"] = [0.0, 4000.0]  # as a band-limited training run writes it
    res = predict_recording(bundle, cwru_dir / "106.mat")
    assert res.band_hz == [0.0, 4000.0]
    x = band_limit(read_recording(cwru_dir / "106.mat", "DE").data, 12000, [0.0, 4000.0])
    windows, _ = cut_windows(x, 2048, 2048)
    expected = bundle.probabilities(windows)
    got = np.array([[w.probabilities[lab] for lab in bundle.labels] for w in res.windows])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert not np.allclose(
        got, [[w.probabilities[lab] for lab in bundle.labels] for w in plain.windows]
    )


def test_adapt_bn_rebuilds_the_bundle_model_and_adapts_only_batchnorm(
    trained, cwru_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    import torch

    from fault_diag.bundle.load import load_bundle
    from fault_diag.predict import torch_classifier

    bundle = load_bundle(trained["bundle"])
    model = torch_classifier(bundle)
    x = np.random.default_rng(0).normal(size=(5, 1, 2048)).astype(np.float32)
    with torch.no_grad():  # the rebuilt module is the exported classifier
        np.testing.assert_allclose(
            model(torch.from_numpy(x)).numpy(), bundle.logits(x), rtol=1e-4, atol=1e-5
        )
    code, out, err = _fd_predict_inproc(
        capsys, trained["bundle"], str(cwru_dir / "106.mat"), "--adapt-bn", "--json"
    )
    assert code == 0, err
    adapted = json.loads(out)
    assert adapted["adapt_bn"] is True
    assert any(n.startswith("AdaBN: BatchNorm statistics re-estimated") for n in adapted["notes"])
    code, out, _ = _fd_predict_inproc(
        capsys, trained["bundle"], str(cwru_dir / "106.mat"), "--json"
    )
    plain = json.loads(out)
    assert adapted["mean_probability"] != plain["mean_probability"]
    # The bundle on disk is untouched: the plain verdict is the same after an adapted one.
    code, out, _ = _fd_predict_inproc(
        capsys, trained["bundle"], str(cwru_dir / "106.mat"), "--json"
    )
    assert json.loads(out)["mean_probability"] == plain["mean_probability"]


# ----------------------------------------------------- absurd rates and hops (issue 18, item 7)


def test_rate_range_and_resampling_filter_limits() -> None:
    """Checked before anything is resampled: --fs-hz 1e12 used to build a 37 GiB filter, --fs-hz 7
    gave a confident verdict on 25,111 windows upsampled 1714x."""
    for ok in (1500, 8000, 12000, 25600, 44100, 48000, 51200, 12_000_000):
        check_rate(ok, 12000)
    for absurd in (7, 1499, 12_000_001, 1_000_000_000_000):
        with pytest.raises(PredictError, match="accepted for this model: 1500 to 12000000 Hz"):
            check_rate(absurd, 12000)
    # in range, but coprime with 12 kHz: up=12000, down=11999999 would need 240 M filter taps
    with pytest.raises(PredictError, match="polyphase filter with up=12000, down=11999999"):
        check_rate(11_999_999, 12000)
    assert allowed_rates(12000) == (1500, 12_000_000)


def test_hop_range_keeps_the_windows_in_memory() -> None:
    check_windows(300_000, 12000, 12000, 2048, 2048)
    check_windows(300_000, 12000, 12000, 2048, 3)  # 99k windows: 0.8 GiB, accepted
    for hop, why in (
        (0, "not a usable"),
        (-5, "not a usable"),
        (1, "297,953 windows"),
        (10**20, "not a usable"),
    ):
        with pytest.raises(
            PredictError, match=rf"--hop {hop}: {why}.*accepted for this recording: 3 to"
        ):
            check_windows(300_000, 12000, 12000, 2048, hop)
    with pytest.raises(PredictError, match="--start/--stop"):
        check_windows(300_000_000, 12000, 12000, 2048, 2048)  # 300 M samples in one call


def test_fd_predict_refuses_absurd_rates_and_hops_in_one_line(
    trained, tmp_path: Path, capsys
) -> None:
    rec = tmp_path / "sig.npy"
    np.save(rec, np.random.default_rng(0).standard_normal(300_000).astype(np.float32))
    for args, expected in (
        (["--fs-hz", "1000000000000"], "a recording rate of 1000000000000 Hz is outside the range"),
        (["--fs-hz", "7"], "a recording rate of 7 Hz is outside the range accepted for this model"),
        (["--fs-hz", "inf"], "--fs-hz=inf is invalid"),
        (["--fs-hz", "12000", "--hop", "1"], "--hop 1: 297,953 windows of 2048 samples"),
    ):
        code, out, err = _fd_predict_inproc(capsys, trained["bundle"], str(rec), *args)
        assert code == 2 and out == "", err
        assert err.startswith(f"fd-predict: error: {expected}") and err.count("\n") == 1, err
