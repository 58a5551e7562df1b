"""``fd-train``: the Hydra entry point. Composition only; the work is in ``fault_diag.training.run``."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from fault_diag.config import register_configs

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

register_configs()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    """Train one model (or, with ``-m``, one job of a sweep)."""
    from fault_diag.training.run import run_job

    return run_job(cfg)


if __name__ == "__main__":
    main()
