"""Whole-cell latency for graph spaces (``CellPriced``): cells measured on demand, cached in the profile.

A NASNet cell's ops run as parallel branches into adds and a concat, and memory traffic dominates,
so a sum of per-op latencies misses what a cell costs. Here a network is priced as the sum of its
*units* (stem, every cell, head), each timed whole in ONNX Runtime with its real inputs bound; a
unit's key is its canonical cell graph plus its input shapes and widths, so two encodings of the
same graph share one measurement.

Units are measured on demand: a prediction that meets units the device has no number for measures
them (interleaved shuffled rounds, ``timing.py``), writes the progress file after every round and
the profile's ``<space>.cells`` table (atomically), so a search measures only the units it visits
and a killed run resumes with the rounds it lacks. Two limits keep a search's measuring bounded
(docs/nasnet.md): at most ``max_new_per_call`` units per prediction call and ``budget_s`` seconds of
measuring per predictor; an arch whose units are still unmeasured is priced by the additive per-op
model (the space's block table, or the profile's cost model) and counted in ``n_fallback_``.
"""

from __future__ import annotations

import gc
import io
import os
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from search_spaces.blocks import BlockKey
from search_spaces.errors import UserError

from .profile import DeviceProfile, SpaceTable, Source, now_iso
from .timing import Progress, RoundPlan, kept_ms, run_rounds

CELL_PLAN = RoundPlan(rounds=5, reps=10, warmup=2)
MAX_NEW_PER_CALL = 64  # units one prediction call may measure (~30-60 s on a loaded 2-core host)
BUDGET_S = float(os.environ.get("HWNAS_CELL_BUDGET_S", 600))  # measuring seconds per predictor
CHUNK = 64  # sessions kept at once


def cells_table(space_name: str) -> str:
    """The profile table holding a space's whole-unit latencies."""
    return f"{space_name}.cells"


# ---- timing a unit with several inputs ------------------------------------------------------
def unit_onnx(module, shapes: Sequence[tuple[int, ...]], batch: int = 1) -> bytes:
    """A unit exported with one named input per tensor (``in0``, ``in1``), traced at its real size."""
    import torch

    module = module.eval()
    args = tuple(torch.zeros(batch, *s) for s in shapes)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, input_names=[f"in{i}" for i in range(len(shapes))],
                          output_names=["output"], opset_version=17, dynamo=False)
    return buf.getvalue()


class UnitTimer:
    """An ONNX Runtime session with every input and the output bound (no copies timed)."""

    def __init__(self, backend, module, shapes: Sequence[tuple[int, ...]]):
        import onnxruntime as ort

        if backend.engine != "onnxruntime" or backend.settings.precision != "fp32":
            raise UserError("whole cells are measured with ONNX Runtime in fp32 only; profile this device with "
                            "--precision fp32")
        self.session = ort.InferenceSession(unit_onnx(module, shapes, backend.settings.batch),
                                            backend.session_options(), providers=[backend.execution_provider])
        rng = np.random.default_rng(0)
        # The exporter drops an input no op reads (a cell may ignore one of its inputs entirely).
        names = {i.name for i in self.session.get_inputs()}
        feeds = {f"in{i}": rng.standard_normal((backend.settings.batch, *s), dtype=np.float32)
                 for i, s in enumerate(shapes) if f"in{i}" in names}
        self.binding = self.session.io_binding()
        self._keep = []
        for name, x in feeds.items():
            v = ort.OrtValue.ortvalue_from_numpy(x)
            self._keep.append(v)
            self.binding.bind_ortvalue_input(name, v)
        out = self.session.run(None, feeds)[0]
        self._y = ort.OrtValue.ortvalue_from_numpy(np.empty_like(out))
        self.binding.bind_ortvalue_output("output", self._y)
        self.session.run_with_iobinding(self.binding)

    def time_ms(self, warmup: int, reps: int) -> np.ndarray:
        run, binding = self.session.run_with_iobinding, self.binding
        for _ in range(warmup):
            run(binding)
        out = np.empty(reps)
        for i in range(reps):
            t0 = time.perf_counter_ns()
            run(binding)
            out[i] = time.perf_counter_ns() - t0
        return out / 1e6


# ---- measuring units into the profile (resumable) -------------------------------------------
def _store_dir(profile: DeviceProfile, out_dir) -> Path:
    from .registry import find_profile, user_dir

    if out_dir is not None:
        return Path(out_dir).expanduser()
    try:
        reg = find_profile(profile.name)
        return reg.path.parent if reg.origin == "user" else user_dir()
    except UserError:
        return user_dir()


