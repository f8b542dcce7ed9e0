"""The search objective: an accuracy estimator, latency targets and how they combine into a score.

``hard``: maximise accuracy subject to every target's latency <= its budget (less the margin).
``mnas``: MnasNet's soft reward ``ACC * prod_t (LAT_t / T_t) ** w`` (Tan et al., CVPR 2019), with
``w = alpha`` below the target and ``beta`` above; the soft form uses alpha = beta = -0.07 and the
hard form alpha = 0, beta = -1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from search_spaces.base import SearchSpace
from search_spaces.errors import UserError

REWARDS = ("hard", "mnas", "mnas-hard")


@runtime_checkable
class DeclaresCost(Protocol):
    """An estimator or latency predictor whose calls are expensive: ``cost_s`` seconds per arch.

    An accuracy estimator that declares a cost (a supernet, training) makes ``predictor-evolution``
    the default strategy; a latency predictor that declares one (a whole-network measurement) is
    priced sparingly: each distinct arch once, and no bulk sampling to narrow the space.
    """

    cost_s: float


def cost_s(obj) -> float:
    """Seconds per arch the object declares (0 when it declares none)."""
    if isinstance(obj, DeclaresCost):
        try:
            return max(float(obj.cost_s), 0.0)
        except (TypeError, ValueError):
            raise UserError(f"cost_s of {type(obj).__name__} must be a number of seconds, got {obj.cost_s!r}") from None
    return 0.0


@dataclass
class Target:
    """One device to meet: a latency predictor and the budget on it."""

    device: str
    predictor: object  # anything with predict(X) -> ms
    budget_ms: float
    margin: float = 0.0  # fraction of the budget kept free (e.g. 0.05 for a modelled profile)
    source: str = "user-supplied predictor"
    expected_error: dict | None = None
    host: dict | None = None  # a measured device: where it was measured, calibrated here or flagged

    @property
    def cost_s(self) -> float:
        return cost_s(self.predictor)

    @property
    def limit_ms(self) -> float:
        return self.budget_ms * (1.0 - self.margin)


@dataclass
class Evaluation:
    """Scores of a batch of archs: accuracy (n,), latency (n, n_targets), feasibility and score."""

    acc: np.ndarray
    lat_ms: np.ndarray
    feasible: np.ndarray
    score: np.ndarray


@dataclass
class Told(Evaluation):
    """What the runner tells a strategy about its proposals, row for row.

    ``new``: scored now (counted against the budget); ``known``: accuracy known (new or cached).
    Rows not known (over budget, unpriced, past the budget) have acc NaN and score -inf.
    """

    new: np.ndarray = None
    known: np.ndarray = None


def allowed(objective: "Objective", lat_ms: np.ndarray) -> np.ndarray:
    """Candidates worth an accuracy evaluation: priced everywhere, and within budget if constrained."""
    ok = np.isfinite(lat_ms).all(axis=1)
    return ok & objective.within(lat_ms) if objective.constrained() else ok


@dataclass
class Objective:
    space: SearchSpace
    accuracy: object
    targets: list[Target]
    reward: str = "hard"
    w: float = -0.07
    n_acc_evals: int = field(default=0, init=False)

    def __post_init__(self):
        if self.reward not in REWARDS:
            raise UserError(f"unknown reward {self.reward!r}; accepted: {', '.join(REWARDS)}")
        if self.reward == "mnas" and not self.w < 0:
            raise UserError(f"the soft MnasNet reward needs a negative exponent w, got {self.w}")
        if not self.targets:
            raise UserError("at least one latency target is needed (--target DEVICE --latency MS)")
        for t in self.targets:
            if not (t.budget_ms > 0 and np.isfinite(t.budget_ms)):
                raise UserError(f"latency budget for {t.device} must be a positive number of ms, got {t.budget_ms}")
            if not 0 <= t.margin < 1:
                raise UserError(f"latency margin must be in [0, 1), got {t.margin}")

    def latency(self, X: np.ndarray) -> np.ndarray:
        """(n, n_targets) predicted ms; cheap, so strategies call it freely to filter candidates."""
        if len(self.targets) == 1:  # the common case, without np.stack's per-call overhead
            return np.asarray(self.targets[0].predictor.predict(X), dtype=np.float64).reshape(-1, 1)
        return np.stack([np.asarray(t.predictor.predict(X), dtype=np.float64) for t in self.targets], axis=1)

    @property
    def latency_cost_s(self) -> float:
        """Declared seconds to price one arch on every target (0: a table or model, free)."""
        return float(sum(t.cost_s for t in self.targets))

    @property
    def accuracy_cost_s(self) -> float:
        return cost_s(self.accuracy)

    def within(self, lat_ms: np.ndarray) -> np.ndarray:
        limits = np.array([t.limit_ms for t in self.targets])
        return (lat_ms <= limits[None, :]).all(axis=1)

    def constrained(self) -> bool:
        """Whether candidates must meet the budgets (hard constraint) to count."""
        return self.reward == "hard"

    def score(self, acc: np.ndarray, lat_ms: np.ndarray) -> np.ndarray:
        feasible = self.within(lat_ms)
        if self.reward == "hard":
            return np.where(feasible, acc, -np.inf)
        limits = np.array([t.limit_ms for t in self.targets])[None, :]
        ratio = lat_ms / limits
        if self.reward == "mnas":
            exp = np.full_like(ratio, self.w)
        else:  # mnas-hard: no reward below the target, a steep penalty above it
            exp = np.where(ratio <= 1.0, 0.0, -1.0)
        return acc * np.prod(ratio ** exp, axis=1)

    def evaluate(self, X: np.ndarray, lat_ms: np.ndarray | None = None) -> Evaluation:
        """Accuracy (counted against the search budget), latency, feasibility and score of X."""
        lat_ms = self.latency(X) if lat_ms is None else lat_ms
        if len(X) == 0:  # estimators need not handle empty batches
            acc = np.empty(0)
            return Evaluation(acc, lat_ms.reshape(0, len(self.targets)), np.empty(0, bool), np.empty(0))
        acc = np.asarray(self.accuracy.predict(X), dtype=np.float64)
        self.n_acc_evals += len(X)
        return Evaluation(acc, lat_ms, self.within(lat_ms), self.score(acc, lat_ms))
