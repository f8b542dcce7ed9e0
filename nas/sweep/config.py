"""The sweep file (``sweep.yaml``): a pydantic model, expanded into one config dict per trial.

```yaml
name: strategies-two-devices     # optional; names the run folder
kind: search                     # the trial kind (nas.sweep.trials registry)
fixed:                           # settings every trial shares
  space: ofa
  budget: 2000
  strategy_params: {evolution: {population: 100}}   # per strategy
grid:                            # every combination runs
  target: [pixel, note10]
  latency_ms: [25, 40]
  strategy: [evolution, random]
  seed: [0, 1]
random:                          # optional: draws added to every grid point
  samples: 2
  seed: 0
  latency_ms: {uniform: [20, 60]}
resources: {cpus_per_trial: 1}
```

Errors name the field and the accepted values, in one line.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from search_spaces.errors import UserError

from .trials import get_trial_kind, list_trial_kinds


class Distribution(BaseModel):
    """One random axis: exactly one of uniform [lo, hi], loguniform [lo, hi], randint [lo, hi), choice [...]."""

    model_config = ConfigDict(extra="forbid")
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in ("uniform", "loguniform", "randint", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform, loguniform, randint, choice")
        return self

    def draw(self, rng: np.random.Generator):
        if self.uniform is not None:
            return float(rng.uniform(*self.uniform))
        if self.loguniform is not None:
            lo, hi = np.log(self.loguniform)
            return float(np.exp(rng.uniform(lo, hi)))
        if self.randint is not None:
            return int(rng.integers(*self.randint))
        return self.choice[int(rng.integers(len(self.choice)))]


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpus_per_trial: float = 1.0
    max_failures: int = 1

    @field_validator("cpus_per_trial")
    @classmethod
    def _pos(cls, v):
        if v <= 0:
            raise ValueError("must be a positive number of CPUs")
        return v


class SweepConfig(BaseModel):
    """A sweep: fixed settings, a grid and optional random draws of one trial kind."""

    model_config = ConfigDict(extra="forbid")
    name: str = "sweep"
    kind: str = "search"
    fixed: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    random: dict[str, Any] = {}
    resources: Resources = Resources()

    @field_validator("kind")
    @classmethod
    def _kind(cls, v):
        if v not in list_trial_kinds():
            raise ValueError(f"unknown trial kind {v!r}; accepted: {', '.join(list_trial_kinds())}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not v or any(c in v for c in "/\\ "):
            raise ValueError("must be a non-empty name without spaces or slashes")
        return v

    @field_validator("grid")
    @classmethod
    def _grid(cls, v):
        for k, vals in v.items():
            if not vals:
                raise ValueError(f"grid.{k} is an empty list; give at least one value")
        return v

    def trials(self, check: bool = False) -> list[dict]:
        """One validated config dict per trial (grid x random samples), each with a short key.

        ``check=True`` also builds each trial's objects (the kind's ``check``), as the driver does
        before Ray starts.
        """
        kind = get_trial_kind(self.kind)
        check = check and kind.check is not None
        cache: dict = {}
        accepted = sorted(kind.accepted())
        for section in ("fixed", "grid"):
            for k in getattr(self, section):
                if k not in accepted:
                    raise UserError(f"{section}.{k}: unknown setting for {self.kind!r} trials; accepted: "
                                    f"{', '.join(accepted)}")
        rnd = dict(self.random)
        samples = rnd.pop("samples", 1)
        rseed = rnd.pop("seed", 0)
        if not isinstance(samples, int) or samples < 1:
            raise UserError(f"random.samples: must be a positive integer, got {samples!r}")
        dists = {}
        for k, spec in rnd.items():
            if k not in accepted:
                raise UserError(f"random.{k}: unknown setting for {self.kind!r} trials; accepted: samples, seed, "
                                f"{', '.join(accepted)}")
            try:
                dists[k] = Distribution.model_validate(spec)
            except ValidationError as e:
                raise UserError(f"random.{k}: {_first_error(e)}; accepted: {{uniform: [lo, hi]}}, "
                                "{loguniform: [lo, hi]}, {randint: [lo, hi]}, {choice: [...]}") from None
        if samples > 1 and not dists:
            raise UserError("random.samples > 1 needs at least one random axis, e.g. latency_ms: {uniform: [20, 60]}")
        rng = np.random.default_rng(rseed)
        axes = list(self.grid)
        varying = [k for k in axes if len(self.grid[k]) > 1] + list(dists)
        out = []
        for combo in itertools.product(*(self.grid[k] for k in axes)):
            for _ in range(samples):
                cfg = {**self.fixed, **dict(zip(axes, combo)), **{k: d.draw(rng) for k, d in dists.items()}}
                where = ", ".join(f"{k}={cfg[k]!r}" for k in axes + list(dists))
                params = kind.validate(cfg, where)
                if check:
                    try:
                        kind.check(params, cache)
                    except UserError as e:
                        raise UserError(f"trial {len(out):03d} ({where or 'the fixed settings'}): {e}") from None
                i = len(out)
                key = "-".join([f"{i:03d}"] + [_short(k, params[k]) for k in varying])
                out.append({"kind": self.kind, "key": key, "params": params})
        if not out:
            raise UserError("the sweep has no trials")
        return out


def _short(k: str, v) -> str:
    if k == "latency_ms":
        return f"{v:g}ms" if isinstance(v, (int, float)) else str(v).replace(" ", "")
    if k == "seed":
        return f"s{v}"
    if isinstance(v, float):
        return f"{k}{v:.3g}"
    s = str(v)
    return (s.rsplit("/", 1)[-1] if "/" in s else s).replace(":", "-")[:24]


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    return err["msg"].removeprefix("Value error, ")


def _describe(loc: tuple) -> str:
    """Accepted keys at the location of an unknown key."""
    if loc[:1] == ("resources",):
        return ", ".join(Resources.model_fields)
    return ", ".join(SweepConfig.model_fields)


def load_sweep(path_or_dict) -> SweepConfig:
    """A validated SweepConfig from a YAML file or a dict; every error is one UserError line."""
    if isinstance(path_or_dict, (str, Path)):
        from ..io import read_yaml

        p = Path(path_or_dict)
        data = read_yaml(p, "sweep file")
        where = p.name
    else:
        data, where = path_or_dict, "sweep"
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping with keys {', '.join(SweepConfig.model_fields)}")
    try:
        cfg = SweepConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            raise UserError(f"{where}: unknown key {loc!r}; accepted: {_describe(err['loc'])}") from None
        raise UserError(f"{where}: {loc}: {_first_error(e)} (got {err.get('input')!r})") from None
    cfg.trials()  # every trial's settings are checked here; run_sweep also builds their objects
    return cfg

