"""A measured profile used on another host: calibrated here (cached per host) or flagged, never silent.

``resolve_for_host(device, space, policy)`` is how ``nas predict``, ``nas search``,
``nas calibrate`` and ``nas validate-latency`` (and their Python API) get the profile they price
with. For a profile measured on this host, or one not measured at all, it is the registered
profile. For a measured profile from another host (``hostcheck.check_host``: fingerprint or speed
probe differs):

- ``recalibrate="auto"`` (the default): the space's calibration fitted on this host replaces the
  profile's. It is read from the user folder's cache (``<user dir>/calibrations/<device>/<host
  identity>.json``, one entry per space, keyed to the table it was fitted on), or fitted now on a
  small sample of whole networks (``nas calibrate``'s fit; ``DEFAULT_N`` networks, well under a
  minute on two cores) and cached. Results say "measured on <host>, calibrated here".
- ``recalibrate="off"``: the table as measured there, and the result says it is flagged.

Either way one line says what happened (a ``HostMismatchWarning``) with the probe ratio when the
profile has a probe on record, and ``HostStatus`` goes into ``result.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal

from search_spaces.errors import UserError

from .hostcheck import HostCheck, HostMismatchWarning, check_host, this_host
from .profile import Calibration, DeviceProfile, SpeedProbe, now_iso
from .timing import RoundPlan

MODES = ("auto", "off")
ENV_RECALIBRATE = "HWNAS_RECALIBRATE"  # the default mode where none is given (auto when unset)
DEFAULT_N = 24  # networks measured whole for a calibration here
DEFAULT_PLAN = RoundPlan(rounds=3, reps=5, warmup=1)
_said: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class RecalibrationPolicy:
    """What to do with a measured profile from another host, and how big a calibration here is.

    ``n``, ``plan`` and ``measure_probe`` are injectable so tests can simulate another host in seconds.
    """

    mode: Literal["auto", "off"] = "auto"
    n: int = DEFAULT_N
    plan: RoundPlan = DEFAULT_PLAN
    seed: int = 0
    resolutions: tuple[int, ...] | None = None
    measure_probe: Callable[[int], SpeedProbe] | None = None
    progress: bool = True

    def __post_init__(self):
        if self.mode not in MODES:
            raise UserError(f"--recalibrate {self.mode!r} is not known; accepted: {', '.join(MODES)}")


def default_mode() -> str:
    mode = os.environ.get(ENV_RECALIBRATE, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise UserError(f"{ENV_RECALIBRATE}={mode!r} is not known; accepted: {', '.join(MODES)}")
    return mode


def as_policy(recalibrate) -> RecalibrationPolicy:
    """A policy from None (the default mode), a mode string or a policy."""
    if isinstance(recalibrate, RecalibrationPolicy):
        return recalibrate
    # The module's DEFAULT_N / DEFAULT_PLAN read now, not at import: a test sets a small sample.
    if recalibrate is None:
        return RecalibrationPolicy(mode=default_mode(), n=DEFAULT_N, plan=DEFAULT_PLAN)
    if isinstance(recalibrate, str):
        return RecalibrationPolicy(mode=recalibrate.strip().lower(), n=DEFAULT_N, plan=DEFAULT_PLAN)
    raise UserError(f"recalibrate must be 'auto', 'off' or a RecalibrationPolicy, got {type(recalibrate).__name__}")


@dataclass
class HostStatus:
    """Whose table a prediction used, on which host, and what was done about a difference (result.json)."""

    status: Literal["same-host", "calibrated-here", "flagged"]
    label: str  # "measured on <host>, calibrated here", ...
    measured_on: str
    this_host: str
    differences: list[str] = field(default_factory=list)
    probe_ratio: float | None = None
    calibration: dict | None = None  # scale, offset_ms, n, fit MAPE, created, cache path: when calibrated here
    recalibrate: str = "auto"
    measured_here: dict | None = None  # the space's table measured on this host on demand (on_demand.MeasuredHere)

    def as_dict(self) -> dict:
        return asdict(self)


def table_sha(profile: DeviceProfile, table_name: str) -> str:
    """A digest of one table's numbers: a cached calibration is valid for exactly the table it was fitted on."""
    if table_name.endswith(".cells"):
        # A whole-cell table grows as units are measured on demand (cells.py): keyed to it, a
        # calibration would be refitted after every new cell. Its per-op table keys the cache instead.
        return "on-demand"
    t = profile.tables.get(table_name)
    data = {} if t is None else {"e": sorted(t.entries.items()),
                                 "r": sorted((r, sorted(s.items())) for r, s in t.by_resolution.items())}
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def cache_path(profile: DeviceProfile) -> Path:
    from .registry import user_dir

    return user_dir() / "calibrations" / profile.name / f"{this_host().identity()}.json"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) and isinstance(data.get("spaces"), dict) else {}
    except (OSError, ValueError):
        return {}  # a cache: unreadable means calibrate again


