"""Training plans: the phases of progressive shrinking (Once-for-All) or the sandwich rule (BigNAS).

A plan is a YAML file a user can edit::

    name: progressive
    phases:
      - {name: largest, epochs: 180, lr: 1.0, warmup: true, kernel: largest, depth: largest, expand: largest}
      - {name: kernel, epochs: 120, lr: 0.4, kernel: all, distill: true}
      ...

``epochs`` are weights: ``scale_epochs`` spreads the run's total epochs over the phases in that
proportion (the default plans keep the paper's phase lengths). ``kernel``/``depth``/``expand``
say which choices a phase samples: ``largest``, ``topN`` (the N largest) or ``all``; an unset
dimension keeps the previous phase's setting. ``resolution`` is sampled from the space's
searched resolutions throughout (``all``) unless set to ``largest``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from search_spaces.errors import UserError

from ..fields import NonNegativeInt, PositiveFloat

DIMS = ("kernel", "depth", "expand", "resolution")


def _level(v):
    if v is None:
        return v
    v = str(v)
    if v in ("largest", "all") or (v.startswith("top") and v[3:].isdigit() and int(v[3:]) >= 1):
        return v
    raise ValueError(f"{v!r} is not a level; accepted: largest, topN (e.g. top2), all")


class Phase(BaseModel):
    """One phase: which subnets it samples, how, and its share of the epochs."""

    model_config = ConfigDict(extra="forbid")
    name: str
    epochs: PositiveFloat = 1.0  # weight; scaled to the run's total epochs
    lr: float = 1.0              # multiplier of the run's base learning rate (cosine per phase)
    warmup: bool = False         # linear warm-up at the start of this phase
    kernel: str | None = None
    depth: str | None = None
    expand: str | None = None
    resolution: str | None = None
    sandwich: bool = False       # each step: largest + smallest + n_subnets random (BigNAS)
    n_subnets: NonNegativeInt = 1  # random subnets per step
    distill: bool = False        # progressive shrinking: soft labels of the frozen largest net
    sort_channels: bool = False  # re-order expanded channels by importance before this phase

    _lv = field_validator("kernel", "depth", "expand", "resolution")(classmethod(lambda cls, v: _level(v)))



class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "custom"
    phases: list[Phase]

    def resolved(self) -> list[Phase]:
        """Phases with every dimension set (unset ones inherit from the previous phase; first: largest)."""
        out, cur = [], {d: "largest" for d in DIMS}
        cur["resolution"] = "all"
        for p in self.phases:
            for d in DIMS:
                if getattr(p, d) is not None:
                    cur[d] = getattr(p, d)
            out.append(p.model_copy(update=dict(cur)))
        return out


# Once-for-All's schedule: 180 epochs largest, 120 kernel, 25 + 120 depth, 25 + 120 expand.
PROGRESSIVE = {
    "name": "progressive",
    "phases": [
        {"name": "largest", "epochs": 180, "lr": 1.0, "warmup": True, "kernel": "largest", "depth": "largest",
         "expand": "largest", "resolution": "all", "n_subnets": 1},
        {"name": "kernel", "epochs": 120, "lr": 0.5, "kernel": "all", "distill": True, "n_subnets": 1},
        {"name": "depth-1", "epochs": 25, "lr": 0.15, "depth": "top2", "distill": True, "n_subnets": 2},
        {"name": "depth-2", "epochs": 120, "lr": 0.45, "depth": "all", "distill": True, "n_subnets": 2},
        {"name": "expand-1", "epochs": 25, "lr": 0.15, "expand": "top2", "distill": True, "n_subnets": 2,
         "sort_channels": True},
        {"name": "expand-2", "epochs": 120, "lr": 0.45, "expand": "all", "distill": True, "n_subnets": 2,
         "sort_channels": True},
    ],
}

SANDWICH = {
    "name": "sandwich",
    "phases": [{"name": "sandwich", "epochs": 1, "lr": 1.0, "warmup": True, "kernel": "all", "depth": "all",
                "expand": "all", "resolution": "all", "sandwich": True, "n_subnets": 2}],
}

BUILTIN = {"progressive": PROGRESSIVE, "sandwich": SANDWICH}


def load_plan(spec: str) -> Plan:
    """``progressive``, ``sandwich`` or a YAML file path."""
    if spec in BUILTIN:
        return Plan.model_validate(BUILTIN[spec])
    p = Path(spec)
    if not p.is_file():
        raise UserError(f"plan {spec!r}: not a built-in plan ({', '.join(BUILTIN)}) nor a YAML file")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"plan {spec!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    return plan_from_dict(raw, spec)


def plan_from_dict(raw, where: str = "plan") -> Plan:
    if not isinstance(raw, dict) or not isinstance(raw.get("phases"), list) or not raw["phases"]:
        raise UserError(f"{where}: expected a mapping with a non-empty 'phases' list")
    try:
        return Plan.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise UserError(f"{where}: {loc}: {err['msg'].removeprefix('Value error, ')}") from None


def plan_yaml(plan: Plan) -> str:
    return yaml.safe_dump(plan.model_dump(exclude_none=True), sort_keys=False)


def scale_epochs(plan: Plan, total: int) -> list[int]:
    """Whole epochs per phase in proportion to the plan's weights, summing to ``total``, each >= 1."""
    n = len(plan.phases)
    if total < n:
        raise UserError(f"{total} epochs cannot cover the plan's {n} phases; give --epochs >= {n}")
    w = [p.epochs for p in plan.phases]
    share = [total * x / sum(w) for x in w]
    out = [max(1, int(s)) for s in share]
    # largest remainders first until the total matches (then trim the longest if the floors overshoot)
    order = sorted(range(n), key=lambda i: -(share[i] - int(share[i])))
    i = 0
    while sum(out) < total:
        out[order[i % n]] += 1
        i += 1
    while sum(out) > total:
        j = max(range(n), key=lambda k: out[k])
        out[j] -= 1
    return out


def choices_at(level: str, choices: tuple[int, ...]) -> tuple[int, ...]:
    """The allowed values of one dimension at a level (choices sorted ascending)."""
    c = tuple(sorted(choices))
    if level == "all":
        return c
    if level == "largest":
        return c[-1:]
    return c[-int(level[3:]):]
