"""Search at small budgets: median regret per strategy at 50, 100, 300 and 1,000 evaluations.

The ``ofa`` space with Once-for-All's released accuracy predictor standing in for true accuracy
(``ofa-predictor:$HWNAS_SHARED_DATA/ofa/acc_predictor.pth``; the ``published`` prior, also cheap
and deterministic, where it is absent). Targets: pixel, note10 (Once-for-All's lookup tables,
imported with ``nas.import_table`` into a temporary device folder) and x86, each at three latency
budgets: the 15th, 40th and 70th percentiles of the target's latency over 4,000 uniformly drawn
priced archs (a rule, so a hidden device gets budgets the same way).

Regret = (best top-1 known for that target and budget) - (best top-1 the search found), in
percentage points; "best known" is the best arch of a 20,000-evaluation ``evolution`` search (seed 0),
or of any run of this grid when that is better. Each search is an independent run at its budget
(the budget rule sizes every strategy from it), seeds 0..N-1.

Compared: ``reference`` - a plain regularised evolution (Real et al., AAAI 2019; population 20,
tournament 5, one-dim mutation) that skips over-budget archs before evaluating them (latency is
free) and is written here, in this file; ``default`` - what ``nas.search`` picks for an estimator
that declares itself expensive (the estimator is wrapped with ``cost_s = 1``); and hwnas's
registered strategies with their default (budget-rule) parameters.

Goal (issue 20): ``default``'s median regret <= 2/3 of ``reference``'s at 100 evaluations and
<= 3/4 at 300, below ``random``'s, on every target; every strategy at least as good as ``random``.

Examples:

    python -m experiments.bench.small_budget --out /tmp/small_budget.json            # the full grid
    python -m experiments.bench.small_budget --seeds 3 --evals 100 300                # reduced grid
    python -m experiments.bench.small_budget --quick   # smoke: pixel, 2 seeds, 100 evals, 3 strategies
    python -m experiments.bench.small_budget --jobs 2 --out /tmp/sb.json          # two worker processes
    python -m experiments.bench.small_budget --jobs 2 --out /tmp/sb.json --resume # continue a cut-short run

Cells (target, budget, evaluations, seed: every strategy) run seed by seed, each seed at every
budget, and are logged as they finish (OUT.runs.jsonl), so a run cut short holds its first seeds
complete and ``--resume`` continues it (``--report-only`` reports what the log holds); the table then reports what was run (``runs_per_cell`` in the JSON).
The 20,000-evaluation reference searches are cached (``--cache``) under a key made of what the
estimator and the latency predictor answer on fixed archs, so a second run skips them.
Prints a table and one JSON object (also written atomically to --out).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


from experiments.bench.search_vs_ofa import environment, finish, ofa_data_dir, table_files

TARGETS = ("pixel", "note10", "x86")
EVALS = (50, 100, 300, 1000)
STRATEGIES = ("reference", "default", "random", "evolution", "rl", "optuna-nsga2",
              "optuna-tpe")
PERCENTILES = (15, 40, 70)
GOAL = {100: 2 / 3, 300: 3 / 4}


class Expensive:
    """The estimator, declaring a cost per arch: ``nas.search`` then picks its expensive-estimator default."""

    cost_s = 1.0

    def __init__(self, est):
        self.est = est
        self.name = getattr(est, "name", type(est).__name__)

    def predict(self, X):
        return self.est.predict(X)


class StructuredSynthetic:
    """A synthetic accuracy with the structure of tabular NAS data, for spaces without a stand-in.

    top-1 = 0.55 + 0.05 * log-MACs (standardised; bigger nets are better and slower) + per-dim main
    effects + pairwise interactions between random dims + a fixed per-arch "training noise"
    (sd 0.25 points, a hash of the row, so the same arch always scores the same), clipped to
    [0, 1]. Drawn from ``seed``: a family of unseen landscapes for checking that a strategy is
    not fitted to one (``--accuracy synthetic[:SEED]``).
    """

    name = "synthetic"

    def __init__(self, space, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.space = space
        self.counts = np.array([len(d.choices) for d in space.dims])
        D, C = len(self.counts), int(self.counts.max())
        self.main = rng.normal(0, 0.006, size=(D, C))
        pairs = rng.choice(D, size=(2 * D, 2))
        self.pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        self.inter = rng.normal(0, 0.006, size=(len(self.pairs), C, C))
        self.noise_key = rng.integers(1, 2**63, size=D, dtype=np.uint64) | np.uint64(1)
        X = space.sample_encoded(np.random.default_rng(seed + 1), 4000)
        lm = np.log(self._macs(X))
        self.lm_mu, self.lm_sd = float(lm.mean()), float(lm.std() + 1e-12)

    def _macs(self, X):
        try:
            return np.maximum(self.space.macs(X), 1.0)
        except NotImplementedError:  # no block costs: the index sum stands in for size
            return np.exp(X.sum(axis=1) / max(1, X.shape[1]))

    def predict(self, X):
        X = np.asarray(X, np.int64)
        size = (np.log(self._macs(X)) - self.lm_mu) / self.lm_sd
        acc = 0.55 + 0.05 * np.tanh(size / 1.5) * 1.5
        acc = acc + self.main[np.arange(X.shape[1])[None, :], X].sum(axis=1)
        acc = acc + self.inter[np.arange(len(self.pairs))[None, :], X[:, self.pairs[:, 0]],
                               X[:, self.pairs[:, 1]]].sum(axis=1)
        with np.errstate(over="ignore"):
            h = (X.astype(np.uint64) @ self.noise_key) >> np.uint64(11)
        u = (h.astype(np.float64) + 0.5) / 2.0**53
        from scipy.stats import norm

        return np.clip(acc + 0.0025 * norm.ppf(u), 0.0, 1.0)


def regularized_evolution(space, acc, latency, limit_ms: float, budget: int, rng: np.random.Generator,
                          population: int = 20, tournament: int = 5) -> float:
    """Plain regularised evolution with free latency filtering; returns the best top-1 it evaluated.

    Every evaluation counts, re-evaluations of an arch seen before included (that is what "plain" means).
    """
    dims = space.dims

    def ok(X):
        lat = latency(X)
        return np.isfinite(lat) & (lat <= limit_ms)

    def feasible_sample():
        for _ in range(1000):
            X = space.sample_encoded(rng, 64)
            good = np.flatnonzero(ok(X))
            if len(good):
                return X[good[0]]
        raise RuntimeError("no arch within the budget")

    def mutate(x):
        for _ in range(1000):
            y = x.copy()
            j = int(rng.integers(len(dims)))
            y[j] = rng.choice(dims[j].search_index)
            y = space.canonical(y[None, :])[0]
            if ok(y[None, :])[0]:
                return y
        return x

    pop = collections.deque()
    best = -np.inf
    for _ in range(budget):
        if len(pop) < population:
            x = feasible_sample()
        else:
            picks = rng.choice(len(pop), size=tournament, replace=False)
            x = mutate(max((pop[i] for i in picks), key=lambda p: p[1])[0])
        a = float(acc.predict(x[None, :])[0])
        best = max(best, a)
        pop.append((x, a))
        if len(pop) > population:
            pop.popleft()
    return best


def latency_budgets(space, latency, rng) -> list[float]:
    X = space.sample_encoded(rng, 4000)
    lat = latency(X)
    lat = lat[np.isfinite(lat)]
    return [round(float(np.percentile(lat, p)), 2) for p in PERCENTILES]


# ---- the work, shared with forked workers --------------------------------------------------------
_W: dict = {}  # space, estimator, accuracy spec, latency functions per (device, budget)


def _lat_fn(dev: str, limit: float):
    from nas.search import make_target

    key = (dev, limit)
    if key not in _W["lat"]:
        _W["lat"][key] = make_target(dev, _W["space"], limit).predictor.predict
    return _W["lat"][key]


def run_one(strat: str, dev: str, limit: float, evals: int, seed: int) -> float:
    """Best top-1 one search finds (``reference``: the plain regularised evolution written here)."""
    import nas

    sp, est = _W["space"], _W["est"]
    if strat == "reference":
        return regularized_evolution(sp, est, _lat_fn(dev, limit), limit, evals, np.random.default_rng(seed))
    res = nas.search(sp, dev, limit, accuracy=Expensive(est), strategy=None if strat == "default" else strat,
                     budget=evals, seed=seed, plot=False)
    return float(res.best.top1)


def run_task(task: tuple) -> tuple:
    """One (device, budget, evaluations, seed) cell for every strategy: {strategy: (top-1, wall s)}."""
    dev, limit, evals, seed, strategies = task
    out = {}
    for strat in strategies:
        t = time.perf_counter()
        top1 = run_one(strat, dev, limit, evals, seed)
        out[strat] = (top1, time.perf_counter() - t)
    return task, out


def run_reference(task: tuple) -> tuple:
    """The search that sets the best known arch: ``evolution`` at --reference-evals, seed 0."""
    import nas

    dev, limit, n = task
    t = time.perf_counter()
    res = nas.search(_W["space"], dev, limit, accuracy=_W["est"], strategy="evolution", budget=n, seed=0, plot=False)
    return task, float(res.best.top1), time.perf_counter() - t


def predictor_fingerprint(dev: str, limit: float, reference_evals: int) -> str:
    """A key for the cached reference: what the estimator and the latency predictor answer on fixed archs.

    Any change of the accuracy stand-in, the device's latency tables or the budget changes the key,
    whatever file they came from.
    """
    import hashlib

    X = _W["space"].sample_encoded(np.random.default_rng(12345), 256)
    h = hashlib.sha256()
    h.update(f"{getattr(_W['space'], 'name', '')}|{dev}|{limit}|{reference_evals}|{_W['accuracy_id']}".encode())
    h.update(np.round(np.asarray(_W["est"].predict(X), np.float64), 6).tobytes())
    h.update(np.round(np.asarray(_lat_fn(dev, limit)(X), np.float64), 4).tobytes())
    return h.hexdigest()[:20]


class ETA:
    """Honest remaining time: per strategy, seconds per evaluation measured at the largest budget run so far.

    Cells run cheapest first, so a larger budget's cost is extrapolated linearly from a smaller one
    until one of its cells has finished (labelled "extrapolated" until then).
    """

    def __init__(self, tasks: list):
        self.pending = collections.Counter((t[2], tuple(t[4])) for t in tasks)
        self.rate = {}  # strategy -> (evals, s per eval)
        self.seen_evals = set()

    def done(self, task, out):
        self.pending[(task[2], tuple(task[4]))] -= 1
        self.seen_evals.add(task[2])
        for strat, (_, wall) in out.items():
            ev, _r = self.rate.get(strat, (0, 0.0))
            if task[2] >= ev:
                prev = self.rate.get(strat)
                r = wall / task[2]
                # running mean over the cells of the largest budget seen
                self.rate[strat] = (task[2], r if prev is None or prev[0] < task[2] else 0.7 * prev[1] + 0.3 * r)

    def remaining_s(self, jobs: int) -> tuple[float, bool]:
        total, extrapolated = 0.0, False
        for (evals, strategies), n in self.pending.items():
            if n <= 0:
                continue
            extrapolated |= evals not in self.seen_evals
            total += n * sum(self.rate.get(s, (1, 0.0))[1] * evals for s in strategies)
        return total / jobs, extrapolated


def _pool(jobs: int):
    import multiprocessing as mp

    return mp.get_context("fork").Pool(jobs) if jobs > 1 else None


def _imap(pool, fn, items):
    return pool.imap_unordered(fn, items) if pool is not None else map(fn, items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="examples:" + __doc__.split("Examples:")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), help="devices (default pixel note10 x86)")
    ap.add_argument("--seeds", type=int, default=10, help="number of seeds, 0..N-1 (default 10)")
    ap.add_argument("--evals", type=int, nargs="+", default=list(EVALS),
                    help="evaluation budgets (default 50 100 300 1000)")
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), help="default: all")
    ap.add_argument("--budgets-per-target", type=int, default=3, choices=(1, 2, 3),
                    help="latency budgets per target (the first N of the 15/40/70th percentiles; default 3)")
    ap.add_argument("--reference-evals", type=int, default=20_000,
                    help="evaluations of the search that sets the best known arch (default 20000)")
    ap.add_argument("--space", default="ofa", help="search space, a registered name or PATH.py:Class (default ofa)")
    ap.add_argument("--accuracy", default="ofa",
                    help="'ofa' (Once-for-All's released predictor, ofa space only) or 'synthetic[:SEED]' "
                         "(a structured synthetic landscape for any space; default ofa)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1); results do not depend on it")
    ap.add_argument("--cache", default=None,
                    help="folder for the best-known reference searches, reused while the estimator, latency "
                         "tables and budget answer the same (default $HWNAS_CACHE_DIR/small_budget or "
                         "~/.cache/hwnas/small_budget; 'none' to disable)")
    ap.add_argument("--runs", default=None,
                    help="JSON-lines log of finished cells (default OUT.runs.jsonl with --out); with --resume "
                         "the cells already in it are not run again")
    ap.add_argument("--resume", action="store_true", help="continue from the --runs log")
    ap.add_argument("--report-only", action="store_true",
                    help="run no new cell: report the cells in the --runs log (a run cut short)")
    ap.add_argument("--quick", action="store_true", help="smoke run: pixel, 2 seeds, 100 evals, 3 strategies")
    ap.add_argument("--out", help="also write the JSON here (atomically)")
    args = ap.parse_args()
    if args.quick:
        args.targets, args.seeds, args.evals = ["pixel"], 2, [100]
        args.strategies = ["reference", "default", "random"]
        args.reference_evals = min(args.reference_evals, 5000)
    if args.jobs < 1:
        sys.exit("small_budget.py: --jobs must be >= 1")
    runs_path = Path(args.runs) if args.runs else (Path(args.out + ".runs.jsonl") if args.out else None)
    if args.report_only:
        args.resume = True
        if runs_path is None or not runs_path.exists():
            sys.exit("small_budget.py: --report-only needs the --runs log (or --out) of an earlier run")
    if runs_path is not None and runs_path.exists() and not args.resume:
        sys.exit(f"small_budget.py: {runs_path} exists (an earlier run's cells); pass --resume to continue it "
                 "or another --runs/--out")
    env = environment()
    if args.jobs > 1:  # forked workers: no intra-op thread pools inherited mid-use
        import torch

        torch.set_num_threads(1)

    tmp = tempfile.TemporaryDirectory(prefix="hwnas-small-budget-")
    os.environ["HWNAS_DEVICE_DIR"] = tmp.name
    import nas
    from nas.io import atomic_write_json
    from nas.search import default_strategy, make_target
    from search_spaces import get_space

    data = ofa_data_dir()
    notes = []
    sp = get_space(args.space)
    if args.accuracy.startswith("synthetic"):
        _, _, sd = args.accuracy.partition(":")
        accuracy = f"synthetic:{int(sd or 0)}"
        est = StructuredSynthetic(sp, int(sd or 0))
    elif args.space == "ofa" and (data / "acc_predictor.pth").is_file():
        accuracy = f"ofa-predictor:{data / 'acc_predictor.pth'}"
        est = nas.get_estimator(accuracy, sp)
    else:
        accuracy = "published"
        notes.append(f"no acc_predictor.pth in {data}: the published prior stands in for true accuracy")
        est = nas.get_estimator(accuracy, sp)
    _W.update(space=sp, est=est, lat={}, accuracy_id=accuracy.rsplit("/", 1)[-1])
    targets = list(args.targets)
    if "note10" in targets and args.space != "ofa":
        targets.remove("note10")
        notes.append("note10 has tables for the ofa space only: left out")
    if "note10" in targets:
        if table_files(data):
            nas.import_table("ofa", [str(f) for f in table_files(data)], "note10", out_dir=tmp.name)
        else:
            targets.remove("note10")
            notes.append(f"no note10_*_lookup_table.yaml in {data}: note10 left out")

    rng = np.random.default_rng(0)
    plan = []
    for dev in targets:
        probe = make_target(dev, sp, 1e9)
        for b in latency_budgets(sp, probe.predictor.predict, rng)[: args.budgets_per_target]:
            plan.append((dev, b))
    # seed by seed, each at every budget (cheapest first): a run cut short holds its first seeds
    # complete at every budget and every target, an honest subset of the grid
    tasks = [(dev, limit, evals, seed, tuple(args.strategies))
             for seed in range(args.seeds) for evals in sorted(args.evals) for dev, limit in plan]
    n_runs = len(tasks) * len(args.strategies)
    print(f"{len(plan)} target/budget pairs x {args.seeds} seeds x {len(args.evals)} evaluation budgets x "
          f"{len(args.strategies)} strategies = {n_runs} searches, plus {len(plan)} reference searches of "
          f"{args.reference_evals}; {args.jobs} job(s)", file=sys.stderr)

    best = collections.defaultdict(dict)  # (dev, budget) -> {(strategy, evals, seed): top1}
    wall = collections.defaultdict(float)  # (strategy, evals) -> seconds
    if args.resume and runs_path is not None and runs_path.exists():
        import json

        for line in runs_path.read_text().splitlines():
            r = json.loads(line)
            for strat, (top1, w) in r["out"].items():
                best[(r["target"], r["budget_ms"])][(strat, r["evals"], r["seed"])] = top1
        before = len(tasks)
        tasks = [t for t in tasks if any((s, t[2], t[3]) not in best[(t[0], t[1])] for s in t[4])]
        print(f"resumed from {runs_path}: {before - len(tasks)} of {before} cells already done", file=sys.stderr)
        if args.report_only:
            notes.append(f"report of a run cut short: {before - len(tasks)} of {before} cells were run "
                         "(runs_per_cell says how many seeds x budgets each median holds)")
            tasks = []

    # the best-known archs: one reference search per (target, budget), cached across runs
    t0 = time.perf_counter()
    cache_dir = None
    if (args.cache or "").lower() != "none":
        cache_dir = Path(args.cache) if args.cache else (
            Path(os.environ.get("HWNAS_CACHE_DIR", Path.home() / ".cache" / "hwnas")) / "small_budget")
    known, ref_todo, ref_keys = {}, [], {}
    for dev, limit in plan:
        key = predictor_fingerprint(dev, limit, args.reference_evals)
        ref_keys[(dev, limit)] = key
        f = cache_dir / f"reference-{key}.json" if cache_dir else None
        if f is not None and f.is_file():
            import json

            known[(dev, limit)] = float(json.loads(f.read_text())["best_top1"])
        else:
            ref_todo.append((dev, limit, args.reference_evals))
    if len(plan) - len(ref_todo):
        print(f"{len(plan) - len(ref_todo)} reference search(es) read from {cache_dir}", file=sys.stderr)

    pool = _pool(args.jobs)
    try:
        for i, ((dev, limit, n), top1, w) in enumerate(_imap(pool, run_reference, ref_todo), 1):
            known[(dev, limit)] = top1
            if cache_dir is not None:
                atomic_write_json(cache_dir / f"reference-{ref_keys[(dev, limit)]}.json",
                                  {"target": dev, "budget_ms": limit, "evaluations": n, "strategy": "evolution",
                                   "seed": 0, "best_top1": top1, "accuracy": accuracy, "wall_s": round(w, 1)})
            el = time.perf_counter() - t0
            print(f"reference {i}/{len(ref_todo)}: {dev} {limit} ms best top-1 {top1:.5f} ({w:.0f}s; "
                  f"elapsed {el:.0f}s, eta {el / i * (len(ref_todo) - i) / max(1, min(args.jobs, len(ref_todo))):.0f}s)",
                  file=sys.stderr)

        eta = ETA(tasks)
        t1 = time.perf_counter()
        log = open(runs_path, "a") if runs_path is not None else None
        try:
            for done, (task, out) in enumerate(_imap(pool, run_task, tasks), 1):
                dev, limit, evals, seed, _ = task
                for strat, (top1, w) in out.items():
                    best[(dev, limit)][(strat, evals, seed)] = top1
                    wall[(strat, evals)] += w
                if log is not None:
                    import json

                    log.write(json.dumps({"target": dev, "budget_ms": limit, "evals": evals, "seed": seed,
                                          "out": out}) + "\n")
                    log.flush()
                eta.done(task, out)
                left, extrapolated = eta.remaining_s(args.jobs)
                print(f"[{done}/{len(tasks)} cells] {dev} {limit} ms {evals} evals seed {seed}  elapsed "
                      f"{time.perf_counter() - t1:.0f}s  eta {left:.0f}s{' (extrapolated)' if extrapolated else ''}",
                      file=sys.stderr)
        finally:
            if log is not None:
                log.close()
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    # regret per run against the best known arch (the reference search or any run, whichever is better)
    regret = collections.defaultdict(list)  # (dev, strategy, evals) -> [pp]
    for (dev, limit), runs in best.items():
        if (dev, limit) not in known:
            continue
        top = max(known[(dev, limit)], max(runs.values()))
        for (strat, evals, seed), top1 in runs.items():
            if strat in args.strategies and evals in args.evals and seed < args.seeds:
                regret[(dev, strat, evals)].append(100.0 * (top - top1))
    med = {f"{dev}/{strat}/{evals}": round(statistics.median(v), 4) for (dev, strat, evals), v in regret.items()}
    n_cell = {f"{dev}/{strat}/{evals}": len(v) for (dev, strat, evals), v in regret.items()}

    table = []
    header = f"{'target':<8} {'evals':>5}  " + "  ".join(f"{s[:12]:>12}" for s in args.strategies)
    table.append("median regret (top-1 percentage points; lower is better)")
    table.append(header)
    for dev in targets:
        for evals in args.evals:
            table.append(f"{dev:<8} {evals:>5}  " + "  ".join(f"{med.get(f'{dev}/{s}/{evals}', float('nan')):>12.3f}"
                                                              for s in args.strategies))
    goals = {}
    if {"default", "reference", "random"} <= set(args.strategies):
        for dev in targets:
            for evals, ratio in GOAL.items():
                if evals not in args.evals or f"{dev}/default/{evals}" not in med:
                    continue
                d, r, rnd = (med[f"{dev}/{s}/{evals}"] for s in ("default", "reference", "random"))
                goals[f"{dev}/{evals}"] = {
                    "default_over_reference": round(d / r, 3) if r > 0 else None,
                    "goal_ratio": round(ratio, 3), "meets_ratio": bool(d <= ratio * r),
                    "beats_reference": bool(d < r), "beats_random": bool(d < rnd),
                    "every_strategy_at_least_random": {s: bool(med[f"{dev}/{s}/{evals}"] <= rnd)
                                                       for s in args.strategies if s != "random"}}
    print("\n".join(table))
    result = {"bench": "small_budget", "accuracy": accuracy, "default_strategy": default_strategy(Expensive(est)),
              "plan": [{"target": d, "budget_ms": b, "best_known_top1": round(known[(d, b)], 5)} for d, b in plan],
              "seeds": args.seeds, "evals": args.evals, "reference_evals": args.reference_evals,
              "median_regret_pp": med, "runs_per_cell": n_cell, "goals": goals, "notes": notes,
              "search_wall_s": {f"{s}/{e}": round(w, 1) for (s, e), w in sorted(wall.items())},
              "jobs": args.jobs, "wall_s": round(time.perf_counter() - t0, 1)}
    finish(result, env, args.out)
    tmp.cleanup()


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "small_budget"))
