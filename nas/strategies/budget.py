"""The one rule that sizes every strategy from the search budget (and the number of dims).

With ``B`` the budget (distinct accuracy evaluations) and ``D`` the number of searched dims:

- population (evolution, optuna-nsga2) = clip(round(2 * sqrt(B)), max(8, D // 4), 100), at most B:
  about sqrt(B) / 2 generations, so a budget of 100 runs 5 generations of 20 instead of one
  population that is the whole budget, and large budgets keep Once-for-All's population of 100;
- parents = round(parent_ratio * population) (evolution's parent_ratio, 0.25);
- NSGA-II population = clip(round(sqrt(B)), 8, 100), at most B, and mutation probability per dim
  max(1 / D, 0.1): NSGA-II draws parents by binary tournament from its whole elite population
  rather than from its best quarter, so it needs about twice the generations of a population
  half the size for the same selection pressure (at 100 evaluations: population 10, not 20); and
  Optuna's own 1/D mutation leaves the uniform crossovers of a converging population mostly
  repeating archs already scored (with ``ofa`` and Once-for-All's predictor, 6 target/budget
  pairs x 4 seeds at 100 evaluations: mean regret 0.58 -> 0.37 -> 0.32 pp);
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
        "nsga2_population": max(min(_clip(root, 8, 100), int(budget)), 2),
        "nsga2_mutation_prob": max(1.0 / max(int(n_dims), 1), 0.1),
        "rl_batch": _clip(root, 8, 64),
        "tpe_startup": startup,
        "tpe_batch": _clip(root / 2, 4, 50),
        "surrogate_init": min(startup, 50),
        "surrogate_batch": _clip(root / 2, 4, 50),
    }
