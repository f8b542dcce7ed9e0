"""Estimators that keep durable state in the search's run folder (a per-arch measurement cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class KeepsRunState(Protocol):
    """``use_run_dir(run_dir)`` is called once the run folder exists, before the first ``predict``."""

    def use_run_dir(self, run_dir: Path) -> None: ...
