"""What the runner offers a strategy during one search: the grid, pricing, the admissibility filter.

A ``SearchContext`` lives for one run and holds nothing a checkpoint must restore: the evaluation
cache is loaded from the checkpoint and ``scratch`` only holds objects rebuilt from the strategy's
state (a torch controller, Optuna's working study). Strategies call ``fill``/``admissible`` so that
no candidate they propose is over budget, unpriced or already scored while unseen ones remain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from search_spaces.base import SearchSpace
from search_spaces.errors import UserError

from ..objective import Objective, Told, allowed
from .archive import EvalCache, first_occurrence, first_occurrence_keys, key_in, row_hash
from .grid import SearchGrid

MAX_ROUNDS = 64
STALE_ROUNDS = 3


@dataclass
class SearchContext:
    space: SearchSpace        # the full space (features, decode); strategies search ``grid``
    grid: SearchGrid
    objective: Objective
    budget: int
    params: dict              # the strategy's parameters, budget rule filled in
    cache: EvalCache
    scratch: dict = field(default_factory=dict)
    n_latency_rows: int = 0   # rows priced (distinct rows when latency declares a cost)
    lat_cache: EvalCache | None = None
    last_fill_rows: int = 0   # proposal rows the last ``fill`` call used (its source's yield, for ``rows_hint``)

    latency_expensive: bool = field(init=False)
    """A target whose latency is a measurement (it declares ``cost_s``): price sparingly. Read once:
    the runtime Protocol check behind it costs more than a whole fill round."""

    def __post_init__(self):
        self.latency_expensive = self.objective.latency_cost_s > 0
        if self.latency_expensive and self.lat_cache is None:
            self.lat_cache = EvalCache(self.grid.n_dims, len(self.objective.targets))

    # ---- pricing -------------------------------------------------------------------------------
    def latency(self, X: np.ndarray) -> np.ndarray:
        """(n, n_targets) ms; with an expensive target each distinct row is priced once per run."""
        if not self.latency_expensive:
            self.n_latency_rows += len(X)
            return self.objective.latency(X)
        hit = self.lat_cache.find(X)
        if len(self.cache):
            hit_eval = self.cache.find(X)
        else:
            hit_eval = np.full(len(X), -1)
        need = (hit < 0) & (hit_eval < 0) & first_occurrence(X)
        if need.any():
            lat = self.objective.latency(X[need])
            self.n_latency_rows += int(need.sum())
            self.lat_cache.add(X[need], np.full(int(need.sum()), np.nan), lat)
            hit = self.lat_cache.find(X)
        out = np.full((len(X), len(self.objective.targets)), np.nan)
        ok = hit >= 0
        out[ok] = self.lat_cache.lat[hit[ok]]
        ev = hit_eval >= 0
        out[ev] = self.cache.lat[hit_eval[ev]]
        return out

    # ---- what may be proposed ------------------------------------------------------------------
    def admissible(self, X: np.ndarray, lat: np.ndarray | None = None,
                   exclude: np.ndarray | None = None) -> np.ndarray:
        """Rows worth an evaluation: priced, within budget (hard constraint), unseen, not repeated."""
        lat = self.latency(X) if lat is None else lat
        ok = allowed(self.objective, lat) & self.unseen(X) & first_occurrence(X)
        if exclude is not None and len(exclude):
            ok &= ~key_in(row_hash(X), row_hash(exclude))
        return ok

    def unseen(self, X: np.ndarray) -> np.ndarray:
        return self.cache.find(X) < 0

    def fill(self, propose: Callable[[int], np.ndarray], n: int, exclude: np.ndarray | None = None,
             dry_repeats: float | None = None, rows_hint: float | None = None) -> np.ndarray:
        """Call ``propose(m) -> X`` until n admissible rows are found (fewer if the space runs dry).

        Latency lookups are cheap, so proposals are filtered in bulk (Once-for-All's constraint-aware
        sampling, vectorised); with an expensive latency target no more than n are asked per round.
        Raises when no proposal at all is priced and within budget.

        The proposals are read as one stream: the result is the first n admissible rows in the order
        drawn, however the rounds were sized. ``rows_hint`` (rows the same source needed per wanted row
        last time, see ``last_fill_rows``) sizes the first round so that one round usually suffices:
        each round costs ~0.1 ms of fixed work, a surplus row ~0.5 us.

        ``dry_repeats``: for a caller with another source to draw from. Once the stream has shown more
        than ``dry_repeats * n`` rows that repeat archs already scored (or already taken), the source
        counts as dry and the call returns what it took before that point. Only repeats count: rows
        over the latency budget do not, so a tight budget does not make a source look dry. Without it
        the call keeps drawing (up to ``MAX_ROUNDS`` rounds), which is right for a sole source.
        """
        self.last_fill_rows = 0
        if n <= 0:
            return np.empty((0, self.grid.n_dims), np.int64)
        keep, got, ask, any_ok, stale, repeats, rows = [], 0, n, False, 0, 0, 0
        max_repeats = np.inf if dry_repeats is None else dry_repeats * n
        if rows_hint is not None and np.isfinite(rows_hint) and not self.latency_expensive:
            ask = int(min(64 * n, n * rows_hint * 1.25 + 8))
        taken_keys = row_hash(exclude) if exclude is not None and len(exclude) else np.empty(0, np.uint64)
        for _ in range(MAX_ROUNDS):
            X = propose(max(ask, 1))
            # De-duplicate by key first and price only what is left: a converged population's
            # proposals are mostly archs already scored, and pricing them cost more than the search.
            keys = row_hash(X)
            fresh = (self.cache.find_keys(keys) < 0) & first_occurrence_keys(keys)
            if len(taken_keys):
                fresh &= ~key_in(keys, taken_keys)
            ok = np.zeros(len(X), bool)
            if fresh.any():
                idx = np.flatnonzero(fresh)
                feasible = allowed(self.objective, self.latency(X[idx]))
                any_ok |= bool(feasible.any())
                ok[idx[feasible]] = True
            # where the stream stops in this round: the n-th admissible row, or the repeat that
            # reaches the dry limit; rows past it are not used
            end = len(X)
            cum_ok = np.cumsum(ok)
            if got + cum_ok[-1] >= n:
                end = int(np.searchsorted(cum_ok, n - got)) + 1
            if np.isfinite(max_repeats):
                cum_rep = np.cumsum(~fresh)
                if repeats + cum_rep[-1] >= max_repeats:
                    end = min(end, int(np.searchsorted(cum_rep, max_repeats - repeats)) + 1)
                repeats += int(cum_rep[end - 1])
            used_ok = int(cum_ok[end - 1])
            rows += end
            if used_ok:
                take = np.flatnonzero(ok[:end])
                keep.append(X[take])
                taken_keys = np.concatenate([taken_keys, keys[take]])
                got += used_ok
            if got >= n or repeats >= max_repeats:
                break
            # Rounds with nothing admissible whose proposals were partly scored already mean this
            # proposal source has run dry (a converged population's crossovers); a few in a row end
            # the call, and the strategy draws the rest elsewhere instead of paying for ever larger
            # futile rounds.
            stale = stale + 1 if not ok.any() and not fresh.all() else 0
            if stale >= STALE_ROUNDS:
                break
            if stale:
                continue  # the same ask again: a dry source does not earn a 64x larger round
            rate = max(ok.mean(), 1.0 / (4 * len(X)))
            ask = n - got if self.latency_expensive else int(min(64 * n, (n - got) / rate * 1.2 + 8))
            if repeats and np.isfinite(max_repeats):
                # no round larger than what, at the repeat rate so far, reaches the dry limit
                ask = min(ask, int((max_repeats - repeats) * rows / repeats) + 1)
        self.last_fill_rows = rows
        if not any_ok and not len(self.cache):
            raise UserError("no architecture found that meets the latency budget")
        return np.concatenate(keep) if keep else np.empty((0, self.grid.n_dims), np.int64)

    # ---- the runner's evaluation ---------------------------------------------------------------
    def evaluate(self, X: np.ndarray, remaining: int) -> Told:
        """Score the proposals: cached rows cost nothing, new admissible ones up to ``remaining``."""
        X = np.asarray(X, np.int64).reshape(-1, self.grid.n_dims)
        lat = self.latency(X)
        keys = row_hash(X)
        cand = allowed(self.objective, lat) & (self.cache.find_keys(keys) < 0) & first_occurrence_keys(keys)
        new = cand & (np.cumsum(cand) <= remaining)
        if new.any():
            ev = self.objective.evaluate(X[new], lat[new])
            self.cache.add(X[new], ev.acc, lat[new], keys[new])
        idx = self.cache.find_keys(keys)
        known = idx >= 0
        acc = np.full(len(X), np.nan)
        acc[known] = self.cache.acc[idx[known]]
        score = np.full(len(X), -np.inf)
        if known.any():
            score[known] = self.objective.score(acc[known], lat[known])
        return Told(acc=acc, lat_ms=lat, feasible=self.objective.within(lat), score=score, new=new, known=known)
