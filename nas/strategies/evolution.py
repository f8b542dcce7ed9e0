"""Evolutionary search as Once-for-All runs it (Cai et al., ICLR 2020), vectorised per generation.

Each generation keeps the best ``parent_ratio`` of the population (elitism), then fills the
population with mutants of random parents (share ``mutation_ratio``) and uniform crossovers of
random parent pairs. Sampling, mutation and crossover are constraint-aware: children that break a
latency budget are redrawn before their accuracy is estimated, so the budget (counted in accuracy
evaluations) is spent on feasible archs only.
"""

from __future__ import annotations

import numpy as np

from .base import Strategy, fill_feasible
from .registry import register_strategy


@register_strategy("evolution")
class Evolution(Strategy):
    """Once-for-All's evolution: population, parent ratio, mutation ratio and probability."""

    def __init__(self, population: int = 100, parent_ratio: float = 0.25, mutation_ratio: float = 0.5,
                 mutate_prob: float = 0.1):
        self.population = int(population)
        self.parent_ratio = float(parent_ratio)
        self.mutation_ratio = float(mutation_ratio)
        self.mutate_prob = float(mutate_prob)

    def start(self, space, objective, rng, budget):
        n = min(self.population, budget)
        X, lat = fill_feasible(lambda m: space.sample_encoded(rng, m), objective, n)
        ev = objective.evaluate(X, lat)
        return {"X": X, "score": ev.score, "batch": (X, ev)}

    def step(self, state, space, objective, rng, remaining):
        n_parents = max(1, int(round(self.parent_ratio * self.population)))
        order = np.argsort(-state["score"], kind="stable")[:n_parents]
        parents, parent_score = state["X"][order], state["score"][order]
        n_children = min(self.population, remaining)
        n_mut = min(n_children, int(round(self.mutation_ratio * self.population)))

        def mutants(m):
            picks = parents[rng.integers(0, len(parents), size=m)]
            return space.mutate_encoded(picks, rng, self.mutate_prob)

        def crosses(m):
            a = parents[rng.integers(0, len(parents), size=m)]
            b = parents[rng.integers(0, len(parents), size=m)]
            return space.crossover_encoded(a, b, rng)

        parts = []
        if n_mut:
            parts.append(fill_feasible(mutants, objective, n_mut))
        if n_children - n_mut:
            parts.append(fill_feasible(crosses, objective, n_children - n_mut))
        X = np.concatenate([p[0] for p in parts])
        ev = objective.evaluate(X, np.concatenate([p[1] for p in parts]))
        state["X"] = np.concatenate([parents, X])
        state["score"] = np.concatenate([parent_score, ev.score])
        return X, ev
