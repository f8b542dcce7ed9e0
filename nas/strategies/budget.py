"""The one rule that sizes every strategy from the search budget (and the number of dims).

With ``B`` the budget (distinct accuracy evaluations) and ``D`` the number of searched dims:

- population (evolution, optuna-nsga2) = clip(round(2 * sqrt(B)), max(8, D // 4), 100), at most B:
  about sqrt(B) / 2 generations, so a budget of 100 runs 5 generations of 20 instead of one
  population that is the whole budget, and large budgets keep Once-for-All's population of 100;
- parents = round(parent_ratio * population) (evolution's parent_ratio, 0.25);
- RL batch = clip(round(sqrt(B)), 8, 64): 10 policy updates at 100, Mnas's 64 from 4,096 on;
- TPE startup trials = clip(round(B / 10), min(B, 10), 100), TPE batch = clip(round(sqrt(B) / 2), 4, 50);
- predictor-evolution: initial random design = the TPE startup rule capped at 50, and
  clip(round(sqrt(B) / 2), 4, 50) real evaluations per surrogate refit.

Explicit strategy parameters always override the rule.
"""

from __future__ import annotations

import math


def _clip(x: float, lo: int, hi: int) -> int:
    return int(min(max(round(x), lo), hi))


def budget_defaults(budget: int, n_dims: int) -> dict[str, int]:
    root = math.sqrt(max(int(budget), 1))
    population = min(_clip(2 * root, max(8, n_dims // 4), 100), int(budget))
    startup = _clip(budget / 10, min(int(budget), 10), 100)
    return {
        "population": max(population, 2),
        "rl_batch": _clip(root, 8, 64),
        "tpe_startup": startup,
        "tpe_batch": _clip(root / 2, 4, 50),
        "surrogate_init": min(startup, 50),
        "surrogate_batch": _clip(root / 2, 4, 50),
    }
