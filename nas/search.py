"""Running a search: targets from devices, the generation loop, archive, checkpoints and results.

``search(...)`` is the public entry point (the CLI's ``nas search`` calls it). The loop is
deterministic for a seed: its state (strategy arrays, archive, history, RNG state) is written
atomically to ``checkpoint.npz`` in the run folder, and a resumed run continues bit-for-bit.
"""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from search_spaces import get_space
from search_spaces.base import SearchSpace
from search_spaces.errors import UserError

from .accuracy import describe, get_estimator
from .accuracy.run_state import KeepsRunState
from .io import atomic_write_bytes, atomic_write_json, read_json
from .objective import Objective, Target
from .results import ArchScore, SearchResult, TargetInfo, versions
from .strategies import Strategy, get_strategy

DEFAULT_BUDGET = 20_000
CHECKPOINT_EVERY_S = 0.5


# ---- targets ---------------------------------------------------------------------------------
class _TolerantLatency:
    """A device's predictor for search: archs with unpriced blocks get NaN (infeasible), not an error.

    Tables imported from other tools cover part of a space (Once-for-All's note10 tables: five
    resolutions); the search simply stays where the table has numbers.
    """

    def __init__(self, predictor):
        self.predictor = predictor

    def predict(self, X):
        return self.predictor.predict(X, missing="nan")


def make_target(device, space: SearchSpace, budget, margin: float = 0.0) -> Target:
    """A Target from a device name / profile / any object with ``predict(X) -> ms``."""
    from latency_predictors.units import parse_latency_ms

    budget_ms = parse_latency_ms(budget)
    if callable(getattr(device, "predict", None)) and not hasattr(device, "tables"):
        name = getattr(device, "name", type(device).__name__)
        return Target(str(name), device, budget_ms, margin, getattr(device, "source", "user-supplied predictor"))
    from latency_predictors.predictor import LatencyPredictor

    pred = LatencyPredictor(device, space)
    validation = None
    vals = getattr(pred.profile, "validation", None) or {}
    if isinstance(vals, dict) and space.name in vals:
        v = vals[space.name]
        validation = v.model_dump() if hasattr(v, "model_dump") else dict(v)
    fit = getattr(pred.profile, "fit", None)
    if validation is None and fit is not None:
        validation = fit.model_dump() if hasattr(fit, "model_dump") else dict(fit)
    return Target(pred.profile.name, _TolerantLatency(pred), budget_ms, margin,
                  f"{pred.source}: {pred.provenance}" if getattr(pred, "provenance", None) else pred.source,
                  validation)


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


# ---- archive ---------------------------------------------------------------------------------
@dataclass
class Archive:
    """Top-k by score and the accuracy/latency Pareto front over everything evaluated."""

    k: int
    n_dims: int
    n_targets: int
    arrays: dict = field(default_factory=dict)
    # With MnasNet's hard reward an arch over budget can still out-score every arch within it;
    # the reported best is then the best one within budget (when there is one).
    limits_ms: np.ndarray | None = None

    def __post_init__(self):
        if not self.arrays:
            for part in ("top", "front"):
                self.arrays[f"{part}_X"] = np.empty((0, self.n_dims), np.int64)
                self.arrays[f"{part}_acc"] = np.empty(0)
                self.arrays[f"{part}_lat"] = np.empty((0, self.n_targets))
                self.arrays[f"{part}_score"] = np.empty(0)

    def add(self, X, ev):
        a = self.arrays
        for part, select in (("top", self._top), ("front", self._front)):
            X2 = np.concatenate([a[f"{part}_X"], X])
            acc = np.concatenate([a[f"{part}_acc"], ev.acc])
            lat = np.concatenate([a[f"{part}_lat"], ev.lat_ms])
            score = np.concatenate([a[f"{part}_score"], ev.score])
            _, first = np.unique(_row_hash(X2), return_index=True)
            keep = select(acc[first], lat[first], score[first])
            idx = first[keep]
            a[f"{part}_X"], a[f"{part}_acc"], a[f"{part}_lat"], a[f"{part}_score"] = X2[idx], acc[idx], lat[idx], score[idx]

    def _top(self, acc, lat, score):
        keys = [lat[:, 0], -score]  # best score first; ties: faster first
        if self.limits_ms is not None:
            keys.append(~(lat <= self.limits_ms[None, :]).all(axis=1))
        order = np.lexsort(keys)
        return order[np.isfinite(score[order])][: self.k]

    @staticmethod
    def _front(acc, lat, score):
        """Non-dominated in (accuracy up, first target's latency down), among scored archs."""
        ok = np.flatnonzero(np.isfinite(score) & np.isfinite(lat[:, 0]))
        order = ok[np.lexsort((-acc[ok], lat[ok, 0]))]
        best_before = np.maximum.accumulate(np.concatenate([[-np.inf], acc[order]]))[:-1]
        return order[acc[order] > best_before]


