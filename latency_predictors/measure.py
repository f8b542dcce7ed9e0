"""Whole-network latency on this machine under a device profile's runtime settings (``nas measure``).

The ground truth the lookup tables are checked and calibrated against. Networks are timed with
the same interleaved-rounds protocol and statistic as the blocks (``timing.py``), their sessions
kept for a chunk of networks at a time (a 224 px ``ofa`` session holds ~40 MB).
"""

from __future__ import annotations

import gc
import os
from typing import Sequence

import numpy as np

from search_spaces.base import Arch
from search_spaces.errors import UserError
from search_spaces.fileio import check_writable_dir  # noqa: F401  (public here too)
from search_spaces.registry import get_space

from .profile import DeviceProfile
from .registry import get_profile
from .runtime import RuntimeSettings, make_backend, profile_settings  # noqa: F401  (profile_settings: public here too)
from .timing import Progress, RoundPlan, kept_ms, repeat_pct, run_rounds, spread_pct

DEFAULT_NET_PLAN = RoundPlan(rounds=5, reps=10, warmup=2)
NET_CHUNK = 50  # sessions kept at once (~40 MB each): rounds then span more of the run


def measure_networks(space, archs: np.ndarray | Sequence[Arch], settings: RuntimeSettings,
                     plan: RoundPlan = DEFAULT_NET_PLAN, chunk: int = NET_CHUNK, seed: int = 0,
                     progress: bool = True, label: str = "measure") -> dict:
    """Latency of each arch as a whole network: ``ms`` (kept), ``round_ms`` (n, rounds), spreads."""
    sp = get_space(space)
    archs = sp.decode(archs) if isinstance(archs, np.ndarray) else [sp.validate(a) for a in archs]
    if not archs:
        raise UserError("no archs to measure")
    backend = make_backend(settings)
    rng = np.random.default_rng(seed)
    medians: dict[str, list[float]] = {}
    bar = Progress(len(archs) * (plan.rounds + 1), label, enabled=progress)
    for start in range(0, len(archs), chunk):
        timers = {}
        for i in range(start, min(start + chunk, len(archs))):
            timers[str(i)] = backend.prepare(sp.build(archs[i]), tuple(sp.input_shape(archs[i])))
            bar.advance()
        run_rounds(timers, medians, plan, rng, progress=bar)
        del timers
        gc.collect()
    rounds = np.array([medians[str(i)] for i in range(len(archs))])
    return {"archs": archs, "ms": np.array([kept_ms(r) for r in rounds]), "round_ms": rounds,
            "spread_pct": np.array([spread_pct(r) for r in rounds]),
            "repeat_pct": np.array([repeat_pct(r) if len(r) > 1 else np.nan for r in rounds]),
            "engine": backend.engine, "execution_provider": backend.execution_provider,
            "settings": settings.as_dict(), "plan": {"rounds": plan.rounds, "reps": plan.reps,
                                                     "warmup": plan.warmup},
            "load_avg": list(os.getloadavg())}


def measure_device(device: str | DeviceProfile, space, archs, plan: RoundPlan = DEFAULT_NET_PLAN,
                   progress: bool = True) -> dict:
    """Whole-network latency of ``archs`` under ``device``'s runtime settings, next to its prediction."""
    from .hostcheck import warn_if_other_host
    from .predictor import LatencyPredictor

    prof = get_profile(device)
    warn_if_other_host(prof)
    res = measure_networks(space, archs, profile_settings(prof), plan, progress=progress,
                           label=f"measure {prof.name}")
    sp = get_space(space)
    try:
        pred = LatencyPredictor(prof, sp).predict(sp.encode(res["archs"]), missing="nan")
    except UserError:
        pred = np.full(len(res["archs"]), np.nan)  # no table for this space: measuring alone is fine
    res["predicted_ms"] = pred
    res["device"], res["space"] = prof.name, sp.name
    return res


# Seed streams: calibration and validation draw from different streams, so even with the same
# --seed a validation never sees the networks the calibration was fitted on.
STREAM_CALIBRATE, STREAM_VALIDATE = 0xCA1B, 0x7A11D


def sample_archs(space, n: int, seed: int, stream: int, resolutions: Sequence[int] | None = None) -> np.ndarray:
    """n random searched archs (encoded) from the ``(seed, stream)`` generator, optionally at given resolutions."""
    sp = get_space(space)
    if not isinstance(n, int) or n < 1:
        raise UserError(f"n must be a positive int, got {n!r}")
    rng = np.random.default_rng([int(seed), stream])
    X = sp.sample_encoded(rng, n)
    if resolutions:
        names = [d.name for d in sp.dims]
        if "r" not in names:
            raise UserError(f"space {sp.name!r} has no resolution dim; leave out --resolutions")
        j = names.index("r")
        choices = sp.dims[j].choices
        bad = [r for r in resolutions if r not in choices]
        if bad:
            raise UserError(f"resolution {bad[0]} is not allowed in space {sp.name!r}")
        X[:, j] = np.array([choices.index(r) for r in resolutions])[rng.integers(0, len(resolutions), n)]
        X = sp.canonical(X)
    return X


def store_dir(name: str, out_dir=None):
    """The folder ``store_profile`` writes device ``name`` into: ``out_dir``, else the user's copy's, else the user folder."""
    from pathlib import Path

    from .registry import find_profile, user_dir

    if out_dir is not None:
        return Path(out_dir).expanduser()
    try:
        reg = find_profile(name)
        return reg.path.parent if reg.origin == "user" else user_dir()
    except UserError:
        return user_dir()


def store_profile(profile: DeviceProfile, out_dir=None):
    """Write an updated profile back: to ``out_dir``, else where the user's copy is, else the user folder."""
    from .registry import save_profile

    return save_profile(profile, store_dir(profile.name, out_dir))


def resolve_profile(device: str | DeviceProfile, out_dir=None) -> DeviceProfile:
    """The profile in ``out_dir`` when it holds ``<device>.yaml``, else the registered one."""
    from pathlib import Path

    from .registry import load_profile

    if isinstance(device, DeviceProfile):
        return device
    if out_dir is not None:
        path = Path(out_dir).expanduser() / f"{device}.yaml"
        if path.is_file():
            return load_profile(path)
    return get_profile(device)