def _latest(profile: DeviceProfile, directory: Path) -> DeviceProfile:
    """The profile as it is on disk now (other writers keep their tables), else the one given."""
    from .registry import find_profile, load_profile

    path = directory / f"{profile.name}.yaml"
    if path.is_file():
        return load_profile(path)
    try:
        return find_profile(profile.name).profile
    except UserError:
        return profile


def stored_profile(profile: DeviceProfile, out_dir=None) -> DeviceProfile:
    """The profile as on-demand measuring stored it (``out_dir``, else the user folder), else the one given."""
    return _latest(profile, _store_dir(profile, out_dir))


def store_profile_copy(profile: DeviceProfile, out_dir=None) -> Path:
    """Write the profile where on-demand measuring stores it (its user folder, or a user copy of a shipped one)."""
    from .registry import save_profile

    return save_profile(profile, _store_dir(profile, out_dir))


def measure_units(space, keys: Sequence[BlockKey], profile: DeviceProfile, table_name: str, out_dir=None,
                  plan: RoundPlan = CELL_PLAN, progress: bool = True, seed: int = 0,
                  timer=None) -> dict[str, float]:
    """Time every unit of ``keys`` lacking rounds into ``table_name``; returns key text -> ms of completed units.

    After every round the progress file (``<dir>/<device>.progress/<table>.json``) and the profile's
    table are written atomically; a unit's rounds already in the progress file are never measured
    again. Units are measured on this host, which the table's provenance names. ``timer(backend,
    key)`` builds what times one key (default: the space's whole unit, ``UnitTimer``).
    """
    from .profiler import load_progress, progress_path, save_progress
    from .registry import save_profile
    from .runtime import make_backend, profile_settings

    from .hostcheck import this_host

    settings = profile_settings(profile)
    directory = _store_dir(profile, out_dir)
    name = table_name
    host = this_host()
    ppath = progress_path(directory, profile.name, name)
    state = load_progress(ppath, settings)
    rounds = state["blocks"]
    pending = list(dict.fromkeys(str(k) for k in keys
                                 if len(rounds.get(str(k), {}).get("rounds", [])) < plan.rounds))
    by_text = {str(k): k for k in keys}
    t0 = time.perf_counter()
    wall0 = float(state.get("wall_s", 0.0))

    def save_rounds():
        state["wall_s"] = wall0 + time.perf_counter() - t0
        save_progress(ppath, state)

    def save():
        # The profile (a YAML of thousands of units: ~1.6 s to read and write here) is written once
        # per chunk; the progress file after every round is what a killed run resumes from, and the
        # next measuring call copies any unit it completed into the table.
        save_rounds()
        prof = _latest(profile, directory)
        table = prof.tables.get(name) or SpaceTable()
        entries = dict(table.entries)
        for k, b in rounds.items():
            if len(b["rounds"]) >= plan.rounds and k not in entries:
                entries[k] = round(kept_ms(b["rounds"]), 5)
        what = "whole units (cells, stem, head)" if name.endswith(".cells") else "per-op blocks"
        src = Source(kind="measured", created=now_iso(), provenance=(
            f"{what} measured on demand with ONNX Runtime on {host.processor} ({host.cpu_count} CPUs), "
            f"{plan.rounds} interleaved shuffled rounds of {plan.warmup} warm-up + {plan.reps} timed runs, fastest "
            f"run; {len(entries)} units; measuring wall time {state['wall_s']:.0f} s over all runs"))
        tables = dict(prof.tables)
        tables[name] = table.model_copy(update={"entries": entries, "source": src})
        save_profile(prof.model_copy(update={"tables": tables}), directory)

    if pending:
        backend = make_backend(settings)
        rng = np.random.default_rng([seed, len(rounds)])
        bar = Progress(len(pending) * (plan.rounds + 1), f"measure {profile.name}/{name}", enabled=progress)
        for start in range(0, len(pending), CHUNK):
            part = pending[start:start + CHUNK]
            timers = {}
            for k in part:
                timers[k] = (timer(backend, by_text[k]) if timer is not None
                             else UnitTimer(backend, *space.build_unit(by_text[k])))
                bar.advance()
            medians = {k: rounds.setdefault(k, {"rounds": []})["rounds"] for k in timers}
            run_rounds(timers, medians, plan, rng, on_round=lambda _r: save_rounds(), progress=bar)
            save()
            del timers
            gc.collect()
    else:
        save()  # units whose rounds a killed run completed reach the table here
    return {k: kept_ms(b["rounds"]) for k, b in rounds.items() if len(b["rounds"]) >= plan.rounds}