_HASH_MULT = np.random.default_rng(20190101).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)


def _row_hash(X: np.ndarray) -> np.ndarray:
    """A 64-bit key per row (random odd multipliers, wrapping): de-duplication without a row sort."""
    with np.errstate(over="ignore"):
        return X.astype(np.uint64) @ _HASH_MULT[: X.shape[1]]


# ---- the loop --------------------------------------------------------------------------------
class Progress:
    """Progress lines on stderr, at most one a second (a single updating line on a terminal)."""

    def __init__(self, budget: int, stream=sys.stderr):
        self.budget, self.stream = budget, stream
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.tty = stream.isatty()

    def __call__(self, info: dict):
        now = time.perf_counter()
        done = info["n_evaluated"] >= self.budget
        if now - self.last < 1.0 and not done:
            return
        self.last = now
        el = now - self.t0
        eta = el / max(info["n_evaluated"], 1) * (self.budget - info["n_evaluated"])
        line = (f"gen {info['generation']:>4}  evaluated {info['n_evaluated']:>7}/{self.budget}  "
                f"best top-1 {100 * info['best_top1']:.2f}%  latency {info['best_latency_ms']:.2f} ms  "
                f"elapsed {el:.1f}s  eta {eta:.1f}s")
        self.stream.write(("\r" + line + ("\n" if done else "")) if self.tty else line + "\n")
        self.stream.flush()


def _save_checkpoint(path: Path, state: dict, archive: Archive, history: list, counters: dict,
                     rng: np.random.Generator, fingerprint: str):
    arrays = {f"state/{k}": v for k, v in state.items()}
    arrays.update({f"archive/{k}": v for k, v in archive.arrays.items()})
    arrays["history"] = np.array(history, dtype=np.float64).reshape(-1, 4)
    arrays["counters"] = np.array([counters["n_evaluated"], counters["generation"]], np.int64)
    arrays["rng"] = np.array(json.dumps(rng.bit_generator.state))
    arrays["fingerprint"] = np.array(fingerprint)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path: Path, fingerprint: str, archive: Archive, rng: np.random.Generator):
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise UserError(f"checkpoint {str(path)!r} is unreadable ({type(e).__name__}); delete it to start over") from None
    if str(data["fingerprint"]) != fingerprint:
        raise UserError(f"checkpoint {str(path)!r} belongs to a different search configuration; "
                        "resume with the same settings or use another --out")
    rng.bit_generator.state = json.loads(str(data["rng"]))
    state = {k[len("state/"):]: v for k, v in data.items() if k.startswith("state/")}
    archive.arrays = {k[len("archive/"):]: v for k, v in data.items() if k.startswith("archive/")}
    history = [list(r) for r in data["history"]]
    n_eval, gen = (int(v) for v in data["counters"])
    return state, history, {"n_evaluated": n_eval, "generation": gen}


