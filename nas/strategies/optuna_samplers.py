"""Optuna's samplers as strategies: ``optuna-nsga2`` (multi-objective) and ``optuna-tpe``.

Each of the grid's dims is a categorical over its choice positions. Every round asks a whole
population of trials; the runner prices them, scores the feasible unseen ones in one vectorised
call (re-proposed archs are answered from its cache for free) and every trial is told. Under a
hard latency budget an over-budget arch costs no accuracy evaluation: it is told with a
placeholder accuracy and its budget violation through ``constraints_func``, so Optuna's
constraint handling (constrained domination in NSGA-II, the infeasible group in TPE) steers the
sampler away from it.

Persistence: every told trial is a row of the strategy state (positions, values, latency,
NSGA-II generation), which the runner checkpoints. The working study is an in-memory study
rebuilt from those rows, and the sampler is re-created each round with a seed drawn from the
runner's checkpointed generator, so a resumed search (also after ``kill -9``) continues exactly:
there is no RUNNING trial to reclaim and nothing to wait for. With ``storage`` (an Optuna storage
URL) the told trials are also mirrored there as COMPLETE trials, one adapter for sharing a study
between searches or with Optuna's tools; a new search on an existing study name learns from
the trials stored there.
"""

from __future__ import annotations

import uuid
import warnings

import numpy as np

from search_spaces.errors import UserError

from .base import Param, Strategy, allowed
from .registry import register_strategy

PLACEHOLDER_ACC = 0.0  # told for over-budget archs, which are never evaluated; ranks them last
NO_LATENCY_MS = 1e9    # told for unpriced archs


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # constraints_func (deprecated in 5.0 for Trial.set_constraint) is what optuna>=3.5 all accept
    warnings.filterwarnings("ignore", message=".*constraints_func.*deprecated.*")
    return optuna


def open_storage(url: str):
    """An RDB storage; SQLite skips fsync per commit (the runner's checkpoint is the durable record)."""
    optuna = _optuna()
    kwargs = {}
    if url.startswith("sqlite:///"):
        import sqlite3

        path = url[len("sqlite:///"):]

        def connect():
            con = sqlite3.connect(path, timeout=30, check_same_thread=False)
            con.execute("PRAGMA synchronous=OFF")
            return con

        kwargs["engine_kwargs"] = {"creator": connect}
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    except Exception as e:  # noqa: BLE001 - a bad URL or an unreachable server: one line for the user
        raise UserError(f"optuna storage {url!r} cannot be opened ({type(e).__name__}: {e})".splitlines()[0]) from None


_COMMON = {"population": Param(int, None, lo=2), "storage": Param(str, None, nullable=True),
           "study_name": Param(str, None, nullable=True)}


