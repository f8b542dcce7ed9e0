"""Optuna's samplers as strategies: budgets, batched ask/tell, resume from storage, retried trials."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import nas
from nas.objective import Objective
from nas.search import make_target
from search_spaces import get_space

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("strategy, params", [
    ("optuna-nsga2", {"population": 40}),
    ("optuna-nsga2", {"population": 40, "latency": "constraint"}),
    ("optuna-tpe", {"population": 40, "n_startup_trials": 40}),
])
def test_optuna_strategies_meet_the_budget_and_spend_it_exactly(strategy, params):
    res = nas.search("ofa", "pixel", 50, strategy=strategy, strategy_params=params, budget=250, seed=0, plot=False)
    assert res.n_evaluated == 250 and res.strategy == strategy
    assert res.best is not None and res.best.latency_ms["pixel1"] <= 50
    assert all(s.latency_ms["pixel1"] <= 50 for s in res.pareto)


def test_a_population_is_scored_in_one_call():
    sp = get_space("ofa")

    class Counting:
        calls, sizes = 0, []

        def predict(self, X):
            Counting.calls += 1
            Counting.sizes.append(len(X))
            return 0.7 + 0.001 * X.sum(axis=1) / X.shape[1]

    nas.search(sp, "pixel", 60, accuracy=Counting(), strategy="optuna-nsga2",
               strategy_params={"population": 50}, budget=200, seed=1, plot=False)
    assert sum(Counting.sizes) == 200 and Counting.calls <= 200 / 10


def test_resume_from_sqlite_storage_continues_the_study(tmp_path):
    db = f"sqlite:///{tmp_path / 'optuna.db'}"
    params = {"population": 30, "storage": db, "study_name": "resume-me"}
    full = nas.search("ofa", "pixel", 50, strategy="optuna-nsga2", strategy_params=params, budget=150, seed=2,
                      out=tmp_path / "run", plot=False)
    import optuna

    study = optuna.load_study(study_name="resume-me", storage=db)
    told = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sum(t.user_attrs["told"]["evaluated"] for t in told) == full.n_evaluated == 150
    # a second search on the same study picks up all its trials and adds a budget's worth
    more = nas.search("ofa", "pixel", 50, strategy="optuna-nsga2", budget=60, seed=2, plot=False,
                      strategy_params={**params, "population": 30})
    assert more.n_evaluated == 60
    study = optuna.load_study(study_name="resume-me", storage=db)
    told = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sum(t.user_attrs["told"]["evaluated"] for t in told) == 210


def test_a_storage_mirror_holds_only_complete_trials(tmp_path):
    """Told trials are mirrored as COMPLETE: a killed process leaves nothing RUNNING to reclaim or wait for."""
    import optuna

    db = f"sqlite:///{tmp_path / 'o.db'}"
    res = nas.search("ofa", "pixel", 60, strategy="optuna-tpe", budget=80, seed=0, plot=False,
                     strategy_params={"population": 20, "storage": db, "study_name": "mirror"})
    study = optuna.load_study(study_name="mirror", storage=db)
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
    assert len(study.trials) == res.n_proposed
    assert sum(t.user_attrs["told"]["evaluated"] for t in study.trials) == res.n_evaluated == 80


# Exact resume (after kill -9, for every strategy, optuna ones included) is checked in
# tests/test_strategy_contract.py.


def test_nsga2_beats_random_in_hypervolume_small(shared_data, nas_cli):
    """A small version of experiments/bench/nsga2_vs_random.py (the full one: 3000 evaluations, 5 seeds)."""
    spec = importlib.util.spec_from_file_location("bench", REPO / "experiments/bench/nsga2_vs_random.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules["hwnas_bench_nsga2"] = bench
    spec.loader.exec_module(bench)
    files = sorted((shared_data / "ofa").glob("note10_*_lookup_table.yaml"))
    code, _, err = nas_cli("import-table", "--format", "ofa", *files, "--device", "note10")
    assert code == 0, err
    from nas.accuracy.ofa_predictor import OFAAccuracyPredictor

    acc = OFAAccuracyPredictor(get_space("ofa"), shared_data / "ofa" / "acc_predictor.pth")
    hv = {}
    for strat, params in (("optuna-nsga2", {"population": 50, "latency": "objective"}), ("random", {})):
        vals = []
        for seed in (0, 1, 2):
            res = nas.search("ofa", "note10", 25, accuracy=acc, strategy=strat, strategy_params=params,
                             budget=600, seed=seed, plot=False)
            vals.append(bench.hypervolume([(s.latency_ms["note10"], s.top1) for s in res.pareto], 25))
        hv[strat] = np.median(vals)
    assert hv["optuna-nsga2"] > hv["random"]


def test_hypervolume_of_a_known_front():
    from importlib import util

    spec = util.spec_from_file_location("b", REPO / "experiments/bench/nsga2_vs_random.py")
    b = util.module_from_spec(spec)
    spec.loader.exec_module(b)
    # two points: (10 ms, 0.5) and (20 ms, 0.8) under a 30 ms budget: 0.5*20 + 0.3*10
    assert b.hypervolume([(10, 0.5), (20, 0.8), (40, 0.9), (25, 0.6)], 30) == pytest.approx(13.0)


def test_a_run_folder_needs_no_optuna_db(tmp_path):
    """The runner's checkpoint holds the study (every told trial): no optuna.db, no stale trials on resume."""
    import nas

    res = nas.search("ofa", "pixel", 60, strategy="optuna-nsga2", budget=200, seed=0, out=tmp_path / "run",
                     strategy_params={"population": 50}, plot=False)
    assert not (tmp_path / "run" / "optuna.db").exists()
    assert (tmp_path / "run" / "checkpoint.npz").is_file()
    assert res.best.latency_ms["pixel1"] <= 60


