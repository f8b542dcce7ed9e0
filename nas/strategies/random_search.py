"""Random search: uniform samples that meet the constraint, the honest baseline (Yang et al., ICLR 2020)."""

from __future__ import annotations

from .base import Strategy, fill_feasible
from .registry import register_strategy


@register_strategy("random")
class RandomSearch(Strategy):
    """Uniform constraint-aware sampling in batches; every batch is one 'generation'."""

    def __init__(self, batch_size: int = 1000):
        self.batch_size = int(batch_size)

    def start(self, space, objective, rng, budget):
        return {}

    def step(self, state, space, objective, rng, remaining):
        n = min(self.batch_size, remaining)
        X, lat = fill_feasible(lambda m: space.sample_encoded(rng, m), objective, n)
        return X, objective.evaluate(X, lat)
