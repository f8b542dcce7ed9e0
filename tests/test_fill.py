"""The runner's proposal filter (``SearchContext.fill``) and the hot-path helpers it stands on."""

from __future__ import annotations

import numpy as np

from nas.objective import Objective, Target
from nas.run.archive import EvalCache, key_in, row_hash
from nas.run.context import SearchContext
from nas.run.grid import SearchGrid
from search_spaces import get_space
from search_spaces.ofa.layout import DEPTHS, MAX_DEPTH, N_SLOTS, N_STAGES


class SumLatency:
    """A made-up latency: the sum of the choice indices (ms)."""

    def predict(self, X):
        return np.asarray(X, np.float64).sum(axis=1)


def _ctx(budget_ms: float) -> SearchContext:
    sp = get_space("ofa")
    grid = SearchGrid.of(sp)
    obj = Objective(sp, accuracy=None, targets=[Target("sum", SumLatency(), budget_ms)])
    return SearchContext(sp, grid, obj, 1000, {}, EvalCache(grid.n_dims, 1))


class Source:
    """Proposals: mostly rows already scored, a share ``new`` of fresh random rows; counts what it drew."""

    def __init__(self, ctx, new: float, seed: int = 0):
        self.ctx, self.new, self.rng, self.drawn = ctx, new, np.random.default_rng(seed), 0

    def __call__(self, m: int) -> np.ndarray:
        self.drawn += m
        old = self.ctx.cache.X[self.rng.integers(0, len(self.ctx.cache), m)]
        fresh = self.ctx.grid.sample(self.rng, m)
        return np.where((self.rng.random(m) < self.new)[:, None], fresh, old)


def _scored(ctx, n=200, seed=1):
    X = np.unique(ctx.grid.sample(np.random.default_rng(seed), n), axis=0)
    ctx.cache.add(X, np.zeros(len(X)), ctx.objective.latency(X))
    return X


def test_dry_repeats_ends_a_source_that_mostly_repeats_scored_archs():
    ctx = _ctx(1e9)
    _scored(ctx)
    dry = Source(ctx, new=0.02)
    got = ctx.fill(dry, 50, dry_repeats=4)
    assert 0 < len(got) < 50, "a source that repeats 98% of the time is dry long before 50 new rows"
    assert dry.drawn <= 4 * 50 * 1.5, f"drew {dry.drawn} rows; the dry limit is about 200 repeats"
    assert (ctx.cache.find(got) < 0).all() and len(np.unique(row_hash(got))) == len(got)
    # without the limit the same source keeps drawing until it has its 50
    full = ctx.fill(Source(ctx, new=0.02), 50)
    assert len(full) == 50


def test_dry_repeats_does_not_count_rows_over_the_latency_budget():
    """A tight budget makes most fresh rows inadmissible; that is not a dry source."""
    ctx = _ctx(1e9)
    _scored(ctx)
    X = ctx.grid.sample(np.random.default_rng(3), 4000)
    ms = np.sort(ctx.objective.latency(X)[:, 0])
    tight = _ctx(float(ms[int(0.05 * len(ms))]))  # about 5% of random archs fit
    _scored(tight)
    src = Source(tight, new=1.0)
    got = tight.fill(src, 50, dry_repeats=1)
    assert len(got) == 50 and src.drawn > 4 * 50, "rows over budget must not end the call"
    assert (tight.objective.latency(got)[:, 0] <= tight.objective.targets[0].budget_ms).all()


def test_key_in_matches_isin():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 50, 500).astype(np.uint64)
    for other in (keys[:0], keys[:7], rng.integers(0, 80, 30).astype(np.uint64)):
        assert np.array_equal(key_in(keys, other), np.isin(keys, other))


def test_eval_cache_grows_past_its_presized_capacity():
    rng = np.random.default_rng(0)
    X = np.unique(rng.integers(0, 3, (300, 6)), axis=0)
    c = EvalCache(6, 2, capacity=16)
    for i in range(0, len(X), 40):
        c.add(X[i:i + 40], np.arange(i, min(i + 40, len(X)), dtype=float), np.zeros((len(X[i:i + 40]), 2)))
    assert len(c) == len(X) and np.array_equal(c.find(X), np.arange(len(X)))
    assert np.array_equal(c.acc, np.arange(len(X), dtype=float))
    d = EvalCache(6, 2)
    d.load(c.arrays())
    assert np.array_equal(d.find(X[::-1]), np.arange(len(X))[::-1])


