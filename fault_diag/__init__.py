"""fault-diag: 1D vibration fault diagnosis under controlled noise."""

__version__ = "0.1.0"