class _OptunaStrategy(Strategy):
    """Shared ask/tell machinery; subclasses pick the sampler and the values told."""

    # ---- what a subclass decides ---------------------------------------------------------------
    def _directions(self, objective) -> list[str]:
        raise NotImplementedError

    def _sampler(self, seed: int, ctx):
        raise NotImplementedError

    def _values(self, ctx, acc, lat, score, feasible) -> np.ndarray:
        raise NotImplementedError

    def _n_random(self, ctx) -> int:
        """Trials of the random design, drawn feasible by the runner rather than by the sampler."""
        raise NotImplementedError

    def batch(self, ctx, state):
        return ctx.params["population"]

    # ---- the study -----------------------------------------------------------------------------
    def _constraints(self, objective):
        if not objective.constrained():
            return None
        limits = np.array([t.limit_ms for t in objective.targets])

        def constraints(trial):  # > 0 is a violation: ms over each target's limit
            return [float(v) for v in np.asarray(trial.user_attrs["lat_ms"]) - limits]

        return constraints

    def _dists(self, ctx):
        optuna = _optuna()
        return {n: optuna.distributions.CategoricalDistribution(list(range(int(c))))
                for n, c in zip(ctx.grid.names, ctx.grid.counts)}

    def _durable(self, ctx, state):
        """The mirror study in the user's storage (None without one)."""
        url = ctx.params["storage"]
        if url in (None, "", "memory"):
            return None
        if "optuna_durable" not in ctx.scratch:
            optuna = _optuna()
            ctx.scratch["optuna_durable"] = optuna.create_study(
                storage=open_storage(url), study_name=str(state["study_name"]),
                directions=self._directions(ctx.objective), load_if_exists=True)
        return ctx.scratch["optuna_durable"]

    def init(self, ctx, rng):
        name = ctx.params["study_name"] or f"hwnas-{self.name}-{uuid.UUID(int=int(rng.integers(2**63))).hex[:12]}"
        k = len(self._directions(ctx.objective))
        state = {"study_name": np.array(name), "run_id": np.array(uuid.UUID(int=int(rng.integers(2**63))).hex),
                 "P": np.empty((0, ctx.grid.n_dims), np.int16), "values": np.empty((0, k)),
                 "lat": np.empty((0, len(ctx.objective.targets))), "gen": np.empty(0, np.int64),
                 "repeat": np.empty(0, bool),
                 "n_prior": np.array(0)}
        durable = self._durable(ctx, state)
        if durable is not None:
            # an existing study (another search, same name): its trials inform the sampler, but
            # they were scored by that search, not this one
            names = list(ctx.grid.names)
            prior = [t for t in durable.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
                     and "P" in t.user_attrs and "told" in t.user_attrs and len(t.values) == k]
            if prior:
                state["P"] = np.array([t.user_attrs["P"] for t in prior], np.int16).reshape(-1, len(names))
                state["values"] = np.array([t.values for t in prior], np.float64)
                state["lat"] = np.array([t.user_attrs["told"]["lat_ms"] for t in prior], np.float64)
                state["gen"] = np.array([t.user_attrs["told"]["gen"] for t in prior], np.int64)
                state["repeat"] = np.zeros(len(prior), bool)
                state["n_prior"] = np.array(len(prior))
        return state

    def _work(self, ctx, state):
        """The in-memory working study, rebuilt from the state's told trials on a run's first ask."""
        if "optuna_work" in ctx.scratch:
            return ctx.scratch["optuna_work"]
        optuna = _optuna()
        dists = self._dists(ctx)
        study = optuna.create_study(directions=self._directions(ctx.objective),
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        gen_key = self._gen_key(ctx)
        repeat = state.get("repeat", np.zeros(len(state["P"]), bool))
        frozen = [self._frozen(optuna, ctx, dists, p, v, lat, {gen_key: int(g)} if gen_key and g >= 0 else {}, r)
                  for p, v, lat, g, r in zip(state["P"], state["values"], state["lat"], state["gen"], repeat)]
        study.add_trials(frozen)
        ctx.scratch["optuna_work"] = study
        ctx.scratch["optuna_dists"] = dists
        return study

    def _gen_key(self, ctx) -> str:
        s = self._sampler(0, ctx)
        key = getattr(type(s), "_get_generation_key", None)
        return key() if key is not None else ""

    def _frozen(self, optuna, ctx, dists, p, values, lat, system_attrs, repeat=False):
        cons = self._constraints(ctx.objective)
        if repeat:
            return optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                             params={k: int(v) for k, v in zip(dists, p)}, distributions=dists,
                                             user_attrs={"lat_ms": [float(x) for x in lat]},
                                             system_attrs=system_attrs)
        t = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=[float(v) for v in values],
                                      params={k: int(v) for k, v in zip(dists, p)}, distributions=dists,
                                      user_attrs={"lat_ms": [float(x) for x in lat]}, system_attrs=system_attrs)
        if cons is not None:  # what Optuna's after_trial stores for constraints_func
            t.system_attrs["constraints"] = tuple(cons(t))
        return t

    # ---- one round -----------------------------------------------------------------------------
    def ask(self, state, ctx, n, rng):
        study = self._work(ctx, state)
        # a fresh sampler per round, seeded from the runner's generator: a rebuilt study gives the
        # same proposals as the study of an uninterrupted run
        study.sampler = self._sampler(int(rng.integers(2**31 - 1)), ctx)
        dists = ctx.scratch["optuna_dists"]
        k = min(n, self._n_random(ctx) - len(study.trials))
        if k > 0:
            # The random design (NSGA-II's first generation, TPE's startup trials) comes from the
            # runner's constraint-aware sampler: under a tight latency budget most of Optuna's
            # uniform draws are over budget, so the sampler would learn from a handful of scored
            # archs; enqueued, every one of them is a feasible, unseen arch and an evaluation.
            X0 = ctx.fill(lambda m: ctx.grid.sample(rng, m), k)
            for p in ctx.grid.positions(X0):
                study.enqueue_trial({name: int(v) for name, v in zip(dists, p)})
        trials = [study.ask(dists) for _ in range(n)]
        ctx.scratch["optuna_pending"] = trials
        P = np.array([[t.params[k] for k in dists] for t in trials], np.int64)
        return ctx.grid.from_positions(P)

    def tell(self, state, ctx, X, told):
        optuna = _optuna()
        study, trials = ctx.scratch["optuna_work"], ctx.scratch.pop("optuna_pending")
        dists = ctx.scratch["optuna_dists"]
        lat = np.where(np.isfinite(told.lat_ms), told.lat_ms, NO_LATENCY_MS)
        ok = told.known & allowed(ctx.objective, told.lat_ms)
        acc = np.where(ok, told.acc, PLACEHOLDER_ACC)
        values = self._values(ctx, acc, lat, told.score, ok)
        gen_key = self._gen_key(ctx)
        gens = np.full(len(trials), -1, np.int64)
        # A re-proposed arch (scored before in this run, or twice in this batch) is told as FAIL:
        # as COMPLETE, copies of the best arch would fill NSGA-II's population (and weigh on TPE's
        # density), collapsing the diversity a small budget needs; as FAIL it is left out of both,
        # and a generation fills up with distinct archs.
        repeat = told.known & ~told.new
        for i, t in enumerate(trials):
            t.set_user_attr("lat_ms", [float(x) for x in lat[i]])
            if repeat[i]:
                frozen = study.tell(t, state=optuna.trial.TrialState.FAIL)
            else:
                frozen = study.tell(t, [float(v) for v in values[i]])
            if gen_key:
                gens[i] = int(frozen.system_attrs.get(gen_key, -1))
        P = np.array([[t.params[k] for k in dists] for t in trials], np.int16).reshape(-1, ctx.grid.n_dims)
        first = len(state["P"])
        state["P"] = np.concatenate([state["P"], P])
        state["values"] = np.concatenate([state["values"], values])
        state["lat"] = np.concatenate([state["lat"], lat])
        state["gen"] = np.concatenate([state["gen"], gens])
        state["repeat"] = np.concatenate([state.get("repeat", np.zeros(first, bool)), repeat])
        self._mirror(ctx, state, first, told)
        return None

    def _mirror(self, ctx, state, first, told):
        """Copy the trials told since ``first`` to the user's storage (skipping any already there)."""
        durable = self._durable(ctx, state)
        if durable is None:
            return
        optuna = _optuna()
        run = str(state["run_id"])
        if "optuna_mirrored" not in ctx.scratch:  # a resumed run may have mirrored past its checkpoint
            ctx.scratch["optuna_mirrored"] = {t.user_attrs["told"]["i"] for t in durable.get_trials(deepcopy=False)
                                              if t.user_attrs.get("told", {}).get("run") == run}
        done = ctx.scratch["optuna_mirrored"]
        dists = ctx.scratch["optuna_dists"]
        frozen = []
        for i in range(first, len(state["P"])):
            if i in done:
                continue
            told_attr = {"run": run, "i": i, "evaluated": bool(told.new[i - first]), "gen": int(state["gen"][i]),
                         "lat_ms": [float(x) for x in state["lat"][i]]}
            t = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE,
                                          values=[float(v) for v in state["values"][i]],
                                          params={k: int(v) for k, v in zip(dists, state["P"][i])},
                                          distributions=dists,
                                          user_attrs={"P": [int(x) for x in state["P"][i]], "told": told_attr})
            frozen.append(t)
            done.add(i)
        durable.add_trials(frozen)


