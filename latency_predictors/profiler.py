"""The block profiler behind ``nas profile``: a measured lookup table of a space's blocks on this machine.

Every distinct block key the space's searched archs can contain (``space.searched_block_ids``) is
built once (``space.build_block``) as a small ONNX model with its session kept, then timed with the
interleaved-rounds protocol of ``timing.py``. Many keys of the deep stages repeat across nearby
resolutions, so a key is measured once and priced at every resolution (``entries``).

Resumable: the round values (each round's fastest run) of every block go to a progress file beside
the profile (``<dir>/<device>.progress/<space>.json``) after every round, and the profile's table gets each
block whose rounds are complete; a killed run continues with the rounds and blocks it lacks.
Sessions are kept for one chunk of blocks at a time (~4 MB each), so memory stays bounded.
"""

from __future__ import annotations

import gc
import os
import platform
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import ValidationError

from search_spaces.errors import UserError
from search_spaces.fileio import atomic_write_bytes, check_writable_dir
from search_spaces.registry import get_space

from .hostcheck import host_differences, this_host
from .profile import DeviceProfile, Hardware, Runtime, Source, SpaceTable, now_iso
from .registry import check_names_free, load_profile, save_profile, user_dir
from .runtime import RuntimeSettings, make_backend
from .timing import Progress, RoundPlan, kept_ms, repeat_pct, run_rounds, spread_pct

DEFAULT_PLAN = RoundPlan(rounds=5, reps=10, warmup=2)
DEFAULT_CHUNK = 320
PROGRESS_VERSION = 1


def block_space(space):
    """The space, checked to have per-block keys and single-block builders."""
    sp = get_space(space)
    try:
        sp.block_keys()
    except NotImplementedError:
        raise UserError(f"space {sp.name!r} has no blocks (block_keys), so it cannot be profiled per block; "
                        f"measure whole networks with nas measure") from None
    return sp


def distinct_blocks(space, resolutions: Sequence[int] | None = None, limit: int | None = None) -> list:
    """The distinct block keys searched archs can contain (at ``resolutions``), in the space's order."""
    sp = block_space(space)
    keys = sp.block_keys()
    try:
        ids = sp.searched_block_ids(resolutions=resolutions) if resolutions else sp.searched_block_ids()
    except TypeError:
        raise UserError(f"space {sp.name!r} has no input resolutions; leave out --resolutions") from None
    seen: dict[str, object] = {}
    for i in ids:
        seen.setdefault(str(keys[i]), keys[i])
    out = list(seen.values())
    if limit is not None:
        if limit < 1:
            raise UserError(f"limit must be a positive int, got {limit}")
        out = out[:limit]
    return out


def progress_path(out_dir: Path, device: str, space: str) -> Path:
    return out_dir / f"{device}.progress" / f"{space}.json"


def runtime_of(backend) -> Runtime:
    s = backend.settings
    return Runtime(engine=backend.engine, version=backend.version, execution_provider=backend.execution_provider,
                   threads=s.threads if s.provider == "cpu" else None, batch=s.batch, precision=s.precision)


def _same_runtime(a: Runtime, b: Runtime) -> bool:
    return (a.engine, a.execution_provider, a.threads, a.batch, a.precision) == \
        (b.engine, b.execution_provider, b.threads, b.batch, b.precision)


def _describe_runtime(r: Runtime) -> str:
    return (f"{r.engine} {r.execution_provider}, threads {r.threads}, batch {r.batch}, precision {r.precision}")


def load_progress(path: Path, settings: RuntimeSettings) -> dict:
    """The progress file of an earlier (possibly killed) run with the same settings, else a fresh one."""
    import json

    fresh = {"version": PROGRESS_VERSION, "settings": settings.as_dict(), "blocks": {}, "wall_s": 0.0,
             "host": this_host().digest}
    if not path.is_file():
        return fresh
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return fresh  # a progress file is a cache: unreadable means start over
    if data.get("settings") != settings.as_dict():
        raise UserError(f"{path} holds a run with other settings ({data.get('settings')}); "
                        f"delete it or use another --device name")
    data.setdefault("blocks", {})
    return data


def save_progress(path: Path, data: dict) -> None:
    import json

    atomic_write_bytes(path, json.dumps(data, separators=(",", ":")).encode())