def cached_calibration(profile: DeviceProfile, table_name: str) -> dict | None:
    """The calibration fitted on this host for this exact table, or None."""
    data = _read_cache(cache_path(profile))
    entry = data.get("spaces", {}).get(table_name)
    if not isinstance(entry, dict) or data.get("profile_host") != (profile.host.digest if profile.host else None):
        return None
    if entry.get("table_sha") != table_sha(profile, table_name):
        return None  # the table was re-measured or edited since
    try:
        Calibration(scale=entry["scale"], offset_ms=entry["offset_ms"])
    except (KeyError, ValueError, TypeError):
        return None
    return entry


def store_calibration(profile: DeviceProfile, cals: dict[str, Calibration], info: dict) -> Path:
    """Cache the calibrations fitted here (table name -> Calibration) for this host; returns the file."""
    from search_spaces.fileio import atomic_write_bytes

    path = cache_path(profile)
    data = _read_cache(path)
    if data.get("profile_host") != (profile.host.digest if profile.host else None):
        data = {}
    here = this_host()
    data.update({"device": profile.name, "profile_host": profile.host.digest if profile.host else None,
                 "measured_on": profile.host.label() if profile.host else None, "host": here.identity(),
                 "this_host": here.label()})
    spaces = data.setdefault("spaces", {})
    for name, cal in cals.items():
        spaces[name] = {"scale": cal.scale, "offset_ms": cal.offset_ms, "note": cal.note,
                        "table_sha": table_sha(profile, name), "created": now_iso(),
                        **{k: info[k] for k in ("n", "fit_mape_pct", "loo_mape_pct", "seed") if k in info}}
    return atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())


def with_calibrations(profile: DeviceProfile, cals: dict[str, Calibration]) -> DeviceProfile:
    """The profile with these tables' calibrations replaced (an in-memory copy; nothing is written)."""
    tables = dict(profile.tables)
    for name, cal in cals.items():
        if name in tables:
            tables[name] = tables[name].model_copy(update={"calibration": cal})
    return profile.model_copy(update={"tables": tables})


def _table_names(profile: DeviceProfile, space) -> list[str]:
    """The tables a prediction of ``space`` reads its calibration from (a graph space may use two)."""
    return [n for n in (space.name, f"{space.name}.cells") if n in profile.tables] or [space.name]


def _say(profile: DeviceProfile, space_name: str, status: HostStatus, check: HostCheck) -> None:
    key = (profile.name, space_name, status.status)
    if key in _said:
        return
    _said.add(key)
    what = {"calibrated-here": "calibrated here",
            "flagged": f"predicting with its table uncalibrated (flagged; --recalibrate auto calibrates it here)"}
    cal = status.calibration or {}
    extra = (f" (scale {cal['scale']:.3f}, offset {cal['offset_ms']:.3f} ms, fit MAPE {cal.get('fit_mape_pct', '?')} % "
             f"on {cal.get('n', '?')} networks{', cached' if cal.get('cached') else ''})"
             if status.status == "calibrated-here" else "")
    warnings.warn(f"device {profile.name!r} ({space_name}) {check.describe()}; {what[status.status]}{extra}",
                  HostMismatchWarning, stacklevel=3)


