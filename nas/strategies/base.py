"""The strategy contract and the constraint-aware sampling every strategy shares.

A strategy is a small state machine: ``start`` builds its state, each ``step`` evaluates one batch
(a generation) and returns it. State is a dict of numpy arrays and numbers, so the runner can
checkpoint it between steps and a resumed search continues exactly where it stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from search_spaces.base import SearchSpace
from search_spaces.errors import UserError

from ..objective import Evaluation, Objective

MAX_ROUNDS = 64


class Strategy(ABC):
    """A search strategy over a space's encoded matrix; parameters are set in ``__init__`` only."""

    name = "strategy"

    def params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @abstractmethod
    def start(self, space: SearchSpace, objective: Objective, rng: np.random.Generator, budget: int) -> dict:
        """Initial state (may already evaluate a first batch: return it under 'batch')."""

    @abstractmethod
    def step(self, state: dict, space: SearchSpace, objective: Objective, rng: np.random.Generator,
             remaining: int) -> tuple[np.ndarray, Evaluation]:
        """Evaluate at most ``remaining`` new archs; update ``state``; return them and their scores."""


def allowed(objective: Objective, lat_ms: np.ndarray) -> np.ndarray:
    """Candidates worth an accuracy evaluation: priced everywhere, and within budget if constrained."""
    ok = np.isfinite(lat_ms).all(axis=1)
    return ok & objective.within(lat_ms) if objective.constrained() else ok


def fill_feasible(propose, objective: Objective, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Call ``propose(m) -> X`` until n candidates pass ``allowed``; returns (X, latency).

    Latency lookups are cheap, so proposals are filtered in bulk (Once-for-All's constraint-aware
    sampling, vectorised). Raises when no proposal can meet the budget.
    """
    keep_X, keep_lat, got = [], [], 0
    ask = n
    for _ in range(MAX_ROUNDS):
        X = propose(max(ask, 1))
        lat = objective.latency(X)
        ok = allowed(objective, lat)
        if ok.any():
            keep_X.append(X[ok])
            keep_lat.append(lat[ok])
            got += int(ok.sum())
        if got >= n:
            break
        rate = max(ok.mean(), 1.0 / (4 * len(X)))
        ask = int(min(64 * n, (n - got) / rate * 1.2 + 8))
    if got == 0:
        raise UserError("no architecture found that meets the latency budget")
    X, lat = np.concatenate(keep_X)[:n], np.concatenate(keep_lat)[:n]
    return X, lat
