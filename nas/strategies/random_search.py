"""Random search: uniform samples that meet the constraint, the honest baseline (Yang et al., ICLR 2020)."""

from __future__ import annotations

from .base import Param, Strategy
from .registry import register_strategy


@register_strategy("random")
class RandomSearch(Strategy):
    """Uniform constraint-aware sampling of unseen archs in batches; every batch is one 'generation'."""

    PARAMS = {"batch_size": Param(int, 1000, lo=1)}

    def batch(self, ctx, state):
        return ctx.params["batch_size"]

    def init(self, ctx, rng):
        return {}

    def ask(self, state, ctx, n, rng):
        return ctx.fill(lambda m: ctx.grid.sample(rng, m), n)