def _open_profile(path: Path, device: str, aliases: Sequence[str], runtime: Runtime) -> DeviceProfile:
    if path.is_file():
        prof = load_profile(path)
        if prof.source.kind != "measured":
            raise UserError(f"device {device!r} ({path}) holds {prof.source.kind} latencies, which measuring here "
                            f"cannot extend; profile this machine under another --device name")
        if prof.runtime.engine is not None and not _same_runtime(prof.runtime, runtime):
            raise UserError(f"device {device!r} ({path}) was measured with {_describe_runtime(prof.runtime)}; "
                            f"these settings are {_describe_runtime(runtime)}: profile them under another "
                            f"--device name")
        if prof.host is not None and prof.source.kind == "measured" and host_differences(prof.host):
            raise UserError(f"device {device!r} ({path}) was measured on another host "
                            f"({'; '.join(host_differences(prof.host))}); profile this one under another --device name")
        missing = [a for a in aliases if a not in prof.aliases]
        if missing:
            prof = prof.model_copy(update={"aliases": prof.aliases + missing})
        return prof
    try:
        return DeviceProfile(name=device, aliases=list(aliases), source=Source(kind="measured"), runtime=runtime)
    except ValidationError as e:
        raise UserError(f"device {device!r}: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def _registered(device: str):
    from .registry import find_profile

    try:
        return find_profile(device)
    except UserError:
        return None


def _registered_name(device: str, out_dir: Path) -> str:
    """The profile name ``device`` stands for: itself, or the name of the profile it is an alias of."""
    if (out_dir / f"{device}.yaml").is_file():
        return device
    reg = _registered(device)
    return reg.profile.name if reg is not None else device


def profile_space(device: str, space: str, settings: RuntimeSettings | None = None,
                  plan: RoundPlan = DEFAULT_PLAN, resolutions: Sequence[int] | None = None,
                  limit: int | None = None, out_dir: str | os.PathLike | None = None,
                  aliases: Sequence[str] = (), chunk: int = DEFAULT_CHUNK, seed: int = 0,
                  progress: bool = True) -> dict:
    """Measure every block of ``space`` the profile lacks into ``<out_dir>/<device>.yaml``; returns a report."""
    t_start = time.perf_counter()
    settings = settings or RuntimeSettings()
    if not isinstance(chunk, int) or chunk < 1:
        raise UserError(f"chunk must be a positive int, got {chunk!r}")
    sp = block_space(space)
    keys = distinct_blocks(sp, resolutions, limit)
    backend = make_backend(settings)
    runtime = runtime_of(backend)
    out_dir = Path(out_dir).expanduser() if out_dir is not None else user_dir()
    device = _registered_name(device, out_dir)
    aliases = [str(a).strip().lower() for a in aliases]
    check_names_free(device, aliases)  # before anything is measured or written
    check_writable_dir(out_dir)
    path = out_dir / f"{device}.yaml"
    prof = _open_profile(path, device, aliases, runtime)
    if not path.is_file() and (reg := _registered(device)) is not None:
        # Extending a shipped profile (or one elsewhere): start from it, so its other spaces are kept.
        prof = _open_profile(reg.path, device, aliases, runtime)
    if prof.source.kind == "measured" and settings.provider == "cpu":
        # The speed probe of this host, stored with the table (hostcheck.py compares it elsewhere). A
        # profile extended on its own host keeps each shape's fastest time of its probes; one from
        # another host, or with a probe of an older kind, gets this host's.
        from . import probe as speed_probe

        here = this_host()
        host_probe = speed_probe.measure_probe()
        old = prof.host.probe if prof.host is not None else None
        if old is not None and prof.host.identity() == here.identity():
            host_probe = speed_probe.fastest_of(old, host_probe)
        speed_probe.remember_probe(here, host_probe)  # what a host check in this run compares against
        prof = prof.model_copy(update={"host": here.model_copy(update={"probe": host_probe})})
    ppath = progress_path(out_dir, prof.name, sp.name)
    state = load_progress(ppath, settings)
    blocks = state["blocks"]
    table = prof.tables.get(sp.name) or SpaceTable()
    done = {str(k) for k in keys if str(k) in table.entries
            or len(blocks.get(str(k), {}).get("rounds", [])) >= plan.rounds}
    # Chunks drawn at random, not in resolution order: a slow spell of the machine that outlasts one
    # chunk's rounds then inflates blocks scattered over every resolution (errors that average out in
    # a network's sum) instead of biasing the networks of a few resolutions.
    pending = [k for k in keys if str(k) not in done]
    pending = [pending[i] for i in np.random.default_rng([seed, 1]).permutation(len(pending))]
    n_built = 0
    bar = Progress(len(pending) * (plan.rounds + 1), f"profile {prof.name}/{sp.name}", enabled=progress)
    rng = np.random.default_rng(seed)
    wall0 = float(state.get("wall_s", 0.0))

    def save():
        nonlocal table, prof
        state["wall_s"] = wall0 + time.perf_counter() - t_start
        save_progress(ppath, state)
        entries = dict(table.entries)
        for key, b in blocks.items():
            if len(b["rounds"]) >= plan.rounds and key not in entries:
                entries[key] = round(kept_ms(b["rounds"]), 5)
        stats = block_stats(state, [str(k) for k in keys], plan.rounds)
        source = Source(kind="measured", created=now_iso(),
                        provenance=(f"{_provenance(plan, runtime)}; {len(entries)} distinct blocks; profiling wall "
                                    f"time {state['wall_s']:.0f} s over all runs; median block spread between "
                                    f"rounds {stats['median_spread_pct']} %, median even/odd-round repeat "
                                    f"{stats['median_repeat_pct']} %"))
        table = table.model_copy(update={"entries": entries, "source": source})
        prof = _with_table(prof, sp.name, table, runtime, plan)
        save_profile(prof, out_dir)

    for start in range(0, len(pending), chunk):
        part = pending[start:start + chunk]
        timers = {}
        for key in part:
            module, shape = sp.build_block(key)
            timers[str(key)] = backend.prepare(module, tuple(shape), role="block")
            n_built += 1
            bar.advance()
        medians = {k: blocks.setdefault(k, {"rounds": []})["rounds"] for k in timers}
        run_rounds(timers, medians, plan, rng, on_round=lambda _r: save(), progress=bar)
        del timers
        gc.collect()
    save()
    wall = time.perf_counter() - t_start
    stats = block_stats(state, [str(k) for k in keys], plan.rounds)
    return {"device": prof.name, "space": sp.name, "path": str(out_dir / f"{prof.name}.yaml"),
            "progress_path": str(ppath), "blocks": len(keys), "measured": len(pending),
            "reused": len(keys) - len(pending), "wall_s": round(wall, 1),
            "total_wall_s": round(float(state["wall_s"]), 1), "runtime": runtime.model_dump(),
            "probe": prof.host.probe.model_dump() if prof.host is not None and prof.host.probe is not None else None,
            **stats}


def block_stats(state: dict, keys: Sequence[str], rounds: int) -> dict:
    """Median spread figures over the blocks of ``keys`` that have their rounds."""
    rms = [state["blocks"][k]["rounds"] for k in keys if len(state["blocks"].get(k, {}).get("rounds", [])) >= rounds]
    if not rms:
        return {"median_spread_pct": None, "median_repeat_pct": None}
    rep = [repeat_pct(r) for r in rms]
    rep = [r for r in rep if r is not None]
    return {"median_spread_pct": round(float(np.median([spread_pct(r) for r in rms])), 2),
            "median_repeat_pct": round(float(np.median(rep)), 2) if rep else None}


def _provenance(plan: RoundPlan, runtime: Runtime) -> str:
    return (f"nas profile: each distinct block as an ONNX model, {plan.rounds} interleaved shuffled rounds of "
            f"{plan.warmup} warm-up + {plan.reps} timed runs, fastest run kept; "
            f"{_describe_runtime(runtime)} {runtime.version}")


def _with_table(prof: DeviceProfile, space: str, table: SpaceTable, runtime: Runtime, plan: RoundPlan) -> DeviceProfile:
    tables = dict(prof.tables)
    tables[space] = table
    update = {"tables": tables}
    if prof.source.kind == "measured":
        probe = prof.host.probe if prof.host is not None else None
        host = this_host().model_copy(update={"probe": probe})
        update.update(runtime=runtime, host=host,
                      hardware=Hardware(cpu=host.processor, cores=runtime.threads, isa=platform.machine(),
                                        device=prof.hardware.device, gpu=prof.hardware.gpu),
                      source=Source(kind="measured", provenance=_provenance(plan, runtime),
                                    created=prof.source.created or now_iso()))
    return prof.model_copy(update=update)
