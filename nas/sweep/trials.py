"""Trial kinds: what one Tune trial runs, as a call into the Python API with a config dict.

A kind has a pydantic model of its settings (validated in the driver, before Ray starts), a
``run(params, work_dir, report) -> dict`` that does the work in ``work_dir`` (resuming from what
is already there) and calls ``report(metrics)`` as it goes, and ``summarize(result) -> row`` for
the sweep's table. ``search`` is the first kind; supernet training registers the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ValidationError, field_validator

from search_spaces.errors import UserError

from ..search_config import SearchConfig


@dataclass
class TrialKind:
    name: str
    params: type[BaseModel]
    run: Callable[[dict, Path, Callable[[dict], None]], dict]
    done_file: str = "result.json"
    # Builds what a trial would build (files read, objects constructed) in the driver, before Ray
    # starts, so a bad path or parameter is one line there rather than a traceback in a worker.
    # Called once per trial with a cache shared across the sweep's trials.
    check: Callable[[dict, dict], None] | None = None
    columns: tuple[str, ...] = ()  # extra summary metrics the sweep's table keeps
    # settings whose model is not ``params`` field by field (a search trial: SearchConfig's request form)
    parse: Callable[[dict], dict] | None = None
    names: tuple[str, ...] = ()

    def accepted(self) -> list[str]:
        return list(self.names or self.params.model_fields)

    def validate(self, cfg: dict, where: str = "") -> dict:
        at = f" (trial {where})" if where else ""
        try:
            if self.parse is not None:
                unknown = [k for k in cfg if k not in self.accepted()]
                if unknown:
                    raise UserError(f"{unknown[0]}: unknown setting; accepted: {', '.join(self.accepted())}")
                return self.parse(cfg)
            return self.params.model_validate(cfg).model_dump()
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                raise UserError(f"{loc}: required setting missing{at}; give it under fixed or grid") from None
            if err["type"] == "extra_forbidden":
                raise UserError(f"{loc}: unknown setting; accepted: {', '.join(self.accepted())}") from None
            raise UserError(f"{loc}: {msg}{at}" if loc else f"{msg}{at}") from None


_KINDS: dict[str, TrialKind] = {}


def register_trial_kind(name: str, params: type[BaseModel], done_file: str = "result.json",
                        check: Callable[[dict, dict], None] | None = None, columns: tuple[str, ...] = (),
                        parse: Callable[[dict], dict] | None = None, names: tuple[str, ...] = ()):
    def deco(fn):
        _KINDS[name] = TrialKind(name, params, fn, done_file, check, tuple(columns), parse, tuple(names))
        return fn

    return deco


def list_trial_kinds() -> list[str]:
    return sorted(_KINDS)


def get_trial_kind(name: str) -> TrialKind:
    if name not in _KINDS:
        raise UserError(f"unknown trial kind {name!r}; accepted: {', '.join(list_trial_kinds())}")
    return _KINDS[name]


# ---- "search": one nas.search -------------------------------------------------------------------
def _accepted(what: str, value, known: list[str]):
    if value not in known:
        raise ValueError(f"unknown {what} {value!r}; accepted: {', '.join(known)}")
    return value


class RegisteredNames(BaseModel):
    """A sweep names registered spaces, devices and estimators (``nas.search`` also takes objects,
    so ``SearchConfig`` does not look names up); checked here, before Ray starts."""

    space: str
    target: str
    accuracy: str

    @field_validator("space")
    @classmethod
    def _space(cls, v):
        from search_spaces import list_spaces

        return _accepted("space", v, list_spaces())

    @field_validator("target")
    @classmethod
    def _target(cls, v):
        from nas.latency import describe_devices

        known = []
        for d in describe_devices():
            known += [d["name"], *d.get("aliases", [])]
        return _accepted("target", v, sorted(set(known)))

    @field_validator("accuracy")
    @classmethod
    def _accuracy(cls, v):
        from nas.accuracy import list_estimators

        known = ["default", *list_estimators()]  # default: the model shipped for the space (nas.accuracy)
        names = [k.split(":")[0] for k in known]
        name, sep, arg = v.partition(":")
        if name not in names or (f"{name}:PATH" in known) != bool(arg):
            raise ValueError(f"unknown accuracy estimator {v!r}; accepted: {', '.join(known)}")
        return v


class SweepOnly(BaseModel):
    """What a sweep's search trial adds to SearchConfig's request form: ``latency_ms`` is required
    (as ``--latency`` is on the CLI) and ``strategy_params`` are per strategy, so a grid over
    strategies gives each its own."""

    latency_ms: Any
    strategy_params: dict[str, dict[str, Any]] = {}


# one target per trial (the sweep's table and plot are per device); a user's space file is not swept
SEARCH_TRIAL_NAMES = tuple(n for n in SearchConfig.request_names() if n != "space_module")


def parse_search_trial(cfg: dict) -> dict:
    """A sweep's search trial: SearchConfig's request form, with strategy_params per strategy."""
    per = SweepOnly.model_validate({k: cfg[k] for k in SweepOnly.model_fields if k in cfg}).strategy_params
    config = SearchConfig.model_validate({**cfg, "strategy_params": per.get(cfg.get("strategy"), {})})
    req = config.request()
    if len(req["target"]) != 1:
        raise UserError(f"target: one device per trial, got {len(req['target'])}; put several under grid")
    RegisteredNames.model_validate({k: req[k] if k != "target" else req[k][0] for k in RegisteredNames.model_fields})
    req.pop("space_module")
    return {**req, "target": req["target"][0], "latency_ms": req["latency_ms"][0], "strategy_params": per}


def _once(cache: dict, key, build):
    if key not in cache:
        cache[key] = build()
    return cache[key]


def check_search_trial(params: dict, cache: dict) -> None:
    """Build one search trial's space, targets, estimator, strategy and objective as nas.search would.

    Objects shared by trials (a device's compiled tables, a predictor file) are built once.
    """
    import numpy as np

    from nas.accuracy import get_estimator
    from nas.objective import Objective
    from nas.run import SearchGrid
    from nas.search import check_reachable, make_target, priced_subspace
    from nas.strategies import get_strategy, list_strategies
    from search_spaces import get_space

    for name, sp_params in params["strategy_params"].items():
        if name not in list_strategies():
            raise UserError(f"strategy_params.{name}: unknown strategy; accepted: {', '.join(list_strategies())}")
        _once(cache, ("strategy", name, repr(sorted(sp_params.items()))), lambda: get_strategy(name, **sp_params))
    space = _once(cache, ("space", params["space"]), lambda: get_space(params["space"]))
    est = _once(cache, ("accuracy", params["space"], params["accuracy"]),
                lambda: get_estimator(params["accuracy"], space))
    if params["strategy"] is not None and params["strategy"] not in params["strategy_params"]:
        _once(cache, ("strategy", params["strategy"], "[]"), lambda: get_strategy(params["strategy"]))
    target = _once(cache, ("target", params["space"], params["target"], params["latency_ms"], params["latency_margin"]),
                   lambda: make_target(params["target"], space, params["latency_ms"], params["latency_margin"]))
    objective = Objective(space, est, [target], reward=params["reward"], w=params["w"])
    if not objective.constrained():
        return
    # the feasibility check nas.search makes first, once per (space, device, seed)
    lowest = _once(cache, ("lowest", params["space"], params["target"], params["seed"]),
                   lambda: priced_subspace(SearchGrid.of(space), objective,
                                           np.random.default_rng(params["seed"]))[1])
    check_reachable(space, [target], lowest)


@register_trial_kind("search", SearchConfig, check=check_search_trial, parse=parse_search_trial,
                     names=SEARCH_TRIAL_NAMES)
def run_search_trial(params: dict, work_dir: Path, report: Callable[[dict], None]) -> dict:
    """One search in ``work_dir`` (its run folder), resumed from its checkpoint when there is one."""
    import os

    import nas

    # (Optuna strategies need no storage: the run folder's checkpoint holds every told trial)
    per = params["strategy_params"]
    config = SearchConfig.of(**{**params, "strategy_params": per.get(params["strategy"], {})})
    cwd = os.getcwd()
    os.chdir(work_dir)
    try:
        res = nas.search(config, out=work_dir, resume=True, callbacks=[report])
    finally:
        os.chdir(cwd)
    return summarize_search(res.model_dump())


def summarize_search(result: dict) -> dict:
    """The flat summary of one result.json."""
    best = result.get("best") or {}
    dev = result["targets"][0]["device"]
    return {"best_top1": best.get("top1"), "best_latency_ms": (best.get("latency_ms") or {}).get(dev),
            "best_macs_m": best["macs"] / 1e6 if best.get("macs") is not None else None, "n_evaluated": result["n_evaluated"],
            "pareto_size": len(result.get("pareto", [])), "search_wall_s": result["wall_time_s"],
            "device": dev}