def run_search(space: SearchSpace, objective: Objective, strategy: Strategy, budget: int, seed: int,
               top_k: int = 5, run_dir: Path | None = None, resume: bool = False,
               callbacks: Sequence[Callable[[dict], None]] = (), fingerprint: str = "") -> tuple[Archive, list, int]:
    """The generation loop. Returns the archive, the history rows and the number evaluated."""
    # Populations are small matrices: BLAS threads only add hand-off cost (60x slower on a busy
    # 2-core machine), so the loop runs single-threaded BLAS.
    from threadpoolctl import ThreadpoolController

    with ThreadpoolController().limit(limits=1, user_api="blas"):
        return _loop(space, objective, strategy, budget, seed, top_k, run_dir, resume, callbacks, fingerprint)


def _loop(space, objective, strategy, budget, seed, top_k, run_dir, resume, callbacks, fingerprint):
    rng = np.random.default_rng(seed)
    archive = Archive(top_k, len(space.dims), len(objective.targets),
                      limits_ms=np.array([t.limit_ms for t in objective.targets])
                      if objective.reward == "mnas-hard" else None)
    ckpt = run_dir / "checkpoint.npz" if run_dir is not None else None
    last_save = time.perf_counter()

    def absorb(X, ev):
        archive.add(X, ev)
        counters["n_evaluated"] += len(X)
        a = archive.arrays
        best = (a["top_acc"][0], a["top_lat"][0, 0], a["top_score"][0]) if len(a["top_acc"]) else (
            np.nan, np.nan, np.nan)
        history.append([counters["n_evaluated"], best[2], best[0], best[1]])

    if resume and ckpt is not None and ckpt.is_file():
        state, history, counters = _load_checkpoint(ckpt, fingerprint, archive, rng)
    else:
        history, counters = [], {"n_evaluated": 0, "generation": 0}
        state = strategy.start(space, objective, rng, budget)
        batch = state.pop("batch", None)
        if batch is not None:
            absorb(*batch)
        if ckpt is not None:
            _save_checkpoint(ckpt, state, archive, history, counters, rng, fingerprint)
    while counters["n_evaluated"] < budget:
        X, ev = strategy.step(state, space, objective, rng, budget - counters["n_evaluated"])
        counters["generation"] += 1
        absorb(X, ev)
        info = {"generation": counters["generation"], "n_evaluated": counters["n_evaluated"],
                "best_score": history[-1][1], "best_top1": history[-1][2], "best_latency_ms": history[-1][3]}
        if ckpt is not None and (time.perf_counter() - last_save > CHECKPOINT_EVERY_S
                                 or counters["n_evaluated"] >= budget):
            _save_checkpoint(ckpt, state, archive, history, counters, rng, fingerprint)
            last_save = time.perf_counter()
        for cb in callbacks:
            cb(info)
    return archive, history, counters["n_evaluated"]


# ---- the public entry point ------------------------------------------------------------------
def _one_dim_variants(space: SearchSpace, anchor: np.ndarray) -> np.ndarray:
    """The anchor with each dim set in turn to each of its searched values (canonicalised)."""
    counts, table = space._search_table
    rows = []
    for j in range(len(counts)):
        V = np.repeat(anchor[None, :], counts[j], axis=0)
        V[:, j] = table[j, :counts[j]]
        rows.append(V)
    return space.canonical(np.concatenate(rows))


def priced_subspace(space: SearchSpace, objective: Objective, rng: np.random.Generator):
    """(space narrowed to the values every target can price, lowest latency per target).

    Starting from the fastest priced arch among the smallest arch's one-dim variants and random
    samples, a searched value stays when setting it there still gives a priced arch. Strategies
    then never waste proposals on archs a table cannot price; rejection stays as the safety net.
    """
    counts, table = space._search_table
    base = table[:, 0].copy()
    X = np.concatenate([_one_dim_variants(space, base), space.sample_encoded(rng, 2048)])
    lat = objective.latency(X)
    priced = np.isfinite(lat).all(axis=1)
    if not priced.any():
        return space, np.full(len(objective.targets), np.nan)
    anchor = X[priced][np.argmin(lat[priced].max(axis=1))]
    V = _one_dim_variants(space, anchor)
    lat_v = objective.latency(V)
    ok = np.isfinite(lat_v).all(axis=1)
    keep, start = [], 0
    for j in range(len(counts)):
        vals = table[j, :counts[j]]
        keep.append(vals[ok[start:start + counts[j]]])
        start += counts[j]
    both = np.concatenate([lat[priced], lat_v[ok]])
    lowest = both.min(axis=0)
    if all(len(k) == c for k, c in zip(keep, counts)):
        return space, lowest
    return space.narrowed(keep), lowest


