"""Model registry in the style of torchvision / timm.

``@register_model("name")`` registers a builder; ``get_model(name, **kwargs)`` validates the keyword
arguments against the builder's signature, builds the network and attaches ``model.fd_spec =
{"name": ..., "kwargs": {...}}`` with *every* keyword (defaults included, as plain JSON types), so an
exported model can be rebuilt with ``build_from_spec(spec)`` without Hydra.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from torch import nn

from fault_diag.models.errors import ModelParamError, UnknownModelError

__all__ = [
    "build_from_spec",
    "get_model",
    "get_model_defaults",
    "get_model_spec",
    "list_models",
    "register_model",
]

Builder = Callable[..., nn.Module]
B = TypeVar("B", bound=Builder)

_REGISTRY: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[B], B]:
    """Register ``builder`` under ``name``; builders take keyword-only arguments with defaults.

    Raises :class:`ValueError` when the name is taken or the builder has a ``*args``/``**kwargs``
    parameter (the registry needs an explicit signature to validate and record keyword arguments).
    """

    def decorator(builder: B) -> B:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name]!r}")
        for param in inspect.signature(builder).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise ValueError(
                    f"builder {builder.__qualname__} for {name!r}: parameter {param.name!r} must be "
                    "a keyword argument (no *args, **kwargs or positional-only parameters)"
                )
        _REGISTRY[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def _builder(name: str) -> Builder:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())}"
        ) from None


def _plain(value: Any) -> Any:
    """Turn OmegaConf containers, tuples and other sequences/mappings into JSON-friendly types."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def get_model_defaults(name: str) -> dict[str, Any]:
    """The keyword arguments of model ``name`` with their default values (plain JSON types)."""
    params = inspect.signature(_builder(name)).parameters
    return {k: _plain(p.default) for k, p in params.items() if p.default is not p.empty}


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs``.

    Unknown names raise :class:`UnknownModelError` listing the registered names; an unknown keyword
    raises :class:`ModelParamError` naming the key and the accepted ones. OmegaConf containers are
    accepted (converted to lists/dicts). The returned module carries ``fd_spec``, see
    :func:`get_model_spec`.
    """
    builder = _builder(name)
    signature = inspect.signature(builder)
    accepted = list(signature.parameters)
    unknown = [k for k in kwargs if k not in signature.parameters]
    if unknown:
        raise ModelParamError(
            f"model {name!r} got unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(accepted)}"
        )
    plain = {k: _plain(v) for k, v in kwargs.items()}
    try:
        bound = signature.bind(**plain)
    except TypeError as err:  # a required keyword is missing
        raise ModelParamError(f"model {name!r}: {err}; accepted: {', '.join(accepted)}") from None
    bound.apply_defaults()
    model = builder(**plain)
    spec: dict[str, Any] = {"name": name, "kwargs": dict(bound.arguments)}
    model.fd_spec = _plain(spec)  # type: ignore[assignment]  # a plain attribute (not a submodule)
    return model


def get_model_spec(model: nn.Module) -> dict[str, Any]:
    """``{"name": ..., "kwargs": {...}}`` a model was built with by :func:`get_model` (a copy)."""
    spec = getattr(model, "fd_spec", None)
    if not isinstance(spec, dict):
        raise ModelParamError(
            f"{type(model).__name__} has no fd_spec: build it with fault_diag.models.get_model"
        )
    return copy.deepcopy(spec)


def build_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild a model (fresh weights) from a spec returned by :func:`get_model_spec`."""
    if "name" not in spec:
        raise ModelParamError(f"model spec needs a 'name' key; got keys {sorted(spec)}")
    return get_model(str(spec["name"]), **dict(spec.get("kwargs") or {}))
