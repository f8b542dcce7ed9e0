"""Running a search: targets from devices, the generation loop, archive, checkpoints and results.

``search(...)`` is the public entry point (the CLI's ``nas search`` calls it). The loop is
deterministic for a seed: its state (strategy arrays, archive, history, RNG state) is written
atomically to ``checkpoint.npz`` in the run folder, and a resumed run continues bit-for-bit.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from search_spaces import get_space
from search_spaces.base import SearchSpace
from search_spaces.errors import UserError

from .accuracy import describe, get_estimator
from .accuracy.run_state import KeepsRunState
from .objective import Objective, Target, cost_s
from .run_folder import holds_run_folder
from .search_config import DEFAULT_BUDGET, SearchConfig, target_pairs  # noqa: F401  (DEFAULT_BUDGET: public here too)
from .results import ArchScore, SearchResult, TargetInfo, versions
from .run import Archive, Progress, SearchGrid, run_search  # noqa: F401  (Archive, Progress: public here too)
from .run.checkpoint import peek_finished
from .gradient.contract import TrainingStrategy
from .strategies import get_strategy

DEFAULT_STRATEGY = "evolution"            # for free estimators (tables, predictors)
DEFAULT_STRATEGY_EXPENSIVE = "predictor-evolution"  # for estimators that declare a cost (cost_s > 0)


def default_strategy(estimator) -> str:
    """``predictor-evolution`` when the estimator declares itself expensive, else ``evolution``."""
    return DEFAULT_STRATEGY_EXPENSIVE if cost_s(estimator) > 0 else DEFAULT_STRATEGY


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

    def pricing_report(self, top_X=None) -> dict | None:
        return self.predictor.pricing_report(top_X)


def make_target(device, space: SearchSpace, budget, margin: float = 0.0, recalibrate=None) -> Target:
    """A Target from a device name / profile / any object with ``predict(X) -> ms``.

    A device measured on another host is calibrated here or flagged (``recalibrate``, see
    ``nas.latency.latency_predictor``); the target's ``host`` records which.
    """
    from latency_predictors.units import parse_latency_ms

    from latency_predictors.predictor import LatencyModel, LatencyPredictor
    from latency_predictors.profile import DeviceProfile

    budget_ms = parse_latency_ms(budget)
    # Decided by type, not by attribute names: a device is a name or a DeviceProfile; anything
    # else must be a latency model (``predict(X) -> ms``), whatever other attributes it carries.
    if not isinstance(device, (str, DeviceProfile)):
        if not isinstance(device, LatencyModel):
            raise UserError(f"a target must be a device name, a DeviceProfile or an object with "
                            f"predict(X) -> ms, got {type(device).__name__}")
        name = getattr(device, "name", type(device).__name__)
        return Target(str(name), device, budget_ms, margin, getattr(device, "source", "user-supplied predictor"))

    from latency_predictors.host_calibration import resolve_for_host

    prof, host = resolve_for_host(device, space, recalibrate)
    pred = LatencyPredictor(prof, space, host_status=host, check_host=False)
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
                  validation, host.as_dict() if host is not None else None)


# ---- the public entry point ------------------------------------------------------------------
def _one_dim_variants(grid: SearchGrid, anchor: np.ndarray) -> np.ndarray:
    """The anchor with each dim set in turn to each of its searched values (canonicalised)."""
    rows = []
    for j in range(grid.n_dims):
        V = np.repeat(anchor[None, :], grid.counts[j], axis=0)
        V[:, j] = grid.values(j)
        rows.append(V)
    return grid.canonical(np.concatenate(rows))


def priced_subspace(grid: SearchGrid, objective: Objective, rng: np.random.Generator):
    """(grid narrowed to the values every target can price, lowest latency per target, archs priced).

    Starting from the fastest priced arch among the smallest arch's one-dim variants and random
    samples, a searched value stays when setting it there still gives a priced arch. Strategies
    then never waste proposals on archs a table cannot price; rejection stays as the safety net.
    When a target declares a cost (a measurement), only the smallest arch is priced: no bulk
    sampling, the grid stays whole and unpriced archs are skipped as they come.
    """
    base = grid.canonical(grid.table[:, 0].copy()[None, :])
    if objective.latency_cost_s > 0:
        return grid, objective.latency(base)[0], 1
    X = np.concatenate([_one_dim_variants(grid, base[0]), grid.sample(rng, 2048)])
    lat = objective.latency(X)
    priced = np.isfinite(lat).all(axis=1)
    if not priced.any():
        return grid, np.full(len(objective.targets), np.nan), len(X)
    anchor = X[priced][np.argmin(lat[priced].max(axis=1))]
    V = _one_dim_variants(grid, anchor)
    lat_v = objective.latency(V)
    ok = np.isfinite(lat_v).all(axis=1)
    keep, start = [], 0
    for j in range(grid.n_dims):
        vals = grid.values(j)
        keep.append(vals[ok[start:start + grid.counts[j]]])
        start += grid.counts[j]
    both = np.concatenate([lat[priced], lat_v[ok]])
    lowest = both.min(axis=0)
    n_priced = len(X) + len(V)
    if all(len(k) == c for k, c in zip(keep, grid.counts)):
        return grid, lowest, n_priced
    return grid.narrow(keep), lowest, n_priced


def check_reachable(sp: SearchSpace, targets: Sequence[Target], lowest) -> None:
    """One line when a target prices no arch, or its budget is below the lowest latency found."""
    for t, lo in zip(targets, lowest):
        if not np.isfinite(lo):
            raise UserError(f"device {t.device!r} prices none of the sampled {sp.name!r} archs; "
                            "profile the space on it first")
        if lo > t.limit_ms:
            raise UserError(f"latency budget {t.limit_ms:g} ms on {t.device} is below the smallest "
                            f"{sp.name!r} subnet's predicted latency; the smallest achievable is {lo:.2f} ms")


@holds_run_folder  # out=: refuses earlier results, locks the folder while this call writes
def search(space=None, target=None, latency_ms=None, *, strategy=None, accuracy=None, budget=None, seed=None,
           reward=None, w=None, latency_margin=None, top_k=None, strategy_params=None,
           out: str | Path | None = None, resume: bool = False, progress: bool = False,
           callbacks: Sequence[Callable[[dict], None]] = (), plot: bool = True,
           verify: bool = False, recalibrate=None, verify_accuracy: str | None = None) -> SearchResult:
    """Find the most accurate arch of ``space`` that meets ``latency_ms`` on ``target``.

    Either a ``SearchConfig`` (``search(config, out=...)``) or its settings by name; a setting left
    None takes ``SearchConfig``'s default (ofa, pixel at 80 ms, budget 20000, seed 0, top_k 5, ...).
    ``target`` and ``latency_ms`` may be lists (several devices at once); ``space``, ``target``,
    ``accuracy`` and ``strategy`` also accept objects (a SearchSpace, a DeviceProfile or anything with
    ``predict(X) -> ms``, anything with ``predict(X) -> top-1 fraction``, a Strategy), recorded by name;
    ``accuracy="default"`` is the model shipped for the space, else the ``published`` prior
    (``nas.accuracy``). ``budget`` counts distinct accuracy evaluations (a re-proposed arch is free).
    ``strategy=None`` picks ``evolution``, or ``predictor-evolution`` when the estimator declares a
    cost per arch (``cost_s``). With ``out``, the run folder gets config.json, result.json, a PNG and
    checkpoints; ``resume=True`` (or ``nas.resume(out)``) continues a killed run there with the same
    result as an uninterrupted one. ``verify=True`` measures the top-k whole on targets measured on
    this host and re-ranks them. ``recalibrate``: "auto" (default; ``$HWNAS_RECALIBRATE`` overrides)
    calibrates a device measured on another host here first (cached per host), "off" predicts with its
    table and flags it; each target's ``host`` in the result says which. ``verify_accuracy``: an
    estimator spec (``supernet:CKPT``) that measures the top-k afterwards; they are re-ranked by it
    (``nas/rerank.py``: search on a predictor, keep its best measured pick).
    """
    t0 = time.perf_counter()
    settings = dict(strategy=strategy, accuracy=accuracy, budget=budget, seed=seed, reward=reward, w=w,
                    latency_margin=latency_margin, top_k=top_k, strategy_params=strategy_params)
    if isinstance(space, SearchConfig):
        given = [k for k, v in dict(settings, target=target, latency_ms=latency_ms).items() if v is not None]
        if given:
            raise UserError(f"give a SearchConfig or settings, not both: drop {', '.join(given)}")
        request, sp, pairs = space, space.load_space(), list(space.targets)
        strategy, accuracy = request.strategy, request.accuracy
    else:
        # objects stand in for names here; the config records their names once they are resolved
        named = {k: v for k, v in settings.items() if not (k in ("strategy", "accuracy") and v is not None
                                                            and not isinstance(v, str))}
        request = SearchConfig.of(**named)
        sp = get_space(space if space is not None else request.space)
        pairs = target_pairs(target, latency_ms)
        accuracy = accuracy if accuracy is not None else request.accuracy
    early = _request_config(request, sp, pairs, space, strategy, accuracy) if out is not None and not resume else None
    # A target may measure for minutes before the search starts (a latency table measured on this
    # host on demand, its calibration here): a kill then leaves a folder that --resume continues.
    with _provisional_config(Path(out) if early is not None else None, early):
        tgts = [make_target(t, sp, b, request.margin, recalibrate) for t, b in pairs]
        # what config.json records: names, the device's profile name, the resolved strategy and parameters
        resolved = dict(space=sp.name, space_module=getattr(sp, "module_spec", None),
                        targets=[(t.device, t.budget_ms) for t in tgts])
        if strategy is not None and isinstance(strat := get_strategy(strategy, **request.strategy_params),
                                               TrainingStrategy):
            # a strategy that trains a supernet: same run folder, checkpoints, progress and result (nas.gradient)
            if len(tgts) != 1:
                raise UserError(f"strategy {strat.name!r} takes one latency target, got {len(tgts)}")
            from .gradient.runner import train_search

            config = request.model_copy(update=dict(resolved, strategy=strat.name, strategy_params=strat.params()))
            return train_search(sp, tgts[0], strat, config, seed=request.seed, out=out, resume=resume,
                                progress=progress, callbacks=callbacks)
        est = get_estimator(accuracy, sp)
        # built now: a bad --verify-accuracy is refused before the search, not after it
        verifier = get_estimator(verify_accuracy, sp) if verify_accuracy is not None else None
        strat = get_strategy(strategy if strategy is not None else default_strategy(est), **request.strategy_params)
        objective = Objective(sp, est, tgts, reward=request.reward, w=request.w)
        budget, seed, top_k = request.budget, request.seed, request.top_k

        grid, lowest, n_setup_priced = priced_subspace(SearchGrid.of(sp), objective, np.random.default_rng(seed))
        resolved_params = strat.resolve(budget, grid.n_dims)
        if objective.constrained():
            check_reachable(sp, tgts, lowest)

        config = request.model_copy(update=dict(
            resolved, strategy=getattr(strat, "name", type(strat).__name__), strategy_params=_params(strat),
            accuracy=accuracy if isinstance(accuracy, str) else describe(est)["name"]))
        fingerprint = config.fingerprint()
        run_dir = Path(out) if out is not None else None
        if run_dir is not None:
            if not resume and (run_dir / "checkpoint.npz").exists():
                raise UserError(f"run folder {str(run_dir)!r} already holds a search; pass --resume to continue it "
                                "or choose another --out")
            run_dir.mkdir(parents=True, exist_ok=True)
            if resume and (run_dir / "result.json").is_file() and peek_finished(run_dir / "checkpoint.npz"):
                from .run.checkpoint import load as _check

                _check(run_dir / "checkpoint.npz", fingerprint)  # same configuration, or a one-line error
                return load_result(run_dir)  # a finished run: its result stays as it is
            config.write(run_dir)
            if isinstance(est, KeepsRunState):  # e.g. supernet:CKPT's cache: a resume never measures twice
                est.use_run_dir(run_dir)

    cbs = list(callbacks) + ([Progress(budget)] if progress else [])
    outcome = run_search(sp, grid, objective, strat, resolved_params, budget, seed, top_k,
                         run_dir, resume, cbs, fingerprint)
    wall_s = outcome.elapsed_before_s + time.perf_counter() - t0
    outcome.counters["n_latency_rows"] += n_setup_priced
    result = _result(sp, objective, resolved_params, est, config, outcome, wall_s)
    if verify_accuracy is not None:
        from .rerank import rerank_result

        result = rerank_result(result, sp, verifier, verify_accuracy, run_dir)
    if verify:
        from .verify import verify_result

        result = verify_result(result, progress=progress)
    if run_dir is not None:
        result.write(run_dir / "result.json")
        if result.best is not None:  # ready for nas predict / nas export
            from .archfile import write_arch_file

            write_arch_file(run_dir / "best_arch.json", sp, result.best.arch)  # records the space
        if plot:
            from .plots import plot_search

            plot_search(result, run_dir / "search.png")
    return result


@contextlib.contextmanager
def _provisional_config(run_dir: Path | None, config: SearchConfig | None):
    """config.json written before the targets are set up, removed again when setting up fails (bad input)."""
    if run_dir is None or config is None:
        yield
        return
    config.write(run_dir)
    try:
        yield
    except Exception:
        if not (run_dir / "checkpoint.npz").exists():  # bad input leaves no trace (an empty folder is removed)
            (run_dir / "config.json").unlink(missing_ok=True)
        raise


def _request_config(request: SearchConfig, sp: SearchSpace, pairs, space, strategy, accuracy) -> SearchConfig | None:
    """The request as config.json, when every part of it is named (a resume must rebuild it); else None."""
    named = (isinstance(space, (str, SearchConfig)) or space is None) and all(isinstance(t, str) for t, _ in pairs)
    if not named or not isinstance(strategy, (str, type(None))) or not isinstance(accuracy, (str, type(None))):
        return None
    from latency_predictors.units import parse_latency_ms

    return request.model_copy(update=dict(space=sp.name, targets=[(t, parse_latency_ms(b)) for t, b in pairs]))


def _params(strat) -> dict:
    """The strategy's explicitly set parameters (budget-rule ones are None and left out)."""
    return {k: v for k, v in strat.params().items() if isinstance(v, (int, float, str, bool))}


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
    """MACs and params from the space's block costs, else counted on built nets; NaN when unknown."""
    from search_spaces.counting import macs_params

    return macs_params(sp, X)


