"""The mixed-SNR protocol (issue 13): per-window SNR, kind and clean share; config errors."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from fault_diag.noise import NoiseError, TrainingNoise, noise_generator, realised_snr_db
from fault_diag.noise_config import (
    NoiseConfigError,
    grid_conditions,
    train_condition,
    validate_noise_config,
)
from fault_diag.training.engine import epoch_inputs

MIXED = {
    "kind": "mixed",
    "snr_db": None,
    "protocol": "mixed",
    "train_snr_db_range": [-10, 10],
    "train_kinds": ["gaussian", "pink", "laplacian"],
    "clean_fraction": 0.25,
}


def _realised(tn: TrainingNoise, n: int = 6000) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 1, 128)
    return x, tn.apply(x, noise_generator(0, "mixed-test"))


def test_per_window_snr_is_uniform_on_the_range_and_exact() -> None:
    tn = TrainingNoise(["gaussian", "pink", "laplacian"], (-10.0, 10.0), clean_fraction=0.25)
    x, noisy = _realised(tn)
    snr = realised_snr_db(x, noisy).flatten()
    clean = torch.isinf(snr)
    assert abs(float(clean.float().mean()) - 0.25) < 0.02  # ~3 sigma at n = 6000
    s = snr[~clean]
    assert float(s.min()) >= -10.001 and float(s.max()) <= 10.001
    # Uniform in dB: each quarter of the range holds a quarter of the noisy windows.
    counts = torch.histc(s, bins=4, min=-10, max=10) / s.numel()
    assert torch.all((counts - 0.25).abs() < 0.03), counts
    # The SNR each window was drawn with is realised exactly: compare with the drawn values.
    clean_d, kind_d, snr_d = tn.draw_conditions(6000, noise_generator(0, "mixed-test"), x.device)
    assert torch.equal(clean_d, clean)
    assert torch.allclose(s.double(), snr_d[~clean_d], atol=1e-3)


def test_kinds_follow_their_weights() -> None:
    tn = TrainingNoise(["gaussian", "pink"], (0.0, 0.0), weights=[3.0, 1.0])
    _, kinds, _ = tn.draw_conditions(8000, noise_generator(1, "k"), torch.device("cpu"))
    assert abs(float((kinds == 0).float().mean()) - 0.75) < 0.02
    # Pink windows have a steep spectrum, white ones a flat one: the kinds really differ.
    x, noisy = _realised(TrainingNoise(["pink"], (0.0, 0.0)), 200)
    spec = torch.fft.rfft(noisy - x).abs().square().mean(dim=(0, 1))
    assert float(spec[1:8].mean()) > 10 * float(spec[-8:].mean())


def test_matched_training_noise_is_drawn_exactly_as_before() -> None:
    from fault_diag.noise import add_noise

    x = torch.randn(16, 1, 64)
    tn = TrainingNoise(["laplacian"], (-4.0, -4.0))
    assert tn.is_single
    assert torch.equal(
        tn.apply(x, noise_generator(3, "t")),
        add_noise(x, -4.0, "laplacian", generator=noise_generator(3, "t")),
    )


def test_the_fast_path_noises_a_mixed_epoch_as_the_eager_loop_does() -> None:
    tn = TrainingNoise(["gaussian", "pink", "laplacian"], (-10.0, 10.0), clean_fraction=0.25)
    x, y = torch.randn(50, 1, 64), torch.arange(50) % 3
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    x_ep, y_ep = epoch_inputs(x, y, order, 16, tn, None, noise_generator(0, "train", 4))
    gen = noise_generator(0, "train", 4)
    eager = torch.cat([tn.apply(x[order[s : s + 16]], gen) for s in range(0, 50, 16)])
    assert torch.equal(x_ep, eager) and torch.equal(y_ep, y[order])


def test_mixed_config_is_valid_and_tested_on_clean_plus_grid() -> None:
    cfg = validate_noise_config(MIXED)
    assert cfg.train_snr_db_range == [-10.0, 10.0] and cfg.clean_fraction == 0.25
    assert train_condition(cfg).kind == "mixed"
    assert len(grid_conditions(cfg)) == 3 * 11


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"train_snr_db_range": []}, "train_snr_db_range"),
        ({"train_snr_db_range": [10, -10]}, "reversed"),
        ({"train_snr_db_range": None}, "train_snr_db_range"),
        ({"train_kind_weights": [1, 2]}, "train_kind_weights"),
        ({"train_kind_weights": [0, 0, 0]}, "train_kind_weights"),
        ({"train_kinds": ["gaussian", "brown"]}, r"train_kinds\[1\]"),
        ({"clean_fraction": 1.5}, "clean_fraction"),
        ({"clean_fraction": -0.1}, "clean_fraction"),
        ({"snr_db": 0.0}, "snr_db"),
        ({"kind": "gaussian"}, "kind=mixed goes with protocol=mixed"),
    ],
)
def test_bad_mixed_settings_name_the_key(change: dict, key: str) -> None:
    with pytest.raises(NoiseConfigError, match=key):
        validate_noise_config({**MIXED, **change})


def test_training_noise_refuses_bad_distributions() -> None:
    with pytest.raises(NoiseError):
        TrainingNoise(["gaussian"], (5.0, -5.0))
    with pytest.raises(NoiseError):
        TrainingNoise(["gaussian"], (0.0, 0.0), clean_fraction=2.0)


def test_fd_train_composes_the_mixed_group_and_refuses_a_bad_range_at_compose_time() -> None:
    from hydra import compose, initialize_config_dir

    from fault_diag.config import register_configs, validate_config
    from fault_diag.paths import project_root

    register_configs()
    with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=quickstart"])
        assert cfg.noise.protocol == "mixed"
        validate_config(cfg)
        bad = compose("config", overrides=["noise.train_snr_db_range=[4,-4]"])
    with pytest.raises(NoiseConfigError, match=r"noise\.train_snr_db_range=.* is reversed"):
        validate_config(bad)
    assert OmegaConf.select(cfg, "noise.clean_fraction") == 0.25
