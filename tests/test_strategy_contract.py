"""The strategy contract, checked on every registered strategy (as test_space_contract.py does for spaces).

A strategy registered with ``@register_strategy`` is tested here for free: the budget is respected
and counted as distinct evaluations (a counting estimator sees no arch twice), no evaluation is
spent over budget under a hard constraint, small budgets work, the same seed gives the same result
with a fresh or a reused strategy object, and ``kill -9`` then resume gives the uninterrupted result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nas
from nas.gradient.contract import TrainingStrategy
from nas.run.archive import row_hash
from nas.strategies import get_strategy, list_strategies
from search_spaces import get_space

REPO = Path(__file__).resolve().parents[1]
LIMIT_MS = 60
# the ask/tell strategies; those that train a supernet (nas.gradient) have their own tests
STRATEGIES = [s for s in list_strategies() if not isinstance(get_strategy(s), TrainingStrategy)]


class CountingAccuracy:
    """A cheap deterministic estimator that records every row it is asked to score."""

    name = "counting"

    def __init__(self, log: Path | None = None):
        self.rows = []
        self.log = log
        self.w = np.random.default_rng(5).normal(size=256)

    def predict(self, X):
        X = np.asarray(X)
        self.rows.append(X.copy())
        if self.log is not None:  # survives the process: a resumed run must not score these again
            with open(self.log, "a") as f:
                f.write("".join(f"{int(h)}\n" for h in row_hash(X)))
        return 0.6 + 0.1 * np.tanh(X @ self.w[: X.shape[1]] / 20)

    def seen(self) -> np.ndarray:
        return np.concatenate(self.rows) if self.rows else np.empty((0, 0), np.int64)


def _strip(result) -> dict:
    d = json.loads(result.model_dump_json()) if not isinstance(result, dict) else result
    return {k: v for k, v in d.items() if k not in ("wall_time_s", "created")}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_small_budget_counts_distinct_evaluations_and_never_pays_twice(strategy):
    """50 evaluations: exactly 50 distinct archs scored, none twice, none over the latency budget."""
    sp = get_space("ofa")
    acc = CountingAccuracy()
    res = nas.search(sp, "pixel", LIMIT_MS, accuracy=acc, strategy=strategy, budget=50, seed=1, plot=False)
    seen = acc.seen()
    assert len(seen) == res.n_evaluated == 50
    assert len(np.unique(row_hash(seen))) == len(seen), "an arch was scored twice"
    assert res.n_proposed >= res.n_evaluated and res.history[-1]["n_evaluated"] == 50
    lat = nas.predict_latency_ms("ofa", "pixel1", seen)
    assert (lat <= LIMIT_MS).all(), "an evaluation was spent on an arch over the latency budget"
    assert res.best is not None and res.best.latency_ms["pixel1"] <= LIMIT_MS


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_graph_space_gets_distinct_canonical_valid_evaluations(strategy):
    """nasnet (cells are graphs): 24 distinct canonical archs scored, all within budget, seed-deterministic."""
    sp = get_space("nasnet")
    limit = 260  # ms on pixel1 (NASNet-A Mobile: ~198 ms)
    acc = CountingAccuracy()
    kw = dict(strategy=strategy, budget=24, seed=2, plot=False)
    res = nas.search(sp, "pixel", limit, accuracy=acc, **kw)
    seen = acc.seen()
    assert len(seen) == res.n_evaluated == 24
    assert len(np.unique(row_hash(seen))) == len(seen), "an arch was scored twice"
    # de-duplication works on graphs: every scored row is the canonical form of its graph
    assert np.array_equal(sp.canonical(seen), seen)
    assert (nas.predict_latency_ms("nasnet", "pixel1", seen) <= limit).all()
    assert sp.validate(res.best.arch) == res.best.arch and res.best.latency_ms["pixel1"] <= limit
    assert _strip(nas.search(sp, "pixel", limit, accuracy=CountingAccuracy(), **kw)) == _strip(res)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_same_result_with_a_fresh_or_a_reused_object(strategy):
    kw = dict(space="ofa", target="pixel", latency_ms=LIMIT_MS, budget=120, seed=4, plot=False)
    reused = get_strategy(strategy)
    first = nas.search(strategy=reused, **kw)
    nas.search(strategy=reused, **{**kw, "seed": 9})  # another search in between
    again = nas.search(strategy=reused, **kw)
    fresh = nas.search(strategy=strategy, **kw)
    assert _strip(first) == _strip(again) == _strip(fresh)


_KILLER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import nas
import nas.run.loop as loop
from test_strategy_contract import CountingAccuracy
loop.CHECKPOINT_EVERY_S = 0.0  # a checkpoint after every round: the kill lands mid-run, after one
calls = []
def kill_after(info):
    calls.append(info)
    if len(calls) == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
nas.search("ofa", "pixel", {limit}, accuracy=CountingAccuracy(sys.argv[2]), strategy={strategy!r}, budget={budget},
           seed=3, out=sys.argv[1], plot=False, callbacks=[kill_after], strategy_params={params!r})
"""


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path, monkeypatch, strategy):
    budget = 150
    killed, log = tmp_path / "killed", tmp_path / "scored.txt"
    params = {"batch_size": 40} if strategy == "random" else {}  # several rounds, so the kill lands mid-run
    script = _KILLER.format(tests=str(REPO / "tests"), kill_at=3, limit=LIMIT_MS, strategy=strategy, budget=budget,
                            params=params)
    proc = subprocess.run([sys.executable, "-c", script, str(killed), str(log)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (killed / "checkpoint.npz").is_file() and not (killed / "result.json").exists()
    with np.load(killed / "checkpoint.npz") as z:
        elapsed_before = float(z["elapsed_s"])

    kw = dict(strategy=strategy, strategy_params=params, budget=budget, seed=3, plot=False)
    resumed = nas.search("ofa", "pixel", LIMIT_MS, accuracy=CountingAccuracy(log), out=killed, resume=True, **kw)
    clean = nas.search("ofa", "pixel", LIMIT_MS, accuracy=CountingAccuracy(), out=tmp_path / "clean", **kw)
    assert _strip(resumed) == _strip(clean)
    # never pay twice, across the kill: every arch scored once over both processes
    hashes = log.read_text().split()
    assert len(hashes) == len(set(hashes)) == budget
    # the wall time counts the killed process's time too
    assert resumed.wall_time_s >= elapsed_before > 0
    # resuming a finished run keeps its result as it is
    before = (killed / "result.json").read_bytes()
    again = nas.search("ofa", "pixel", LIMIT_MS, accuracy=CountingAccuracy(log), out=killed, resume=True, **kw)
    assert (killed / "result.json").read_bytes() == before and again.created == resumed.created
    assert len(log.read_text().split()) == budget


def test_budget_rule_sets_defaults_and_explicit_params_override():
    small = nas.search("ofa", "pixel", LIMIT_MS, strategy="evolution", budget=100, seed=0, plot=False)
    large = get_strategy("evolution").resolve(20_000, len(get_space("ofa").dims))
    assert small.strategy_params["population"] == 20 and large["population"] == 100
    given = nas.search("ofa", "pixel", LIMIT_MS, strategy="evolution", budget=100, seed=0, plot=False,
                       strategy_params={"population": 50})
    assert given.strategy_params["population"] == 50
    tpe = get_strategy("optuna-tpe").resolve(100, 46)
    assert tpe["n_startup_trials"] == 10 and get_strategy("optuna-tpe").resolve(20_000, 46)["n_startup_trials"] == 100
    assert get_strategy("rl").resolve(100, 46)["batch_size"] == 10


def test_an_expensive_estimator_gets_predictor_evolution_by_default():
    class Slow(CountingAccuracy):
        cost_s = 2.0  # declares itself expensive (nas.objective.DeclaresCost)

    res = nas.search("ofa", "pixel", LIMIT_MS, accuracy=Slow(), budget=60, seed=0, plot=False)
    assert res.strategy == "predictor-evolution"
    assert res.cost["accuracy_evaluations"] == 60 and res.cost["accuracy_cost_s"] == pytest.approx(120.0)
    corr = [h["surrogate_rank_corr"] for h in res.history if "surrogate_rank_corr" in h]
    assert corr and all(-1 <= c <= 1 for c in corr)
    cheap = nas.search("ofa", "pixel", LIMIT_MS, accuracy=CountingAccuracy(), budget=60, seed=0, plot=False)
    assert cheap.strategy == "evolution"


@pytest.mark.parametrize("strategy", ["evolution", "predictor-evolution", "random"])
def test_an_expensive_latency_target_is_priced_sparingly(strategy):
    """A measured latency (it declares cost_s): each arch priced once, no bulk sampling, calls counted."""
    sp = get_space("ofa")
    from nas.latency import predict_latency_ms

    class Measured:
        name = "measured"
        cost_s = 0.5

        def __init__(self):
            self.rows = []

        def predict(self, X):
            self.rows.append(np.asarray(X).copy())
            return predict_latency_ms("ofa", "pixel1", X)

    dev = Measured()
    res = nas.search(sp, dev, LIMIT_MS, strategy=strategy, budget=40, seed=0, plot=False)
    priced = np.concatenate(dev.rows)
    assert len(np.unique(row_hash(priced))) == len(priced), "an arch was priced twice"
    assert res.cost["latency_evaluations"] == len(priced) and res.cost["latency_cost_s"] == pytest.approx(0.5 * len(priced))
    assert max(len(r) for r in dev.rows) <= 100  # never thousands of archs at once
    assert res.n_evaluated == 40 and res.best.latency_ms["measured"] <= LIMIT_MS


@pytest.mark.parametrize("args, needle", [
    (("--param", "mutate_prob=5"), "mutate_prob must be float in (0, 1]"),
    (("--param", "population=-1"), "population must be int >= 2"),
    (("--param", "bogus=1"), "unknown parameter 'bogus'; accepted: population"),
    (("--strategy", "rl", "--param", "lr=-1"), "lr must be float in (0, 10]"),
    (("--strategy", "random", "--param", "batch_size=0"), "batch_size must be int >= 1"),
    (("--strategy", "optuna-tpe", "--param", "multivariate=maybe"), "multivariate must be bool"),
    (("--strategy", "predictor-evolution", "--param", "explore=2"), "explore must be float in [0, 1]"),
])
def test_bad_strategy_parameters_are_one_line_naming_the_accepted(tmp_path, nas_cli, args, needle):
    code, _, err = nas_cli("search", "--latency", "60ms", *args, "--quiet", "--out", tmp_path / "r")
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()