def search(space="ofa", target="pixel", latency_ms=80, *, strategy="evolution", accuracy="published",
           budget: int = DEFAULT_BUDGET, seed: int = 0, reward: str = "hard", w: float = -0.07,
           latency_margin: float = 0.0, top_k: int = 5, strategy_params: dict | None = None,
           out: str | Path | None = None, resume: bool = False, progress: bool = False,
           callbacks: Sequence[Callable[[dict], None]] = (), plot: bool = True,
           verify: bool = False) -> SearchResult:
    """Find the most accurate arch of ``space`` that meets ``latency_ms`` on ``target``.

    ``target`` and ``latency_ms`` may be lists (several devices at once); ``space``, ``target`` and
    ``accuracy`` also accept objects (a SearchSpace, a DeviceProfile or anything with
    ``predict(X) -> ms``, anything with ``predict(X) -> top-1 fraction``). ``budget`` counts
    accuracy evaluations. With ``out``, the run folder gets result.json, a PNG and checkpoints;
    ``resume=True`` continues a killed run there with the same result as an uninterrupted one.
    ``verify=True`` measures the top-k whole on targets measured on this host and re-ranks them.
    """
    t0 = time.perf_counter()
    sp = get_space(space)
    targets, budgets = _as_list(target), _as_list(latency_ms)
    if len(budgets) == 1 and len(targets) > 1:
        budgets = budgets * len(targets)
    if len(targets) != len(budgets) or not targets:
        raise UserError(f"give one latency budget per target: {len(targets)} targets, {len(budgets)} budgets")
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise UserError(f"budget must be a positive number of evaluated archs, got {budget!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise UserError(f"top-k must be a positive integer, got {top_k!r}")
    tgts = [make_target(t, sp, b, latency_margin) for t, b in zip(targets, budgets)]
    est = get_estimator(accuracy, sp)
    strat = get_strategy(strategy, **(strategy_params or {}))
    objective = Objective(sp, est, tgts, reward=reward, w=w)

    search_space, lowest = priced_subspace(sp, objective, np.random.default_rng(seed))
    if objective.constrained():
        for t, lo in zip(tgts, lowest):
            if not np.isfinite(lo):
                raise UserError(f"device {t.device!r} prices none of the sampled {sp.name!r} archs; "
                                "profile the space on it first")
            if lo > t.limit_ms:
                raise UserError(f"latency budget {t.limit_ms:g} ms on {t.device} is below the smallest "
                                f"{sp.name!r} subnet's predicted latency; the smallest achievable is {lo:.2f} ms")

    config = {"space": sp.name, "targets": [[t.device, t.budget_ms] for t in tgts], "margin": latency_margin,
              "strategy": getattr(strat, "name", type(strat).__name__), "strategy_params": _params(strat),
              "accuracy": accuracy if isinstance(accuracy, str) else describe(est)["name"],
              "reward": reward, "w": w, "budget": int(budget), "seed": int(seed), "top_k": int(top_k)}
    if getattr(sp, "module_spec", None):  # a user's space file: --resume loads it again
        config["space_module"] = sp.module_spec
    fingerprint = json.dumps(config, sort_keys=True)
    run_dir = Path(out) if out is not None else None
    if run_dir is not None:
        if not resume and (run_dir / "checkpoint.npz").exists():
            raise UserError(f"run folder {str(run_dir)!r} already holds a search; pass --resume to continue it "
                            "or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", config)
        if hasattr(strat, "use_run_dir"):  # strategies with their own durable state (Optuna's study)
            strat.use_run_dir(run_dir)
        if isinstance(est, KeepsRunState):  # e.g. supernet:CKPT's cache: a resume never measures twice
            est.use_run_dir(run_dir)

    cbs = list(callbacks) + ([Progress(int(budget))] if progress else [])
    archive, history, n_eval = run_search(search_space, objective, strat, int(budget), int(seed), int(top_k),
                                          run_dir, resume, cbs, fingerprint)
    result = _result(sp, objective, strat, est, config, archive, history, n_eval, time.perf_counter() - t0)
    if verify:
        from .verify import verify_result

        result = verify_result(result, progress=progress)
    if run_dir is not None:
        result.write(run_dir / "result.json")
        if result.best is not None:  # ready for nas predict / nas export
            atomic_write_json(run_dir / "best_arch.json", result.best.arch)
        if plot:
            from .plots import plot_search

            plot_search(result, run_dir / "search.png")
    return result


def _params(strat) -> dict:
    p = strat.params() if hasattr(strat, "params") else {}
    return {k: v for k, v in p.items() if isinstance(v, (int, float, str, bool))}


def _scores(sp: SearchSpace, objective: Objective, X, acc, lat, score) -> list[ArchScore]:
    if len(X) == 0:
        return []
    archs = sp.decode(X)
    macs, params = _macs_params(sp, X, archs)
    names = [t.device for t in objective.targets]
    return [ArchScore(arch=a, top1=float(acc[i]), latency_ms=dict(zip(names, map(float, lat[i]))),
                      macs=float(macs[i]), params=float(params[i]), score=float(score[i]))
            for i, a in enumerate(archs)]


def _macs_params(sp: SearchSpace, X, archs) -> tuple[np.ndarray, np.ndarray]:
    """MACs and params from the space's block costs; counted on built nets for a space without them."""
    try:
        return sp.macs(X), sp.params(X)
    except NotImplementedError:
        from search_spaces.counting import count_macs_params

        try:
            counted = np.array([count_macs_params(sp.build(a), sp.input_shape(a)) for a in archs], np.float64)
        except NotImplementedError:
            return np.zeros(len(archs)), np.zeros(len(archs))  # neither costs nor an input shape: unknown
        return counted[:, 0], counted[:, 1]


def _result(sp, objective, strat, est, config, archive, history, n_eval, wall_s) -> SearchResult:
    a = archive.arrays
    top = _scores(sp, objective, a["top_X"], a["top_acc"], a["top_lat"], a["top_score"])
    front = _scores(sp, objective, a["front_X"], a["front_acc"], a["front_lat"], a["front_score"])
    acc_info = describe(est)
    notes = []
    if acc_info["name"] == "published":
        notes.append("accuracy is a prior fitted on published ImageNet results, not a measurement of these archs")
    for t in objective.targets:
        if "modelled" in t.source:
            notes.append(f"latency on {t.device} is modelled from published measurements, not measured")
    hist = [{"n_evaluated": r[0], "best_score": r[1], "best_top1": r[2], "best_latency_ms": r[3]}
            for r in history]
    return SearchResult(
        space=sp.name, space_version=sp.version, strategy=config["strategy"],
        strategy_params=config["strategy_params"], accuracy=acc_info, reward=objective.reward,
        w=objective.w if objective.reward == "mnas" else None,
        targets=[TargetInfo(device=t.device, budget_ms=t.budget_ms, margin=t.margin, limit_ms=t.limit_ms,
                            latency_source=t.source, expected_error=t.expected_error) for t in objective.targets],
        budget=config["budget"], n_evaluated=n_eval, seed=config["seed"], best=top[0] if top else None,
        top_k=top, pareto=front, history=hist, notes=notes, versions=versions(), wall_time_s=wall_s,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def load_result(run_dir: str | Path) -> SearchResult:
    return SearchResult.read(Path(run_dir) / "result.json")


def load_config(run_dir: str | Path) -> dict:
    return read_json(Path(run_dir) / "config.json", "run config")
