"""The search loop: ask the strategy, price, filter, de-duplicate, evaluate, tell, checkpoint.

Deterministic for a seed. The budget counts distinct accuracy evaluations: a re-proposed arch is
answered from the cache for free. The loop stops early when the strategy proposes nothing new for
``MAX_IDLE`` rounds in a row (the feasible space is exhausted).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from search_spaces.base import SearchSpace
from search_spaces.errors import UserError

from ..objective import Objective
from . import checkpoint
from .archive import Archive, EvalCache
from .context import SearchContext
from .grid import SearchGrid

CHECKPOINT_EVERY_S = 0.5
CACHE_PRESIZE_ROWS = 1 << 17  # the eval cache is sized for the budget up to this many rows, then doubles
MAX_IDLE = 50


class Progress:
    """Progress lines on stderr, at most one a second (a single updating line on a terminal)."""

    def __init__(self, budget: int, stream=None):
        # stderr is looked up per progress object, not bound at import: a caller (or pytest's capture)
        # may have replaced sys.stderr since this module was imported
        self.budget, self.stream = budget, stream if stream is not None else sys.stderr
        self.t0 = None
        self.n0 = 0
        self.last = 0.0
        self.tty = self.stream.isatty()

    def __call__(self, info: dict):
        now = time.perf_counter()
        if self.t0 is None:  # the ETA counts from the first generation (start-up and resumed work excluded)
            self.t0, self.n0 = now, info["n_evaluated"]
        done = info["n_evaluated"] >= self.budget or info.get("finished", False)
        if now - self.last < 1.0 and not done:
            return
        self.last = now
        el = now - self.t0
        n_new = info["n_evaluated"] - self.n0
        # no rate until a generation after the first has been timed: "--", not a made-up number
        eta = f"{el / n_new * (self.budget - info['n_evaluated']):.1f}s" if n_new > 0 and el > 0 else "--"
        line = (f"gen {info['generation']:>4}  evaluated {info['n_evaluated']:>7}/{self.budget}  "
                f"best top-1 {100 * info['best_top1']:.2f}%  latency {info['best_latency_ms']:.2f} ms  "
                f"elapsed {el:.1f}s  eta {eta}")
        self.stream.write(("\r" + line + ("\n" if done else "")) if self.tty else line + "\n")
        self.stream.flush()


@dataclass
class RunOutcome:
    archive: Archive
    history: list
    counters: dict
    elapsed_before_s: float  # time spent by earlier processes of a resumed run
    notes: list = field(default_factory=list)


def run_search(space: SearchSpace, grid: SearchGrid, objective: Objective, strategy, params: dict, budget: int,
               seed: int, top_k: int = 5, run_dir: Path | None = None, resume: bool = False,
               callbacks: Sequence[Callable[[dict], None]] = (), fingerprint: str = "") -> RunOutcome:
    """Run (or continue) a search; ``params`` are the strategy's resolved parameters."""
    # Populations are small matrices: BLAS threads only add hand-off cost (60x slower on a busy
    # 2-core machine), so the loop runs single-threaded BLAS.
    from threadpoolctl import ThreadpoolController

    with ThreadpoolController().limit(limits=1, user_api="blas"):
        return _loop(space, grid, objective, strategy, params, budget, seed, top_k, run_dir, resume, callbacks,
                     fingerprint)


def _loop(space, grid, objective, strategy, params, budget, seed, top_k, run_dir, resume, callbacks, fingerprint):
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_t = len(objective.targets)
    archive = Archive(top_k, grid.n_dims, n_t, limits_ms=np.array([t.limit_ms for t in objective.targets])
                      if objective.reward == "mnas-hard" else None)
    ctx = SearchContext(space, grid, objective, budget, params, EvalCache(grid.n_dims, n_t, min(budget, CACHE_PRESIZE_ROWS)))
    ckpt = run_dir / "checkpoint.npz" if run_dir is not None else None
    elapsed_before = 0.0
    if resume and ckpt is not None and ckpt.is_file():
        saved = checkpoint.load(ckpt, fingerprint)
        rng.bit_generator.state = saved["rng"]
        state, history, counters = saved["state"], saved["history"], saved["counters"]
        ctx.cache.load(saved["cache"])
        archive.arrays = saved["archive"]
        ctx.n_latency_rows = counters["n_latency_rows"]
        elapsed_before = saved["elapsed_s"]
    else:
        history = []
        counters = {"n_evaluated": 0, "generation": 0, "n_proposed": 0, "n_latency_rows": 0, "idle": 0,
                    "finished": 0}
        state = strategy.init(ctx, rng)
    out = RunOutcome(archive, history, counters, elapsed_before)

    def save():
        counters["n_latency_rows"] = ctx.n_latency_rows
        checkpoint.save(ckpt, state=state, cache=ctx.cache.arrays(), archive=archive.arrays, history=history,
                        counters=counters, elapsed_s=elapsed_before + time.perf_counter() - t0, rng=rng,
                        fingerprint=fingerprint)

    if ckpt is not None and not history:
        save()
    last_save = time.perf_counter()
    while counters["n_evaluated"] < budget and not counters["finished"]:
        remaining = budget - counters["n_evaluated"]
        n = max(1, min(int(strategy.batch(ctx, state)), remaining))
        X = np.asarray(strategy.ask(state, ctx, n, rng), np.int64).reshape(-1, grid.n_dims)
        told = ctx.evaluate(X, remaining)
        metrics = strategy.tell(state, ctx, X, told) or {}
        counters["generation"] += 1
        counters["n_proposed"] += len(X)
        n_new = int(told.new.sum())
        counters["n_evaluated"] += n_new
        if n_new:
            archive.add(X[told.new], told.acc[told.new], told.lat_ms[told.new], told.score[told.new])
        counters["idle"] = 0 if n_new else counters["idle"] + 1
        if counters["idle"] >= MAX_IDLE:
            if counters["n_evaluated"] == 0:
                raise UserError("no architecture found that meets the latency budget")
            counters["finished"] = 1
        if counters["n_evaluated"] >= budget:
            counters["finished"] = 1
        acc, lat, score = archive.best()
        history.append([counters["n_evaluated"], score, acc, lat, counters["n_proposed"],
                        float(metrics.get("surrogate_rank_corr", np.nan))])
        info = {"generation": counters["generation"], "n_evaluated": counters["n_evaluated"],
                "n_proposed": counters["n_proposed"], "best_score": score, "best_top1": acc,
                "best_latency_ms": lat, "finished": bool(counters["finished"])}
        if ckpt is not None and (time.perf_counter() - last_save > CHECKPOINT_EVERY_S or counters["finished"]):
            save()
            last_save = time.perf_counter()
        for cb in callbacks:
            cb(info)
    if counters["n_evaluated"] < budget:
        out.notes.append(f"the search stopped after {counters['n_evaluated']} of {budget} evaluations: "
                         f"no new admissible arch in {MAX_IDLE} rounds (the feasible space is exhausted)")
    counters["n_latency_rows"] = ctx.n_latency_rows
    return out
