"""The strategy contract (ask/tell) and declared, validated strategy parameters.

A strategy proposes and learns; the runner (``nas.run``) does everything else: it prices
proposals, filters feasibility, de-duplicates against every arch scored so far, evaluates,
checkpoints and keeps the archive. Per round the runner calls

- ``ask(state, ctx, n, rng) -> X``: up to n proposals (``ctx.fill`` / ``ctx.admissible`` give the
  runner's filter, so that nothing over budget or already scored is proposed while unseen archs remain);
- ``tell(state, ctx, X, told)``: what each proposal scored (``told.new``: evaluated now and counted,
  ``told.known``: accuracy known, possibly from the cache at no cost).

All per-search state is in the ``state`` dict of numpy arrays that ``init`` returns: the runner
checkpoints it between rounds, so a resumed search continues exactly, and a strategy object can be
reused for any number of searches (nothing per-search lives on it). Objects rebuilt from the state
(a torch module, Optuna's study) go into ``ctx.scratch``, which lives for one run.

Parameters are declared in ``PARAMS`` (type, range, default); ``None`` defaults come from the
budget rule (``nas.strategies.budget``). Bad values and unknown names are one-line errors that
list what is accepted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from search_spaces.errors import UserError

from ..objective import Told, allowed  # noqa: F401  (re-exported for strategies)
from .budget import budget_defaults


@dataclass(frozen=True)
class Param:
    """One strategy parameter: its type, accepted range or values, and default (None: budget rule)."""

    kind: type
    default: Any = None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple | None = None
    nullable: bool = False  # None is a meaningful value (not 'from the budget rule')

    def describe(self) -> str:
        if self.choices:
            c = [str(x) for x in self.choices]
            return c[0] if len(c) == 1 else f"{', '.join(c[:-1])} or {c[-1]}"
        kind = self.kind.__name__
        if self.lo is not None and self.hi is not None:
            return f"{kind} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
        if self.lo is not None:
            return f"{kind} {'>' if self.lo_open else '>='} {self.lo:g}"
        return kind

    def check(self, strategy: str, name: str, value):
        bad = f"strategy {strategy!r}: {name} must be {self.describe()}, got {value!r}"
        if value is None and self.nullable:
            return None
        if self.choices is not None:
            if value not in self.choices:
                raise UserError(bad)
            return value
        if self.kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            if isinstance(value, (bool, np.bool_)) or value in (0, 1):
                return bool(value)
            raise UserError(bad)
        if self.kind is str:
            if not isinstance(value, str) or not value:
                raise UserError(bad)
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise UserError(bad)
        if self.kind is int and float(value) != int(value):
            raise UserError(bad)
        v = self.kind(value)
        if not np.isfinite(v):
            raise UserError(bad)
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            raise UserError(bad)
        if self.hi is not None and v > self.hi:
            raise UserError(bad)
        return v


class Strategy(ABC):
    """A search strategy over a space's encoded matrix; parameters are set in ``__init__`` only."""

    name = "strategy"
    PARAMS: dict[str, Param] = {}

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            raise UserError(f"strategy {self.name!r}: unknown parameter {unknown[0]!r}; accepted: "
                            + ", ".join(f"{k} ({p.describe()})" for k, p in self.PARAMS.items()))
        for k, spec in self.PARAMS.items():
            v = params.get(k, spec.default)
            setattr(self, k, spec.check(self.name, k, v) if (v is not None or k in params) else None)

    def params(self) -> dict:
        """The parameters as given (None: from the budget rule)."""
        return {k: getattr(self, k) for k in self.PARAMS}

    def auto(self, rule: dict[str, int]) -> dict:
        """Values of the ``None`` parameters under the budget rule (``budget_defaults``)."""
        return {}

    def resolve(self, budget: int, n_dims: int) -> dict:
        """Every parameter's value for a search of ``budget`` evaluations: explicit ones win."""
        auto = self.auto(budget_defaults(budget, n_dims))
        return {k: (getattr(self, k) if getattr(self, k) is not None or self.PARAMS[k].nullable else auto[k])
                for k in self.PARAMS}

    def batch(self, ctx, state: dict) -> int:
        """How many proposals the next ``ask`` should make (the runner caps it at the remaining budget)."""
        return 100

    @abstractmethod
    def init(self, ctx, rng: np.random.Generator) -> dict:
        """The initial state: a dict of numpy arrays (no evaluation happens here)."""

    @abstractmethod
    def ask(self, state: dict, ctx, n: int, rng: np.random.Generator) -> np.ndarray:
        """Up to n proposals (encoded rows)."""

    def tell(self, state: dict, ctx, X: np.ndarray, told: Told) -> dict | None:
        """Learn from what the proposals scored; may return metrics for the history."""
        return None
