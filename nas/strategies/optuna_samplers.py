"""Optuna's samplers as strategies: ``optuna-nsga2`` (multi-objective) and ``optuna-tpe``.

Each of the space's searched dims is a categorical over its choice positions. Every step asks a
whole population of trials, prices them (latency is cheap), scores the feasible ones with one
vectorised accuracy call and tells every trial: the objective is never called one arch at a time.
Under a hard latency budget an over-budget arch costs no accuracy evaluation: it is told with a
placeholder accuracy and its budget violation through ``constraints_func``, so Optuna's
constraint handling (constrained domination in NSGA-II, the infeasible group in TPE) steers the
sampler away from it. The search budget counts accuracy evaluations, as for every strategy.

Two places hold the study, for two jobs:
- a working study in memory, which the sampler reads (an RDB storage read per suggested param
  makes sampling on SQLite thousands of times slower than in memory);
- with ``storage`` (a URL: ``sqlite:///RUN/optuna.db``, ``postgresql://...``) the durable study:
  each asked arch becomes a RUNNING trial with a heartbeat, then COMPLETE with its values. A
  process killed mid-step leaves RUNNING trials whose heartbeat goes stale; the next process
  fails them and ``RetryFailedTrialCallback`` queues their archs again, so nothing is left running.

Resume: the runner checkpoints the state arrays (study name, sampler seed, trials told and, with
no durable storage, every told trial). A resumed search rebuilds the working study from the
durable storage when there is one (trials it completed after the runner's last checkpoint are
handed to the runner first) or from the arrays otherwise.
"""

from __future__ import annotations

import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from search_spaces.errors import UserError

from .base import MAX_ROUNDS, Strategy, allowed
from .registry import register_strategy

PLACEHOLDER_ACC = 0.0  # told for over-budget archs, which are never evaluated; ranks them last


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # ask/tell with heartbeats is what we want; Optuna warns it expects study.optimize
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage is supposed.*")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # constraints_func (deprecated in 5.0 for Trial.set_constraint) is what optuna>=3.5 all accept
    warnings.filterwarnings("ignore", message=".*constraints_func.*deprecated.*")
    return optuna


def open_storage(url: str, heartbeat_s: int, grace_s: int):
    """An RDB storage with heartbeats; SQLite skips fsync per commit (still safe if the process dies)."""
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
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    try:
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=int(heartbeat_s), grace_period=int(grace_s),
            heartbeat_stale_trial_callback=retry(max_retry=3), **kwargs)
    except Exception as e:  # noqa: BLE001 - a bad URL or an unreachable server: one line for the user
        raise UserError(f"optuna storage {url!r} cannot be opened ({type(e).__name__}: {e})".splitlines()[0]) from None