def test_ofa_canonical_and_grid_variation_match_their_plain_definitions():
    """The vectorised forms (one depth-code mask; where() as arithmetic) equal the obvious ones."""
    sp = get_space("ofa")
    rng = np.random.default_rng(7)
    X = np.stack([rng.integers(0, len(d.choices), 5000) for d in sp.dims], axis=1)
    depth = np.asarray(DEPTHS)[X[:, 2 * N_SLOTS:2 * N_SLOTS + N_STAGES]]
    runs = np.tile(np.arange(MAX_DEPTH), N_STAGES)[None, :] < np.repeat(depth, MAX_DEPTH, axis=1)
    want = X.copy()
    want[:, :N_SLOTS][~runs] = 0
    want[:, N_SLOTS:2 * N_SLOTS][~runs] = 0
    assert np.array_equal(sp.canonical(X), want) and np.array_equal(sp.active_slots(X), runs)
    grid = SearchGrid.of(sp)
    A, B = sp.canonical(X[:2500]), sp.canonical(X[2500:])
    r1, r2 = np.random.default_rng(1), np.random.default_rng(1)
    assert np.array_equal(grid.crossover(A, B, r1), sp.canonical(np.where(r2.random(A.shape) < 0.5, A, B)))
    fresh_rng, plain_rng = np.random.default_rng(2), np.random.default_rng(2)
    got = grid.mutate(A, fresh_rng, 0.3)
    pick = (plain_rng.random(A.shape) * grid.counts).astype(np.int64)
    fresh = sp.canonical(grid.table[np.arange(grid.n_dims), pick])
    assert np.array_equal(got, sp.canonical(np.where(plain_rng.random(A.shape) < 0.3, fresh, A)))


class Stream:
    """A fixed sequence of proposals handed out in whatever sizes are asked (a source read as a stream)."""

    def __init__(self, X: np.ndarray):
        self.X, self.at, self.calls = X, 0, 0

    def __call__(self, m: int) -> np.ndarray:
        self.calls += 1
        out = self.X[self.at:self.at + m]
        self.at += m
        return out


def test_fill_takes_the_first_admissible_rows_of_the_stream_however_rounds_are_sized():
    """``rows_hint`` only sizes rounds: the rows taken, and where the dry limit cuts, stay the same."""
    ctx = _ctx(1e9)
    X = ctx.grid.sample(np.random.default_rng(5), 3000)
    ms = ctx.objective.latency(X)[:, 0]
    tight = _ctx(float(np.sort(ms)[300]))  # ~10% of the stream fits
    _scored(tight)
    scored = tight.cache.X
    # a stream with repeats: every third row is an arch already scored
    S = X.copy()
    S[::3] = scored[np.random.default_rng(6).integers(0, len(scored), len(S[::3]))]
    for dry in (None, 1.0):
        results = []
        for hint in (None, 0.5, 3.0, 12.0, 40.0):
            src = Stream(S)
            got = tight.fill(src, 40, dry_repeats=dry, rows_hint=hint)
            results.append(got)
            if hint == 40.0 and dry is None:
                assert src.calls == 1, "a first round sized by the hint should usually be the only one"
        for got in results[1:]:
            assert np.array_equal(got, results[0]), f"dry_repeats={dry}: rows depend on the round sizes"
        # the reference: the first admissible rows of S in order, before the dry point
        fresh = (tight.cache.find(S) < 0)
        ok = fresh & (ms_of(tight, S) <= tight.objective.targets[0].budget_ms)
        _, first = np.unique(row_hash(S), return_index=True)
        once = np.zeros(len(S), bool)
        once[first] = True
        ok &= once
        fresh &= once
        if dry is None:
            want = S[np.flatnonzero(ok)[:40]]
        else:
            stop = np.searchsorted(np.cumsum(~fresh), dry * 40)  # the row whose repeat hits the limit
            want = S[np.flatnonzero(ok[:stop + 1])[:40]]
            assert len(want) < 40, "the test stream should go dry before 40 rows"
        assert np.array_equal(results[0], want)


def ms_of(ctx, X):
    return ctx.objective.latency(X)[:, 0]