@register_strategy("optuna-nsga2")
class OptunaNSGA2(_OptunaStrategy):
    """Optuna's NSGA-II; under a hard latency budget it maximises accuracy subject to the budget.

    ``latency="auto"`` (default): with a hard budget (the ``hard`` reward) the score alone is
    maximised and the budgets are constraints, because the search is asked for the best arch
    within them and spreading a small budget over the accuracy/latency front leaves it worse than
    random search; with a soft reward latency is a second objective. ``"objective"`` always
    searches the accuracy/latency front within the budgets (the Pareto set is the answer);
    ``"constraint"`` always maximises the score alone. The first generation is drawn feasible.
    """

    PARAMS = {**_COMMON, "latency": Param(str, "auto", choices=("auto", "objective", "constraint")),
              "crossover_prob": Param(float, 0.9, lo=0, hi=1),
              "mutation_prob": Param(float, None, lo=0, hi=1)}

    def auto(self, rule):
        return {"population": rule["nsga2_population"], "mutation_prob": rule["nsga2_mutation_prob"]}

    def _mode(self, objective) -> str:
        if self.latency != "auto":
            return self.latency
        return "constraint" if objective.constrained() else "objective"

    def _directions(self, objective):
        if self._mode(objective) == "constraint":
            return ["maximize"]
        return ["maximize"] + ["minimize"] * len(objective.targets)

    def _n_random(self, ctx):
        return ctx.params["population"]

    def _sampler(self, seed, ctx):
        optuna = _optuna()
        p = ctx.params
        return optuna.samplers.NSGAIISampler(population_size=p["population"], seed=seed,
                                             crossover_prob=p["crossover_prob"], mutation_prob=p["mutation_prob"],
                                             constraints_func=self._constraints(ctx.objective))

    def _values(self, ctx, acc, lat, score, feasible):
        if self._mode(ctx.objective) == "constraint":
            return np.where(feasible, score, PLACEHOLDER_ACC)[:, None]
        return np.column_stack([acc, lat])


@register_strategy("optuna-tpe")
class OptunaTPE(_OptunaStrategy):
    """Optuna's TPE on the score, budgets as constraints; batches use the constant liar."""

    PARAMS = {**_COMMON, "n_startup_trials": Param(int, None, lo=0), "multivariate": Param(bool, True)}

    def auto(self, rule):
        return {"population": rule["tpe_batch"], "n_startup_trials": rule["tpe_startup"]}

    def _directions(self, objective):
        return ["maximize"]

    def _sampler(self, seed, ctx):
        optuna = _optuna()
        p = ctx.params
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=p["n_startup_trials"],
                                          multivariate=p["multivariate"], constant_liar=True,
                                          constraints_func=self._constraints(ctx.objective))

    def _n_random(self, ctx):
        return ctx.params["n_startup_trials"]

    def _values(self, ctx, acc, lat, score, feasible):
        return np.where(feasible, score, PLACEHOLDER_ACC)[:, None]
