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

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from search_spaces.errors import UserError


@dataclass
class TrialKind:
    name: str
    params: type[BaseModel]
    run: Callable[[dict, Path, Callable[[dict], None]], dict]
    done_file: str = "result.json"
    columns: tuple[str, ...] = ()  # extra summary metrics the sweep's table keeps

    def validate(self, cfg: dict, where: str = "") -> dict:
        try:
            return self.params.model_validate(cfg).model_dump()
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            at = f" (trial {where})" if where else ""
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                raise UserError(f"{loc}: required setting missing{at}; give it under fixed or grid") from None
            if err["type"] == "extra_forbidden":
                raise UserError(f"{loc}: unknown setting; accepted: {', '.join(self.params.model_fields)}") from None
            raise UserError(f"{loc}: {msg}{at}") from None


_KINDS: dict[str, TrialKind] = {}


def register_trial_kind(name: str, params: type[BaseModel], done_file: str = "result.json",
                        columns: tuple[str, ...] = ()):
    def deco(fn):
        _KINDS[name] = TrialKind(name, params, fn, done_file, tuple(columns))
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


class SearchTrial(BaseModel):
    """The settings of one search (the arguments of ``nas.search``)."""

    model_config = ConfigDict(extra="forbid")
    space: str = "ofa"
    target: str = "pixel"
    latency_ms: float | str
    strategy: str = "evolution"
    accuracy: str = "published"
    seed: int = 0
    budget: int = 2000
    reward: str = "hard"
    w: float = -0.07
    latency_margin: float = 0.0
    top_k: int = 5
    strategy_params: dict[str, dict[str, Any]] = {}

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

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v):
        from nas.strategies import list_strategies

        return _accepted("strategy", v, list_strategies())

    @field_validator("accuracy")
    @classmethod
    def _accuracy(cls, v):
        from nas.accuracy import list_estimators

        known = list_estimators()
        names = [k.split(":")[0] for k in known]
        name, sep, arg = v.partition(":")
        if name not in names or (f"{name}:PATH" in known) != bool(arg):
            raise ValueError(f"unknown accuracy estimator {v!r}; accepted: {', '.join(known)}")
        return v

    @field_validator("latency_ms")
    @classmethod
    def _latency(cls, v):
        from latency_predictors.units import parse_latency_ms

        try:
            ms = parse_latency_ms(v)
        except Exception:  # noqa: BLE001 - any parse failure is the same user error
            raise ValueError(f"not a latency: {v!r}; accepted: 80, 80ms, '80 ms', 0.08s") from None
        if not ms > 0:
            raise ValueError(f"latency budget must be positive, got {v!r}")
        return float(ms)

    @field_validator("budget", "top_k")
    @classmethod
    def _positive(cls, v):
        if v < 1:
            raise ValueError(f"must be a positive integer, got {v}")
        return v

    @field_validator("reward")
    @classmethod
    def _reward(cls, v):
        from nas.objective import REWARDS

        return _accepted("reward", v, list(REWARDS))


@register_trial_kind("search", SearchTrial)
def run_search_trial(params: dict, work_dir: Path, report: Callable[[dict], None]) -> dict:
    """One search in ``work_dir`` (its run folder), resumed from its checkpoint when there is one."""
    import os

    import nas

    # (Optuna strategies need no storage: the run folder's checkpoint holds every told trial)
    sp = dict(params["strategy_params"].get(params["strategy"], {}))
    cwd = os.getcwd()
    os.chdir(work_dir)
    try:
        res = nas.search(params["space"], params["target"], params["latency_ms"], strategy=params["strategy"],
                         accuracy=params["accuracy"], budget=params["budget"], seed=params["seed"],
                         reward=params["reward"], w=params["w"], latency_margin=params["latency_margin"],
                         top_k=params["top_k"], strategy_params=sp, out=work_dir, resume=True,
                         callbacks=[report])
    finally:
        os.chdir(cwd)
    return summarize_search(res.model_dump())


def summarize_search(result: dict) -> dict:
    """The flat summary of one result.json."""
    best = result.get("best") or {}
    dev = result["targets"][0]["device"]
    return {"best_top1": best.get("top1"), "best_latency_ms": (best.get("latency_ms") or {}).get(dev),
            "best_macs_m": best["macs"] / 1e6 if best else None, "n_evaluated": result["n_evaluated"],
            "pareto_size": len(result.get("pareto", [])), "search_wall_s": result["wall_time_s"],
            "device": dev}
