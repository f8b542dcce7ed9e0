"""A measured profile without a table for the asked space: the space's blocks measured on this host, on demand.

The shipped ``x86`` profile was measured on another machine and covers the spaces measured there;
a user who searches another block space (``ofa-small`` for the digits supernet) on it would
otherwise have to profile a device of their own first. Where this host can run what the profile
was measured with (ONNX Runtime, the profile's execution provider and precision), the space's
distinct blocks are measured here (``nas profile``'s protocol: interleaved shuffled rounds), and
stored as the profile's ``<space>`` table in the user folder, so the next run reads them. The
progress file is written after every round: a killed run resumes with the rounds it lacks and never
times a block twice (``cells.measure_units``, also used for graph spaces' cells).

Only under ``--recalibrate auto``: that mode already fits the space's calibration on this host
(``host_calibration.py``), so the blocks measured here are calibrated to whole networks measured
here. ``off`` never measures: the one-line error names ``nas profile``. Graph spaces priced by whole
cells (``CellPriced``) measure their own units (``cells.py``); a profile with a cost model (modelled
``pixel1``) prices any space and is never measured.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from search_spaces.cell_priced import CellPriced
from search_spaces.errors import UserError

from .profile import DeviceProfile


ON_DEMAND = "measured on demand"  # in the provenance cells.measure_units writes


@dataclass
class MeasuredHere:
    """A space's table measured on this host for a profile from elsewhere (recorded in a result's ``host``)."""

    table: str
    host: str  # this host, in words
    blocks: int  # distinct blocks in the table
    measured: int  # of which measured in this call (0: read from an earlier run's table)
    measuring_s: float  # measuring wall time over all runs
    on_demand: bool = True  # measured by this module (False: by `nas profile` on this host)

    def label(self) -> str:
        when = "" if self.measured else " (earlier)"
        return f"{self.table} blocks measured on this host, {self.host}, in {self.measuring_s:.0f} s{when}"

    def as_dict(self) -> dict:
        return asdict(self)


def lacks_space_table(profile: DeviceProfile, space) -> bool:
    """Would ``LatencyPredictor`` find nothing to price ``space`` with on this profile?"""
    if space.name in profile.tables or isinstance(space, CellPriced):
        return False
    return profile.fit is None or not profile.fit.model  # a cost model prices any space


def n_blocks(space) -> int:
    """Distinct blocks of the space's searched archs: what a complete table holds."""
    from .profiler import distinct_blocks

    return len(distinct_blocks(space))


def why_not_measurable_here(profile: DeviceProfile) -> str | None:
    """Why this host cannot measure blocks the way ``profile`` was measured, or None when it can."""
    if profile.source.kind != "measured":
        return f"its latencies are {profile.source.kind}, not measured"
    if profile.runtime.engine != "onnxruntime":
        return f"it was measured with {profile.runtime.engine or 'an unrecorded runtime'}, not ONNX Runtime"
    from .runtime import make_backend, settings_of_runtime

    try:
        make_backend(settings_of_runtime(profile.runtime))
    except UserError as e:
        return str(e)
    except ImportError:
        return "ONNX Runtime is not installed here"
    return None


def missing_table_error(profile: DeviceProfile, space, why: str, other_host: bool = False) -> UserError:
    """The one-line error naming the ``nas profile`` command that adds the table (where it can run)."""
    covered = ", ".join(sorted(profile.tables)) or "none"
    how = f"nas profile --device {profile.name} --space {space.name}"
    # nas profile extends a measured profile only on the host it was measured on
    where = (f"measure one on the host it was measured on with: {how}, or profile this host as a device of "
             f"its own: nas profile --device mybox --space {space.name} (then --target mybox)"
             if other_host else f"measure one with: {how}")
    return UserError(f"device {profile.name!r} has no latency table for space {space.name!r} (it covers: "
                     f"{covered}) and {why}; {where}")


def measure_space_table(profile: DeviceProfile, space, plan=None, progress: bool = True) -> MeasuredHere:
    """Measure every distinct block of ``space`` on this host into ``profile``'s user copy (resumable)."""
    from .cells import measure_units
    from .hostcheck import this_host
    from .profiler import DEFAULT_PLAN, distinct_blocks

    keys = distinct_blocks(space)
    t0 = time.perf_counter()
    before = measured_here(profile, space)
    # nas profile's timer (one input, ONNX Runtime with the profile's precision), not a cell's.
    measure_units(space, keys, profile, space.name, plan=plan or DEFAULT_PLAN, progress=progress,
                  timer=lambda backend, key: backend.prepare(*_block(space, key)))
    wall = time.perf_counter() - t0
    done = measured_here(profile, space)
    return MeasuredHere(table=space.name, host=this_host().label(), blocks=len(keys),
                        measured=len(keys) - (before.blocks if before else 0),
                        measuring_s=done.measuring_s if done else wall)


def _block(space, key):
    module, shape = space.build_block(key)
    return module, tuple(shape)


def measured_here(profile: DeviceProfile, space) -> MeasuredHere | None:
    """The space's table of ``profile``, when this host measured it on demand (its progress file says so)."""
    from .cells import stored_profile
    from .hostcheck import this_host
    from .profiler import progress_path
    from .registry import find_profile, user_dir

    try:
        reg = find_profile(profile.name)
        folder = reg.path.parent if reg.origin == "user" else user_dir()
    except UserError:
        folder = user_dir()
    path = progress_path(folder, profile.name, space.name)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    here = this_host()
    if state.get("host") != here.digest:
        return None
    table = stored_profile(profile).tables.get(space.name)
    if table is None:
        return None
    src = table.source.provenance if table.source is not None else ""
    return MeasuredHere(table=space.name, host=here.label(), blocks=len(table.entries), measured=0,
                        measuring_s=round(float(state.get("wall_s", 0.0)), 1),
                        on_demand=ON_DEMAND in src)


def calibrate_into_profile(profile: DeviceProfile, space, n: int, seed: int = 0, plan=None,
                           progress: bool = True) -> DeviceProfile:
    """Fit the space's calibration on whole networks here and store it in the profile (measured on this host)."""
    from .calibration import fit_calibration
    from .cells import store_profile_copy, stored_profile

    cals, _ = fit_calibration(profile, space, n=n, seed=seed, plan=plan, progress=progress,
                              label=f"calibrating {profile.name}/{space.name}")
    prof = stored_profile(profile)
    tables = dict(prof.tables)
    for name, cal in cals.items():
        if name in tables:
            tables[name] = tables[name].model_copy(update={"calibration": cal})
    prof = prof.model_copy(update={"tables": tables})
    store_profile_copy(prof)
    return prof
