"""Errors raised by the data layer.

Every error subclasses :class:`DataError` (itself a ``ValueError``) and its message names the file, key
or value at fault and says what was expected, so that a user can fix the input without reading code.
"""

from __future__ import annotations

from collections.abc import Sequence


class DataError(ValueError):
    """Base class of every data-layer error."""


class ConfigError(DataError):
    """A data configuration value is invalid (the message names the key)."""


class UnknownSetupError(ConfigError):
    """The ``setup`` name is not registered; the message lists the known setups."""


class UnknownSourceError(ConfigError):
    """The data source name is not registered; the message lists the known sources."""


class RecordingReadError(DataError):
    """A recording could not be read (truncated, corrupt, unsupported format)."""


class NoUsableVariableError(RecordingReadError):
    """A ``.mat``/``.npz``/``.csv`` recording holds no variable for the requested channel."""


class AmbiguousVariableError(RecordingReadError):
    """Several candidate variables and none matches the file number; the message lists them."""


class NonFiniteSignalError(DataError):
    """A recording holds NaN or Inf samples."""


class RecordingTooShortError(DataError):
    """A recording is too short to give at least one window in every split."""


class MissingDataError(DataError):
    """Recordings (or their folder) are absent."""


class MissingDataFolderError(MissingDataError):
    """The recordings folder does not exist."""


class MissingClassesError(MissingDataError):
    """At least one class (or a class needed by a split role) has no recording at all."""


class HashMismatchError(DataError):
    """A file's SHA-256 differs from the catalogue / manifest value."""


class DownloadError(DataError):
    """A download failed (server down, HTTP error); the message says how to supply files by hand."""


class ManifestError(DataError):
    """A generic-dataset manifest CSV is malformed."""


class ManifestValidationError(ManifestError):
    """Rows of a manifest are wrong (missing file, unparsable value, undeclared label, a rate the
    file contradicts). ``problems`` holds every one found; the message lists the first ten, each
    with the manifest, its line and column, and what was expected."""

    def __init__(self, message: str, problems: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class LeakageError(DataError):
    """The split audit found a validation/test sample inside a training window."""
