"""Hydra structured-config schemas, registered in the ConfigStore.

Every YAML file under ``conf/`` is validated against these dataclasses at compose time, so a typo in a
key (``trainer.epoch=3``) or a wrong type (``trainer.epochs=ten``) fails before any work starts, with
Hydra's message naming the key. Value checks that a type cannot express (an unknown model or noise name,
a negative SNR grid step) live in :func:`validate_config`, which lists the valid choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from fault_diag.data.config import DataConfig
from fault_diag.noise_config import NoiseConfig
from fault_diag.paths import project_root


@dataclass
class ModelConfig:
    """A registered model by name plus its builder's keyword arguments (see ``fault_diag.models``)."""

    name: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainerConfig:
    """Optimisation and runtime settings.

    Defaults follow the DRSN paper (Zhao et al., IEEE TII 2020, section IV): SGD with momentum 0.9,
    weight decay 1e-4, batch 128, learning rate 0.1 divided by 10 at 40 % and 80 % of the epochs
    (their 40/40/20 of 100 epochs).
    """

    epochs: int = 100
    batch_size: int = 128
    eval_batch_size: int = 1024
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_milestones: list[float] = field(default_factory=lambda: [0.4, 0.8])  # fractions of epochs
    lr_gamma: float = 0.1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False  # bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX)
    seed: int = 0
    num_threads: Optional[int] = None  # torch intra-op threads; None = min(cores, 2 per job)
    progress: bool = True
    early_stopping_patience: Optional[int] = None  # epochs without a better selection score
    # Which epoch's weights are tested: val_loss | val_acc | last (fault_diag.training.selection);
    # val_loss because val/acc saturates at 1.000 before the learning rate is annealed on CWRU.
    select: str = "val_loss"
    resume: bool = True  # continue from <output_dir>/checkpoints/last.pt when it exists
    deterministic: bool = True
    # torch.compile of the training step (fault_diag.training.engine); eager (false) is the
    # reference, and docs/benchmarks.md says when compiling pays.
    # compile_mode: auto | default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs
    compile: bool = False
    compile_mode: str = "auto"


@dataclass
class EvalConfig:
    """How the trained model is scored on the test split (fault_diag.training.evaluation)."""

    # AdaBN (Li et al. 2016): also score every test condition after re-estimating BatchNorm
    # statistics on that condition's unlabelled test windows; logged apart as .../adabn.
    adapt_bn: bool = True


@dataclass
class TrackingConfig:
    """Where runs are recorded. ``backend: none`` trains without MLflow."""

    backend: str = "mlflow"  # mlflow | none | package.module:Class (fault_diag.tracker)
    tracking_uri: Optional[str] = (
        None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<root>/mlflow.db
    )
    experiment: str = "fault-diag"  # one MLflow experiment per study
    run_name: Optional[str] = None
    log_model: bool = True
    tags: dict[str, str] = field(default_factory=dict)
    # CPU, memory, disk (and GPU with pynvml) use every 10 s as system/* metrics (MLflow)
    system_metrics: bool = False


@dataclass
class PathsConfig:
    """Filesystem locations; absolute, resolved from the project root (Hydra 1.3 does not chdir)."""

    root: str = "${fd_root:}"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class Config:
    """The whole composed configuration of ``fd-train``."""

    data: DataConfig = field(default_factory=DataConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)