class _OptunaStrategy(Strategy):
    """Shared ask/evaluate/tell machinery; subclasses pick the sampler and the values told."""

    def use_run_dir(self, run_dir) -> None:
        """Keep the durable study in the run folder unless a storage URL was given."""
        if self.storage is None:
            self.storage = f"sqlite:///{Path(run_dir).resolve() / 'optuna.db'}"

    def __init__(self, population: int = 100, storage: str | None = None, study_name: str | None = None,
                 heartbeat_s: int = 10, grace_s: int = 20):
        self.population = int(population)
        if self.population < 2:
            raise UserError(f"population must be at least 2, got {population}")
        self.storage = None if storage in (None, "", "memory") else str(storage)
        self.study_name = study_name
        self.heartbeat_s = int(heartbeat_s)
        self.grace_s = int(grace_s)
        self._work = self._durable = self._dists = None

    # ---- what a subclass decides ---------------------------------------------------------------
    def _directions(self, objective) -> list[str]:
        raise NotImplementedError

    def _sampler(self, seed: int, objective):
        raise NotImplementedError

    def _values(self, acc, lat, score, feasible) -> np.ndarray:
        raise NotImplementedError

    # ---- the study -----------------------------------------------------------------------------
    def _constraints(self, objective):
        if not objective.constrained():
            return None
        limits = np.array([t.limit_ms for t in objective.targets])

        def constraints(trial):  # > 0 is a violation: ms over each target's limit
            return [float(v) for v in np.asarray(trial.user_attrs["lat_ms"]) - limits]

        return constraints

    def _open(self, space, objective, state):
        optuna = _optuna()
        counts = space._search_table[0]  # the searched values (a search may narrow them)
        self._dists = {d.name: optuna.distributions.CategoricalDistribution(list(range(int(c))))
                       for d, c in zip(space.dims, counts)}
        self._work = optuna.create_study(directions=self._directions(objective),
                                         sampler=self._sampler(int(state["seed"]), objective))
        if self.storage is not None:
            self._storage = open_storage(self.storage, self.heartbeat_s, self.grace_s)
            self._durable = optuna.create_study(storage=self._storage, study_name=str(state["study_name"]),
                                                directions=self._directions(objective), load_if_exists=True)

    def start(self, space, objective, rng, budget):
        name = self.study_name or f"hwnas-{self.name}-{uuid.uuid4().hex[:12]}"
        state = {"study_name": np.array(name), "seed": np.array(int(rng.integers(2**31 - 1))),
                 "n_told": np.array(0)}
        if self.storage is None:  # the arrays are the study: the runner's checkpoint holds it all
            k = len(self._directions(objective))
            state.update(P=np.empty((0, len(space.dims)), np.int16), values=np.empty((0, k)),
                         lat=np.empty((0, len(objective.targets))), gen=np.empty(0, np.int64))
        self._open(space, objective, state)
        if self._durable is not None and self._durable.trials:
            # an existing study (another search, same name): its trials inform the sampler, but they
            # were scored by that search, not this one
            self._load(objective, state, hand_over=False)
        return state

    def _resume(self, space, objective, state):
        """Rebuild the working study after a restart; returns trials to hand to the runner first."""
        self._open(space, objective, state)
        return self._load(objective, state, hand_over=True)

    def _load(self, objective, state, hand_over: bool):
        optuna = _optuna()
        gen_key = self._gen_key()
        frozen, pending = [], []
        if self._durable is None:
            for p, v, lat, g in zip(state["P"], state["values"], state["lat"], state["gen"]):
                frozen.append(self._frozen(optuna, p, v, lat, {gen_key: int(g)} if g >= 0 else {}, objective))
        else:
            self._reclaim_stale()
            done = self._durable.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
            # trials this strategy wrote (another tool's trials in the same study carry no arch)
            done = sorted((t for t in done if "P" in t.user_attrs and "told" in t.user_attrs), key=lambda t: t.number)
            for i, t in enumerate(done):
                p, told = np.array(t.user_attrs["P"], np.int64), t.user_attrs["told"]
                sys_attrs = {gen_key: told["gen"]} if gen_key and told["gen"] >= 0 else {}
                lat = [x if np.isfinite(x) else 1e9 for x in told["lat_ms"]]
                frozen.append(self._frozen(optuna, p, t.values, lat, sys_attrs, objective))
                if hand_over and i >= int(state["n_told"]) and told["evaluated"]:
                    pending.append(p)
            state["n_told"] = np.array(len(done))
            waiting = self._durable.get_trials(deepcopy=False, states=[optuna.trial.TrialState.WAITING])
            for t in waiting:  # archs of a killed process, queued again by RetryFailedTrialCallback
                self._work.enqueue_trial({k: int(v) for k, v in zip(self._dists, t.user_attrs["P"])})
        self._work.add_trials(frozen)
        return pending

    def _gen_key(self) -> str:
        s = self._work.sampler
        return s._get_generation_key() if hasattr(s, "_get_generation_key") else ""

    def _frozen(self, optuna, p, values, lat, system_attrs, objective):
        user_attrs = {"lat_ms": [float(x) for x in lat]}
        cons = self._constraints(objective)
        t = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=[float(v) for v in values],
                                      params={k: int(v) for k, v in zip(self._dists, p)},
                                      distributions=self._dists, user_attrs=user_attrs, system_attrs=system_attrs)
        if cons is not None:  # what Optuna's after_trial stores for constraints_func
            t.system_attrs["constraints"] = tuple(cons(t))
        return t

    def _reclaim_stale(self):
        """Fail the RUNNING trials of a dead process (once their heartbeat is stale) so they are retried."""
        optuna = _optuna()
        running = self._durable.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING])
        if running:
            time.sleep(self.grace_s + 1)  # the previous process is gone: its heartbeats stop now
            optuna.storages.fail_stale_trials(self._durable)

    # ---- one generation ------------------------------------------------------------------------
    def step(self, state, space, objective, rng, remaining):
        if self._work is None:
            pending = self._resume(space, objective, state)
            if pending:
                X = space.canonical(self._decode(space, np.stack(pending)[:remaining]))
                return X, objective.evaluate(X)
        for _ in range(MAX_ROUNDS):
            X, ev = self._generation(state, space, objective, min(self.population, remaining))
            if len(X):
                return X, ev
        raise UserError("no architecture found that meets the latency budget")

    def _decode(self, space, P):
        counts, table = space._search_table
        return table[np.arange(len(counts))[None, :], P.astype(np.int64)]

    def _generation(self, state, space, objective, n):
        optuna = _optuna()
        trials = [self._work.ask(self._dists) for _ in range(n)]
        P = np.array([[t.params[k] for k in self._dists] for t in trials], np.int64)
        durable_ids = self._durable_ask(P, trials)
        X = space.canonical(self._decode(space, P))
        lat = objective.latency(X)
        ok = allowed(objective, lat)
        ev = objective.evaluate(X[ok], lat[ok])
        acc = np.full(n, PLACEHOLDER_ACC)
        acc[ok] = ev.acc
        score = np.full(n, -np.inf)
        score[ok] = ev.score
        values = self._values(acc, np.where(np.isfinite(lat), lat, 1e9), score, ok)
        gen_key = self._gen_key()
        gens = np.full(n, -1, np.int64)
        for i, t in enumerate(trials):
            t.set_user_attr("lat_ms", [float(x) if np.isfinite(x) else 1e9 for x in lat[i]])
            self._work.tell(t, [float(v) for v in values[i]])
            if gen_key:
                gens[i] = int(self._work._storage.get_trial_system_attrs(t._trial_id).get(gen_key, -1))
        if durable_ids is not None:
            for i, tid in enumerate(durable_ids):
                self._storage.set_trial_user_attr(tid, "told", {"evaluated": bool(ok[i]), "gen": int(gens[i]),
                                                                "lat_ms": [float(x) if np.isfinite(x) else 1e9 for x in lat[i]]})
                self._storage.set_trial_state_values(tid, optuna.trial.TrialState.COMPLETE,
                                                     [float(v) for v in values[i]])
        else:
            state["P"] = np.concatenate([state["P"], P.astype(np.int16)])
            state["values"] = np.concatenate([state["values"], values])
            state["lat"] = np.concatenate([state["lat"], np.where(np.isfinite(lat), lat, 1e9)])
            state["gen"] = np.concatenate([state["gen"], gens])
        state["n_told"] = np.array(int(state["n_told"]) + n)
        return X[ok], ev

    def _durable_ask(self, P, trials):
        """Mirror the asked archs as RUNNING trials with a heartbeat (None without durable storage)."""
        if self._durable is None:
            return None
        optuna = _optuna()
        ids = []
        for p in P:
            attrs = {"P": [int(x) for x in p]}
            tid = self._durable._pop_waiting_trial_id()  # a retried arch first, if any
            if tid is None:
                template = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, user_attrs=attrs)
                tid = self._storage.create_new_trial(self._durable._study_id, template_trial=template)
            else:
                self._storage.set_trial_user_attr(tid, "P", attrs["P"])
            self._storage.record_heartbeat(tid)
            ids.append(tid)
        return ids