def resolve_for_host(device, space, recalibrate=None) -> tuple[DeviceProfile, HostStatus | None]:
    """The profile to price ``space`` with on this host, and what was done about the host (None: not measured)."""
    from search_spaces.registry import get_space

    from .registry import get_profile

    policy = as_policy(recalibrate)
    prof = get_profile(device)
    sp = get_space(space)
    check = check_host(prof, probe=True, measure_probe=policy.measure_probe)
    if check is None:
        return prof, None
    prof, here = _space_table(prof, sp, check, policy)
    extra = f"; {here.label()}" if here is not None else ""
    if check.same:
        return prof, HostStatus(status="same-host", label="measured on this host" + extra,
                                measured_on=check.measured_on, this_host=check.here, differences=[],
                                probe_ratio=_round(check.probe_ratio), recalibrate=policy.mode,
                                measured_here=here.as_dict() if here is not None else None)
    names = _table_names(prof, sp)
    base = dict(measured_on=check.measured_on, this_host=check.here, differences=check.differences,
                probe_ratio=_round(check.probe_ratio), recalibrate=policy.mode,
                measured_here=here.as_dict() if here is not None else None)
    if policy.mode == "off":
        status = HostStatus(status="flagged", label=f"measured on {check.measured_on}, not calibrated here "
                                                    f"(flagged){extra}", **base)
        _say(prof, sp.name, status, check)
        return prof, status
    entries = {n: cached_calibration(prof, n) for n in names}
    cached = all(e is not None for e in entries.values())
    if cached:
        cals = {n: Calibration(scale=e["scale"], offset_ms=e["offset_ms"], note=e.get("note", ""))
                for n, e in entries.items()}
        first = entries[names[0]]
        info = {k: first.get(k) for k in ("n", "fit_mape_pct", "loo_mape_pct", "created")}
        path = cache_path(prof)
    else:
        from .calibration import fit_calibration

        cals, info = fit_calibration(prof, sp, n=policy.n, seed=policy.seed, plan=policy.plan,
                                     resolutions=policy.resolutions, progress=policy.progress,
                                     label=f"calibrating {prof.name}/{sp.name} here")
        path = store_calibration(prof, cals, info)
        prof = get_profile(device)  # as registered now (a graph space may have measured units meanwhile)
    main = cals[names[0]] if names[0] in cals else next(iter(cals.values()))
    status = HostStatus(status="calibrated-here", label=f"measured on {check.measured_on}, calibrated here{extra}",
                        calibration={"scale": main.scale, "offset_ms": main.offset_ms, "cached": cached,
                                     "path": str(path), **{k: v for k, v in info.items() if k in
                                                           ("n", "fit_mape_pct", "loo_mape_pct", "created")}},
                        **base)
    _say(prof, sp.name, status, check)
    return with_calibrations(prof, cals), status


def _space_table(prof: DeviceProfile, sp, check: HostCheck, policy: RecalibrationPolicy):
    """(profile, what was measured here): a missing per-op table of ``sp`` measured on this host (auto only).

    A table this host measured on demand earlier is reported too (on a profile from another host),
    so every result says whose blocks it priced with.
    """
    from .on_demand import lacks_space_table, measure_space_table, measured_here, missing_table_error, \
        n_blocks, why_not_measurable_here

    here = measured_here(prof, sp) if sp.name in prof.tables else None
    # A table measured here on demand by a run killed part-way is completed (its blocks' rounds
    # resume); a partial table of `nas profile --limit/--resolutions` on its own host is left as it is.
    if not lacks_space_table(prof, sp) and (here is None or not here.on_demand or here.blocks >= n_blocks(sp)):
        return prof, (here if not check.same else None)
    why = why_not_measurable_here(prof)
    if why is None and policy.mode == "off":
        why = ("--recalibrate off never measures on this host (--recalibrate auto measures its blocks here, "
               "then calibrates them on whole networks here)")
    if why is not None:
        raise missing_table_error(prof, sp, why, other_host=not check.same)
    from .cells import stored_profile

    here = measure_space_table(prof, sp, progress=policy.progress)
    prof = stored_profile(prof)
    if check.same:
        # The profile's own host: its calibration goes into the profile, as `nas profile` ends.
        from .on_demand import calibrate_into_profile

        prof = calibrate_into_profile(prof, sp, n=policy.n, seed=policy.seed, plan=policy.plan,
                                      progress=policy.progress)
    return prof, here


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 3)
