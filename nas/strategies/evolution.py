"""Evolutionary search as Once-for-All runs it (Cai et al., ICLR 2020), vectorised per generation.

Each generation keeps the best ``parent_ratio`` of the population (elitism), then fills the
population with mutants of random parents (share ``mutation_ratio``) and uniform crossovers of
random parent pairs. Children are constraint-aware and new: a child over a latency budget or
already scored is redrawn before its accuracy is estimated, so the budget (distinct accuracy
evaluations) is spent on feasible, unseen archs only. When the crossovers run dry (a converged
population's children are mostly scored already: ``CROSSOVER_DRY_REPEATS``), the rest of the
generation comes from mutations of the parents at three times ``mutate_prob`` (our rule, not
Once-for-All's, whose generations may repeat archs). The population size follows the budget
(``nas.strategies.budget``) unless given.
"""

from __future__ import annotations

import numpy as np

from .base import Param, Strategy
from .registry import register_strategy

# Crossovers count as dry once a generation has drawn this many repeats (archs already scored)
# per crossover child it wants; the rest of the generation then comes from stronger mutations.
# Near convergence, parents differ in a few dims, most of their children were scored already,
# and finding the last new ones cost ~40 draws each (1.1 M rows in a 20,000-evaluation search,
# most of its time). With 4, searches of 100-300 evaluations rarely change (small_budget on
# pixel and note10, 10 seeds: 115 of 120 cells identical, median regret unchanged), and the note10
# bench (15/25/35 ms, seeds 1-5) keeps its median top-1 or improves it.
CROSSOVER_DRY_REPEATS = 4


@register_strategy("evolution")
class Evolution(Strategy):
    """Once-for-All's evolution: population, parent ratio, mutation ratio and probability."""

    PARAMS = {"population": Param(int, None, lo=2), "parent_ratio": Param(float, 0.25, lo=0, hi=1, lo_open=True),
              "mutation_ratio": Param(float, 0.5, lo=0, hi=1), "mutate_prob": Param(float, 0.1, lo=0, hi=1,
                                                                                      lo_open=True)}

    def auto(self, rule):
        return {"population": rule["population"]}

    def batch(self, ctx, state):
        return ctx.params["population"]

    def init(self, ctx, rng):
        # rows_per_child: proposal rows each source (mutants, crossovers, far mutants) used per child it
        # was asked for in the last generation; it sizes the next generation's first round (``fill``)
        return {"X": np.empty((0, ctx.grid.n_dims), np.int64), "score": np.empty(0),
                "rows_per_child": np.full(3, np.nan)}

    def _parents(self, ctx, state):
        n_parents = max(1, int(round(ctx.params["parent_ratio"] * ctx.params["population"])))
        order = np.argsort(-state["score"], kind="stable")[:n_parents]
        return state["X"][order], state["score"][order]

    def ask(self, state, ctx, n, rng):
        grid, p = ctx.grid, ctx.params
        if not len(state["X"]):
            return ctx.fill(lambda m: grid.sample(rng, m), n)
        parents, _ = self._parents(ctx, state)
        n_mut = min(n, int(round(p["mutation_ratio"] * p["population"])))

        def mutants(m):
            return grid.mutate(parents[rng.integers(0, len(parents), size=m)], rng, p["mutate_prob"])

        def crosses(m):
            a = parents[rng.integers(0, len(parents), size=m)]
            b = parents[rng.integers(0, len(parents), size=m)]
            return grid.crossover(a, b, rng)

        hint = state.setdefault("rows_per_child", np.full(3, np.nan))

        def fill(source, i, m, **kw):
            out = ctx.fill(source, m, rows_hint=hint[i], **kw)
            if m > 0:
                hint[i] = ctx.last_fill_rows / m
            return out

        Xm = fill(mutants, 0, n_mut)
        Xc = fill(crosses, 1, n - n_mut, exclude=Xm, dry_repeats=CROSSOVER_DRY_REPEATS)
        X = np.concatenate([Xm, Xc])
        if len(X) < n:
            # A converged population's crossovers (and small mutations) mostly repeat scored archs:
            # the rest of the generation comes from stronger mutations of the parents.
            def far(m):
                return grid.mutate(parents[rng.integers(0, len(parents), size=m)], rng,
                                   min(1.0, 3 * p["mutate_prob"]))

            X = np.concatenate([X, fill(far, 2, n - len(X), exclude=X)])
        return X

    def tell(self, state, ctx, X, told):
        keep = told.known
        if not len(state["X"]):
            state["X"], state["score"] = X[keep], told.score[keep]
            return None
        parents, parent_score = self._parents(ctx, state)
        state["X"] = np.concatenate([parents, X[keep]])
        state["score"] = np.concatenate([parent_score, told.score[keep]])
        return None