# ---- the predictor --------------------------------------------------------------------------
def can_measure_here(profile: DeviceProfile) -> bool:
    """A profile measured with ONNX Runtime can have a graph space's units measured on demand here.

    Also on another host than the profile's other tables (the predictor then warns): a graph
    space's tables are measured where they are used, and their provenance names the host.
    """
    return profile.source.kind == "measured" and profile.runtime.engine == "onnxruntime"


def cell_latency(profile: DeviceProfile, space, additive=None) -> "CellLatency | None":
    """Whole-cell pricing of ``space`` on ``profile``, or None where the profile prices per op only.

    A profile with a ``<space>.cells`` table, or one measured here (units measured on demand), prices
    whole cells; a modelled profile (``pixel1``) prices the space's per-op blocks by its cost model.
    """
    if cells_table(space.name) in profile.tables or can_measure_here(profile):
        return CellLatency(profile, space, additive=additive)
    return None


class CellLatency:
    """Latency of each arch as ``scale * sum(units) + offset_ms``, units measured whole (see the module doc)."""

    def __init__(self, profile: DeviceProfile, space, on_demand: bool = True,
                 max_new_per_call: int | None = MAX_NEW_PER_CALL, budget_s: float | None = BUDGET_S,
                 plan: RoundPlan = CELL_PLAN, out_dir=None, progress: bool = True, additive=None):
        self.profile, self.space = profile, space
        # (profile) -> the per-op predictor of the space (LatencyPredictor(pricing="blocks"), which builds
        # this object: handed in so that the two files do not import each other)
        self.make_additive = additive
        self.table_name = cells_table(space.name)
        self.on_demand = on_demand and can_measure_here(profile)
        self.max_new_per_call, self.budget_s = max_new_per_call, budget_s
        self.plan, self.out_dir, self.progress = plan, out_dir, progress
        self.keys: list[BlockKey] = []
        self.index: dict[str, int] = {}
        self.known_ms: dict[str, float] = dict(profile.tables[self.table_name].entries) \
            if self.table_name in profile.tables else {}
        cal = profile.calibration_of(self.table_name)
        self.scale_, self.offset_ms_ = float(cal.scale), float(cal.offset_ms)
        self.measured_s_ = 0.0  # measuring wall time spent by this predictor
        self.n_measured_ = 0  # units this predictor measured
        self.n_priced_ = 0  # arch rows priced by this predictor
        self.n_fallback_ = 0  # of which priced by the additive model (units unmeasured when asked)
        self._additive_rows: set[bytes] = set()  # those rows, to say later which archs they were
        self._additive = None
        src = profile.source_of(self.table_name)
        self.source = src.kind
        self.provenance = (f"whole cells ({self.table_name}: {len(self.known_ms)} units"
                           + (", more measured on demand" if self.on_demand else "") + "); archs with unmeasured "
                           "cells priced by the additive per-op model")

    # ---- the additive fallback ----------------------------------------------------------------
    @property
    def additive(self):
        """The per-op additive predictor of the space on this profile (None without a table or model).

        On a profile measured with ONNX Runtime, a missing per-op table is measured on first use
        (every per-op block searched archs can contain, into the profile's ``<space>`` table).
        """
        if self._additive is None:
            try:
                if self.make_additive is None:
                    raise UserError("no per-op predictor was handed in")
                self._additive = self.make_additive(self.profile)
            except UserError:
                self._additive = False
                if can_measure_here(self.profile) and self.make_additive is not None:
                    keys = self.space.block_keys()
                    ids = self.space.searched_block_ids()
                    t0 = time.perf_counter()
                    measure_units(self.space, [keys[i] for i in ids], self.profile, self.space.name, self.out_dir,
                                  self.plan, self.progress)
                    self.measured_s_ += time.perf_counter() - t0
                    self._additive = self.make_additive(_latest(self.profile, _store_dir(self.profile, self.out_dir)))
        return self._additive or None

    # ---- units --------------------------------------------------------------------------------
    def unit_ids(self, X: np.ndarray) -> np.ndarray:
        return self.space.cell_matrix(np.asarray(X), self.index, self.keys)

    def _values(self) -> np.ndarray:
        return np.array([self.known_ms.get(str(k), np.nan) for k in self.keys] + [0.0])

    def missing_units(self, X: np.ndarray, limit: int | None = None) -> list[BlockKey]:
        """Distinct unmeasured units of X's archs, arch by arch in batch order, whole archs up to ``limit``."""
        ids = self.unit_ids(X)
        vals = self._values()
        need: dict[int, None] = {}
        for row in ids[np.isnan(vals[ids]).any(axis=1)]:
            new = [int(i) for i in dict.fromkeys(row.tolist()) if np.isnan(vals[i]) and int(i) not in need]
            if limit is not None and len(need) + len(new) > limit:
                break
            need.update(dict.fromkeys(new))
        return [self.keys[i] for i in need]

    def measure(self, keys: Sequence[BlockKey]) -> None:
        """Measure these units now (resumable) and add them to the known latencies."""
        if not keys:
            return
        if not can_measure_here(self.profile):
            raise UserError(f"device {self.profile.name!r} was not measured with ONNX Runtime on this host, so its "
                            f"cells cannot be measured here")
        t0 = time.perf_counter()
        done = measure_units(self.space, keys, self.profile, self.table_name, self.out_dir, self.plan, self.progress)
        self.measured_s_ += time.perf_counter() - t0
        self.n_measured_ += sum(1 for k in keys if str(k) not in self.known_ms)
        self.known_ms.update(done)

    def measure_missing(self, X: np.ndarray) -> int:
        """Measure every unit X's archs lack (no limits: validation and calibration); returns how many."""
        keys = self.missing_units(X)
        self.measure(keys)
        return len(keys)

    # ---- prediction -------------------------------------------------------------------------
    def _on_demand(self, X: np.ndarray) -> None:
        if not self.on_demand or (self.budget_s is not None and self.measured_s_ >= self.budget_s):
            return
        self.measure(self.missing_units(X, self.max_new_per_call))

    def block_sum_ms(self, X: np.ndarray, missing: str = "raise") -> np.ndarray:
        """Sum of each arch's unit latencies (NaN where a unit is unmeasured), measuring on demand."""
        X = np.asarray(X)
        self._on_demand(X)
        ids = self.unit_ids(X)
        out = self._values()[ids].sum(axis=1)
        if missing == "raise" and np.isnan(out).any() and self.additive is None:
            key = next(self.keys[i] for i in ids[np.isnan(out)][0] if str(self.keys[i]) not in self.known_ms)
            raise UserError(f"device {self.profile.name!r} has no latency for unit {key} of space "
                            f"{self.space.name!r}, and no per-op table to fall back on; measure it with: "
                            f"nas validate-latency --device {self.profile.name} --space {self.space.name}")
        return out

    def predict(self, X: np.ndarray, missing: str = "raise") -> np.ndarray:
        """Latency (ms): whole cells where measured, the additive per-op model for the other archs."""
        X = np.asarray(X, dtype=np.int64)
        out = self.block_sum_ms(X, missing) * self.scale_ + self.offset_ms_
        self.n_priced_ += len(X)
        bad = np.isnan(out)
        if bad.any() and self.additive is not None:
            out[bad] = self.additive.predict(X[bad], missing=missing)
            self.n_fallback_ += int(bad.sum())
            self._additive_rows.update(r.tobytes() for r in np.ascontiguousarray(X[bad]))
        return out

    # ---- what was priced how (written into a search's result) ----------------------------------
    def priced_additively(self, X: np.ndarray) -> np.ndarray:
        """Per row: did this predictor price that arch with the additive fallback (at least once)?"""
        rows = np.ascontiguousarray(np.asarray(X, dtype=np.int64))
        return np.array([r.tobytes() in self._additive_rows for r in rows], dtype=bool)

    def pricing_report(self) -> dict:
        """How this predictor priced: rows whole-cell vs additive, units measured and the time it took."""
        return {"pricing": "whole cells, additive per-op fallback for archs with unmeasured units",
                "archs_priced": self.n_priced_, "archs_priced_additive": self.n_fallback_,
                "units_in_table": len(self.known_ms), "units_measured": self.n_measured_,
                "measuring_s": round(self.measured_s_, 1),
                "budget": {"units_per_call": self.max_new_per_call, "measuring_s": self.budget_s}}