@pytest.mark.parametrize("strategy, random_design", [("optuna-nsga2", "population"),
                                                     ("optuna-tpe", "n_startup_trials")])
def test_the_random_design_is_drawn_within_the_budget(strategy, random_design):
    """Under a tight budget (10th percentile of pixel latency) every random-design trial is an evaluation.

    Optuna's own uniform draws would be mostly over budget there: NSGA-II's first generation and
    TPE's startup would learn from a handful of scored archs.
    """
    sp = get_space("ofa")
    lat = make_target("pixel", sp, 1e9).predictor.predict(sp.sample_encoded(np.random.default_rng(0), 2000))
    limit = float(np.percentile(lat, 10))
    res = nas.search(sp, "pixel", limit, strategy=strategy, budget=60, seed=2, plot=False)
    n = res.strategy_params[random_design]
    design = [h for h in res.history if h["n_proposed"] <= n]
    # rounds of `population` proposals: the last round wholly within the design ends near its size
    assert design and design[-1]["n_proposed"] > n - res.strategy_params["population"]
    assert all(h["n_evaluated"] == h["n_proposed"] for h in design)
    assert res.n_evaluated == 60 and res.best.latency_ms["pixel1"] <= limit


def test_nsga2_maximises_accuracy_under_a_hard_budget_and_searches_the_front_under_a_soft_one(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    runs = {"hard": ({}, "hard"), "soft": ({}, "mnas"), "front": ({"latency": "objective"}, "hard")}
    for name, (params, reward) in runs.items():
        nas.search("ofa", "pixel", 50, strategy="optuna-nsga2", reward=reward, budget=20, seed=0, plot=False,
                   strategy_params={**params, "storage": url, "study_name": name})
    directions = {name: [d.name for d in optuna.load_study(study_name=name, storage=url).directions]
                  for name in runs}
    assert directions == {"hard": ["MAXIMIZE"], "soft": ["MAXIMIZE", "MINIMIZE"], "front": ["MAXIMIZE", "MINIMIZE"]}
