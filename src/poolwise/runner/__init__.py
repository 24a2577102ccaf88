"""Sweeps: plan -> execute (local process pool by default, Ray for clusters) -> SQLite store."""

from .spec import RunSpec, grid
from .store import ResultsStore, StoreError
from .sweep import SweepSummary, run_sweep

__all__ = ["ResultsStore", "RunSpec", "StoreError", "SweepSummary", "grid", "run_sweep"]