#: Accepted values of ``trainer.compile_mode``; ``auto`` is resolved by
#: :func:`fault_diag.training.engine.resolve_compile_mode`.
COMPILE_MODES = ("auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Accepted values of ``trainer.select`` (fault_diag.training.selection).
SELECT_RULES: tuple[str, ...] = ("val_loss", "val_acc", "last")

_REGISTERED = False
_SCHEMAS: dict[str, type] = {}  # annotation string -> dataclass (filled below)


def register_configs() -> None:
    """Register the schemas and the ``fd_root`` resolver (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    if not OmegaConf.has_resolver("fd_root"):
        OmegaConf.register_new_resolver("fd_root", lambda: str(project_root()))
    cs = ConfigStore.instance()
    cs.store(name="fd_config", node=Config)
    cs.store(group="data", name="base_data", node=DataConfig)
    cs.store(group="noise", name="base_noise", node=NoiseConfig)
    cs.store(group="model", name="base_model", node=ModelConfig)
    cs.store(group="trainer", name="base_trainer", node=TrainerConfig)
    cs.store(group="tracking", name="base_tracking", node=TrackingConfig)
    cs.store(group="paths", name="base_paths", node=PathsConfig)
    _REGISTERED = True


def as_config(cfg: DictConfig | Config) -> Config:
    """The typed :class:`Config` of a composed Hydra config (itself when already typed).

    Called once, at an entry point (``fd-train``'s job, ``fd-sweep``, :func:`train` called from a
    notebook), so that everything below takes typed objects. A ``paths.output_dir`` that can only
    be resolved inside a Hydra job (``${hydra:runtime.output_dir}``) becomes ``""`` elsewhere.
    """
    if isinstance(cfg, Config):
        return cfg
    register_configs()
    if "hydra" in cfg:  # the whole Hydra config (a callback's): the job's part only
        cfg = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
    node = OmegaConf.merge(OmegaConf.structured(Config), cfg)
    if OmegaConf.select(node, "paths.output_dir", throw_on_resolution_failure=False) is None:
        node.paths.output_dir = ""
    typed = OmegaConf.to_object(node)
    assert isinstance(typed, Config)
    return typed


class ConfigError(ValueError):
    """A configuration value that the schema's types cannot rule out is wrong."""


def _choice(key: str, value: str, choices: list[str] | tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {sorted(choices)}")


#: Config nodes whose keys are free (a model's builder keywords, the user's tags).
_FREE_KEYS = ("model.params", "tracking.tags")


def _refuse_unknown_keys(cfg: DictConfig) -> None:
    """A key the schema does not have (``+trainer.epoch=3`` gets past Hydra's closed schema):
    refused, naming the key and the nearest real one, instead of being silently ignored."""
    import dataclasses
    import difflib

    def walk(node: Any, schema: type, prefix: str) -> None:
        fields = {f.name: f for f in dataclasses.fields(schema)}
        for key in node:
            name = f"{prefix}{key}"
            if name in _FREE_KEYS:
                continue
            if key not in fields:
                close = difflib.get_close_matches(str(key), list(fields), n=1)
                hint = f"; did you mean {prefix}{close[0]}?" if close else ""
                raise ConfigError(f"unknown key {name}: {schema.__name__} has no {key!r}{hint}")
            sub = fields[key].type
            value = node._get_node(key)  # not node[key]: that would resolve ${hydra:...}
            if isinstance(value, DictConfig) and isinstance(sub, str):
                sub = _SCHEMAS.get(sub)
            if (
                isinstance(value, DictConfig)
                and isinstance(sub, type)
                and dataclasses.is_dataclass(sub)
            ):
                walk(value, sub, f"{name}.")

    walk(OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"]), Config, "")


def validate_config(cfg: DictConfig | Config) -> None:
    """Check values the schema cannot: names against registries, ranges. Raises ConfigError."""
    from fault_diag.models import list_models
    from fault_diag.noise_config import validate_noise_config

    if isinstance(cfg, DictConfig):
        _refuse_unknown_keys(cfg)
    _choice("model.name", cfg.model.name, list_models())
    validate_noise_config(cfg.noise)
    t = cfg.trainer
    _choice("trainer.optimizer", t.optimizer, ("sgd", "adam"))
    _choice("trainer.select", t.select, SELECT_RULES)
    _choice("trainer.compile_mode", t.compile_mode, COMPILE_MODES)
    if t.epochs < 1:
        raise ConfigError(f"trainer.epochs={t.epochs} must be >= 1")
    if t.batch_size < 1:
        raise ConfigError(f"trainer.batch_size={t.batch_size} must be >= 1")
    if not (t.lr > 0):
        raise ConfigError(f"trainer.lr={t.lr} must be > 0")
    if any(not (0 < m <= 1) for m in t.lr_milestones):
        raise ConfigError(
            f"trainer.lr_milestones={list(t.lr_milestones)} must be fractions in (0, 1]"
        )
    if not (t.device == "auto" or t.device == "cpu" or str(t.device).startswith("cuda")):
        raise ConfigError(f"trainer.device={t.device!r} must be auto, cpu, cuda or cuda:N")
    from fault_diag.tracker import TrackerConfigError, get_backend

    try:
        get_backend(cfg.tracking.backend)
    except TrackerConfigError as exc:
        raise ConfigError(str(exc)) from None


_SCHEMAS.update(
    {
        c.__name__: c
        for c in (
            DataConfig,
            NoiseConfig,
            ModelConfig,
            TrainerConfig,
            EvalConfig,
            TrackingConfig,
            PathsConfig,
        )
    }
)
