"""What defines one search, declared once: ``SearchConfig``.

Its JSON is a run folder's ``config.json`` and, as sorted JSON, the fingerprint a checkpoint is
checked against on resume. ``nas.search(**settings)``, ``nas search`` (new runs and ``--resume``) and a
sweep's ``search`` trials all build it with ``SearchConfig.of``, so they share one set of fields,
defaults and one-line errors.

A request names targets as ``target`` + ``latency_ms`` (one budget per target, or one for all) and
the margin as ``latency_margin``, the names of ``nas.search``'s arguments; the config stores them as
``targets: [[device, budget_ms], ...]`` and ``margin``. ``nas.search`` records the resolved values
(the device's profile name, the chosen strategy and its parameters) in the run folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from latency_predictors.units import parse_latency_ms
from search_spaces import get_space
from search_spaces.base import SearchSpace
from search_spaces.errors import UserError
from search_spaces.registry import load_space_module

from .fields import NonNegativeInt, PositiveInt
from .io import atomic_write_json, read_json
from .objective import REWARDS
from .strategies import list_strategies

DEFAULT_TARGET = "pixel"
DEFAULT_LATENCY_MS = 80.0
DEFAULT_BUDGET = 20_000
# Measured accuracy (supernet:CKPT) costs ~0.05-0.2 s per arch on 2 cores: this keeps a search to minutes.
EXPENSIVE_BUDGET = 600

# request name -> config field (the rest have the same name in both)
_REQUEST_NAMES = {"latency_margin": "margin"}


def target_pairs(target, latency_ms) -> list[tuple[Any, Any]]:
    """(target, budget) pairs of a request: one budget per target, or one budget for all targets.

    Targets may be objects (a DeviceProfile, a latency model); budgets are parsed later.
    """
    targets = [DEFAULT_TARGET] if target is None else _as_list(target)
    budgets = [DEFAULT_LATENCY_MS] if latency_ms is None else _as_list(latency_ms)
    if len(budgets) == 1 and len(targets) > 1:
        budgets = budgets * len(targets)
    if len(targets) != len(budgets) or not targets:
        raise UserError(f"give one latency budget per target: {len(targets)} targets, {len(budgets)} budgets")
    return list(zip(targets, budgets))


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


class SearchConfig(BaseModel):
    """The settings that define a search (``config.json``); the run's outputs and reporting are not in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    space: str = "ofa"
    space_module: str | None = None   # PATH.py:CLASS of a user's space file (resume must name it again)
    targets: list[tuple[str, float]] = Field(default=[(DEFAULT_TARGET, DEFAULT_LATENCY_MS)], min_length=1)
    margin: float = 0.0               # fraction of each budget kept free
    strategy: str | None = None       # None: evolution, or predictor-evolution for an estimator with a cost
    strategy_params: dict[str, Any] = {}
    accuracy: str = "default"
    reward: str = "hard"
    w: float = -0.07
    budget: PositiveInt = DEFAULT_BUDGET  # distinct accuracy evaluations; EXPENSIVE_BUDGET for supernet:CKPT
    seed: NonNegativeInt = 0
    top_k: PositiveInt = 5

    @model_validator(mode="before")
    @classmethod
    def _request_form(cls, data):
        """``target`` + ``latency_ms`` -> ``targets``, ``latency_margin`` -> ``margin``; the budget default."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "target" in data or "latency_ms" in data:
            if "targets" in data:
                raise ValueError("give targets or target + latency_ms, not both")
            pairs = target_pairs(data.pop("target", None), data.pop("latency_ms", None))
            try:
                data["targets"] = [[t, parse_latency_ms(b)] for t, b in pairs]
            except UserError as e:
                raise ValueError(f"latency_ms: {e}") from None
        for req, field in _REQUEST_NAMES.items():
            if req in data:
                data[field] = data.pop(req)
        if "budget" not in data and str(data.get("accuracy", "")).startswith("supernet:"):
            data["budget"] = EXPENSIVE_BUDGET
        return data

    @field_validator("targets", mode="before")
    @classmethod
    def _budgets(cls, v):
        if not isinstance(v, (list, tuple)):
            raise ValueError("must be a list of [device, budget_ms] pairs")
        out = []
        for pair in v:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], str):
                raise ValueError(f"must be a list of [device, budget_ms] pairs, got {pair!r}")
            try:
                out.append((pair[0], parse_latency_ms(pair[1])))
            except UserError as e:
                raise ValueError(str(e)) from None
        return out

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v):
        if v is not None and v not in list_strategies():
            raise ValueError(f"unknown strategy {v!r}; known: {', '.join(list_strategies())}")
        return v

    @field_validator("reward")
    @classmethod
    def _reward(cls, v):
        if v not in REWARDS:
            raise ValueError(f"unknown reward {v!r}; accepted: {', '.join(REWARDS)}")
        return v

    # ---- building ------------------------------------------------------------------------------
    @classmethod
    def of(cls, **settings) -> "SearchConfig":
        """A config from ``nas.search``'s argument names (or the config's own); errors are one line."""
        try:  # None: the default (as in nas.search's signature)
            return cls.model_validate({k: v for k, v in settings.items() if v is not None})
        except ValidationError as e:
            raise UserError(_first_error(e)) from None

    @classmethod
    def request_names(cls) -> list[str]:
        """The settings a request may give: ``nas.search``'s argument names, also a sweep trial's keys."""
        names = [n for n in cls.model_fields if n != "targets"]
        names[names.index("space_module") + 1:names.index("space_module") + 1] = ["target", "latency_ms"]
        return [{v: k for k, v in _REQUEST_NAMES.items()}.get(n, n) for n in names]

    def request(self) -> dict:
        """The settings in ``nas.search``'s argument names (target and latency_ms as lists)."""
        d = self.model_dump()
        pairs = d.pop("targets")
        d["target"], d["latency_ms"] = [t for t, _ in pairs], [b for _, b in pairs]
        for req, field in _REQUEST_NAMES.items():
            d[req] = d.pop(field)
        return d

    def load_space(self) -> SearchSpace:
        """The registered space, or the class in ``space_module`` (importing it runs that file)."""
        return load_space_module(self.space_module) if self.space_module else get_space(self.space)

    # ---- the run folder ------------------------------------------------------------------------
    def to_json(self) -> dict:
        """config.json's content (``space_module`` only for a user's space file)."""
        d = self.model_dump(mode="json")
        if d["space_module"] is None:
            d.pop("space_module")
        return d

    def fingerprint(self) -> str:
        """What a checkpoint records: a resume continues only under the same config."""
        return json.dumps(self.to_json(), sort_keys=True)

    def write(self, run_dir: Path) -> None:
        atomic_write_json(Path(run_dir) / "config.json", self.to_json())

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> "SearchConfig":
        """A search run folder's config.json, validated; a missing key or wrong type is one line."""
        folder = Path(run_dir)
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--resume {str(folder)!r} is a file, not a run folder")
        if not folder.is_dir():
            raise UserError(f"--resume {str(folder)!r}: no such folder")
        path = folder / "config.json"
        if not path.is_file():
            raise UserError(f"--resume {str(folder)!r}: no config.json there; is it a search run folder?")
        data = read_json(path, "run config")
        if not isinstance(data, dict):
            raise UserError(f"run config {str(path)!r} must be a JSON object; is it a search run folder?")
        hint = "the folder was not written by this version of nas search, or was edited"
        # a run folder records every setting: a default filling a lost key would resume another search
        missing = [k for k in cls.model_fields if k != "space_module" and k not in data]
        if missing:
            raise UserError(f"run config {str(path)!r}: {missing[0]}: missing; {hint}")
        if any(k in data for k in ("target", "latency_ms", *_REQUEST_NAMES)):
            raise UserError(f"run config {str(path)!r}: {next(k for k in data if k not in cls.model_fields)}: "
                            f"unknown setting; {hint}")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise UserError(f"run config {str(path)!r}: {_first_error(e)}; {hint}") from None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    msg = "missing" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown setting; accepted: {', '.join(SearchConfig.request_names())}"
    return f"{loc}: {msg}" if loc else msg  # a request-form error names its setting itself
