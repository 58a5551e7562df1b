"""Exceptions raised by the model zoo (all subclass ValueError, so callers can catch one type)."""

from __future__ import annotations


class ModelError(ValueError):
    """Base class of every error raised by :mod:`fault_diag.models`."""


class UnknownModelError(ModelError):
    """``get_model`` was asked for a name that is not registered."""


class ModelParamError(ModelError):
    """A builder received an unknown keyword or a value it cannot build a network from."""


class InputShapeError(ModelError):
    """A network received a tensor whose shape it cannot process (channels, rank, too short)."""
