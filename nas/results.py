"""SearchResult and its parts: the JSON a search writes (pydantic, validated on load)."""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from search_spaces.errors import UserError

from .io import atomic_write_text
from .version import __version__


class ArchScore(BaseModel):
    """One architecture with everything the search estimated about it."""

    arch: dict[str, Any]
    top1: float = Field(description="estimated accuracy as a fraction; what it measures: SearchResult.accuracy['metric']")
    latency_ms: dict[str, float] = Field(description="predicted latency per target device")
    macs: float | None = Field(description="multiply-accumulates; null when the space can neither count nor build it")
    params: float | None = Field(description="trainable parameters; null when unknown")
    score: float
    measured_latency_ms: dict[str, float] = Field(default_factory=dict,
                                                  description="whole-network measurement here (--verify)")
    measured_top1: float | None = Field(default=None, description="top-1 measured by --verify-accuracy's estimator")

    @field_validator("macs", "params", mode="before")
    @classmethod
    def _unknown_is_null(cls, v):
        # NaN is how the vectorised counters say "unknown"; JSON has no NaN, so it is stored as null.
        if isinstance(v, float) and math.isnan(v):
            return None
        return v


class TargetInfo(BaseModel):
    device: str
    budget_ms: float
    margin: float = 0.0
    # A whole-cell priced target (graph spaces): archs priced by whole cells vs the additive fallback,
    # units measured on demand and their time, in the process that finished the run.
    pricing: dict[str, Any] | None = None
    limit_ms: float
    latency_source: str
    expected_error: dict[str, Any] | None = None
    # A measured device: measured on which host, and "same-host", "calibrated-here" or "flagged" here.
    host: dict[str, Any] | None = None


class SearchResult(BaseModel):
    """What a search found and how: best arch, top-k, Pareto front, history, provenance."""

    space: str
    space_version: str
    strategy: str
    strategy_params: dict[str, Any]
    accuracy: dict[str, str]
    reward: str
    w: float | None = None
    targets: list[TargetInfo]
    budget: int
    n_evaluated: int  # distinct archs whose accuracy was estimated (what the budget counts)
    n_proposed: int | None = None  # proposals told to the strategy, re-proposals (free) included
    cost: dict[str, Any] | None = None  # accuracy and latency evaluations, and their declared seconds
    seed: int
    best: ArchScore | None
    top_k: list[ArchScore]
    pareto: list[ArchScore]
    history: list[dict[str, float]]
    notes: list[str] = []
    verified_devices: list[str] = []
    verified_accuracy: dict[str, Any] | None = None  # --verify-accuracy: what re-measured the top-k (nas/rerank.py)
    training: dict[str, Any] | None = None  # training strategies: how the target was reached, reduced config
    versions: dict[str, str]
    wall_time_s: float
    created: str

    def write(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> "SearchResult":
        try:
            return cls.model_validate_json(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{str(path)!r} is not a readable SearchResult ({type(e).__name__})") from None


def versions() -> dict[str, str]:
    import numpy
    import torch

    return {"hwnas": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "torch": torch.__version__}