@register_strategy("optuna-nsga2")
class OptunaNSGA2(_OptunaStrategy):
    """Optuna's NSGA-II over (accuracy, latency per target), budgets as constraints.

    ``latency="objective"`` (default) searches the accuracy/latency front within the budgets;
    ``latency="constraint"`` maximises the score alone, the budgets as constraints.
    """

    def __init__(self, population: int = 100, latency: str = "objective", crossover_prob: float = 0.9,
                 mutation_prob: float | None = None, storage: str | None = None, study_name: str | None = None,
                 heartbeat_s: int = 10, grace_s: int = 20):
        super().__init__(population, storage, study_name, heartbeat_s, grace_s)
        if latency not in ("objective", "constraint"):
            raise UserError(f"optuna-nsga2: latency must be 'objective' or 'constraint', got {latency!r}")
        self.latency = latency
        self.crossover_prob = float(crossover_prob)
        self.mutation_prob = None if mutation_prob is None else float(mutation_prob)

    def _directions(self, objective):
        if self.latency == "constraint":
            return ["maximize"]
        return ["maximize"] + ["minimize"] * len(objective.targets)

    def _sampler(self, seed, objective):
        optuna = _optuna()
        return optuna.samplers.NSGAIISampler(population_size=self.population, seed=seed,
                                             crossover_prob=self.crossover_prob, mutation_prob=self.mutation_prob,
                                             constraints_func=self._constraints(objective))

    def _values(self, acc, lat, score, feasible):
        if self.latency == "constraint":
            return np.where(feasible, score, PLACEHOLDER_ACC)[:, None]
        return np.column_stack([acc, lat])


@register_strategy("optuna-tpe")
class OptunaTPE(_OptunaStrategy):
    """Optuna's TPE on the score, budgets as constraints; batches use the constant liar."""

    def __init__(self, population: int = 50, n_startup_trials: int = 100, multivariate: bool = True,
                 storage: str | None = None, study_name: str | None = None, heartbeat_s: int = 10,
                 grace_s: int = 20):
        super().__init__(population, storage, study_name, heartbeat_s, grace_s)
        self.n_startup_trials = int(n_startup_trials)
        self.multivariate = bool(multivariate)

    def _directions(self, objective):
        return ["maximize"]

    def _sampler(self, seed, objective):
        optuna = _optuna()
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                          multivariate=self.multivariate, constant_liar=True,
                                          constraints_func=self._constraints(objective))

    def _values(self, acc, lat, score, feasible):
        return np.where(feasible, score, PLACEHOLDER_ACC)[:, None]