def _result(sp, objective, resolved, est, config, outcome, wall_s) -> SearchResult:
    archive, history, counters = outcome.archive, outcome.history, outcome.counters
    a = archive.arrays
    top = _scores(sp, objective, a["top_X"], a["top_acc"], a["top_lat"], a["top_score"])
    front = _scores(sp, objective, a["front_X"], a["front_acc"], a["front_lat"], a["front_score"])
    acc_info = describe(est)
    notes = list(outcome.notes)
    notes.append(f"accuracy ({acc_info['metric']}) is {acc_info['source']}")
    if acc_info.get("ranking"):
        notes.append(f"the accuracy estimator {acc_info['ranking']}")
    for t in objective.targets:
        if "modelled" in t.source:
            notes.append(f"latency on {t.device} is modelled from published measurements, not measured")
    hist = []
    for r in history:
        row = {"n_evaluated": r[0], "best_score": r[1], "best_top1": r[2], "best_latency_ms": r[3],
               "n_proposed": r[4], "surrogate_rank_corr": r[5]}
        # before the first feasible arch there is no best yet: keys left out (JSON has no NaN)
        hist.append({k: float(v) for k, v in row.items() if np.isfinite(v)})
    n_eval = counters["n_evaluated"]
    acc_cost, lat_cost = objective.accuracy_cost_s, objective.latency_cost_s
    # How each target priced (whole cells vs the additive fallback, units measured on demand), this process.
    from latency_predictors.predictor import ReportsPricing

    pricing = [t.predictor.pricing_report(a["top_X"]) if isinstance(t.predictor, ReportsPricing) else None
               for t in objective.targets]
    cost = {"accuracy_evaluations": n_eval, "latency_evaluations": counters["n_latency_rows"],
            "accuracy_cost_s": acc_cost * n_eval if acc_cost else None,
            "latency_cost_s": lat_cost * counters["n_latency_rows"] if lat_cost else None}
    return SearchResult(
        space=sp.name, space_version=sp.version, strategy=config.strategy,
        strategy_params={k: v for k, v in resolved.items() if v is not None}, accuracy=acc_info, reward=objective.reward,
        w=objective.w if objective.reward == "mnas" else None,
        targets=[TargetInfo(device=t.device, budget_ms=t.budget_ms, margin=t.margin, limit_ms=t.limit_ms,
                            latency_source=t.source, expected_error=t.expected_error, host=t.host, pricing=p)
                 for t, p in zip(objective.targets, pricing)],
        budget=config.budget, n_evaluated=n_eval, n_proposed=counters["n_proposed"], cost=cost,
        seed=config.seed, best=top[0] if top else None,
        top_k=top, pareto=front, history=hist, notes=notes, versions=versions(), wall_time_s=wall_s,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def load_result(run_dir: str | Path) -> SearchResult:
    return SearchResult.read(Path(run_dir) / "result.json")


def load_config(run_dir: str | Path) -> SearchConfig:
    return SearchConfig.read(run_dir)


def resume(run_dir: str | Path, *, space_module: str | None = None, progress: bool = False,
           callbacks: Sequence[Callable[[dict], None]] = (), plot: bool = True, verify: bool = False,
           recalibrate=None, verify_accuracy: str | None = None) -> SearchResult:
    """Continue the search in ``run_dir`` with its config.json: the result an uninterrupted run gives.

    A run over a user's space file imports that file again, which runs its code: only when the
    caller names it again with ``space_module`` (``--space-module`` on the CLI).
    """
    config = SearchConfig.read(run_dir)
    if config.space_module and space_module != config.space_module:
        raise UserError(f"this run searched the space in {config.space_module!r}; importing it runs its code, "
                        f"so confirm with --space-module {config.space_module} (see docs/security.md)")
    if space_module and not config.space_module:
        raise UserError(f"this run searched the registered space {config.space!r}; drop --space-module")
    return search(config, out=run_dir, resume=True, progress=progress, callbacks=callbacks, plot=plot,
                  verify=verify, recalibrate=recalibrate, verify_accuracy=verify_accuracy)
