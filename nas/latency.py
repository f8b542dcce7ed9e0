"""The public latency API: devices, predictions and table imports (the CLI calls only these)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from latency_predictors.importers import import_tables
from latency_predictors.predictor import LatencyPredictor, predict_latency_ms
from latency_predictors.profile import DeviceProfile
from latency_predictors.registry import get_profile, scan_profiles, shipped_dir, user_dir
from search_spaces import get_space
from search_spaces.base import Arch, SearchSpace
from search_spaces.counting import macs_params


def describe_devices() -> list[dict]:
    """Every device profile: name, aliases, spaces covered, source, validation error when known.

    A profile that cannot be used is a row ``{"name", "broken": reason, "origin", "path"}``.
    """
    rows = []
    profiles, broken = scan_profiles()
    for reg in profiles:
        p = reg.profile
        spaces = {}
        for name, t in p.tables.items():
            info = {"entries": t.n_entries(), "source": p.source_of(name).kind}
            if t.by_resolution:
                info["resolutions"] = sorted(t.by_resolution)
            if t.layers is not None:
                info["layers"] = len(t.layers.ms)
            spaces[name] = info
        validation = {s: v.model_dump(exclude_none=True) for s, v in p.validation.items()}
        rows.append({"name": p.name, "aliases": p.aliases, "device": p.hardware.device, "source": p.source.kind,
                     "spaces": spaces, "validation": validation,
                     "fit": p.fit.model_dump(exclude_none=True) if p.fit else None,
                     "origin": reg.origin, "path": str(reg.path)})
    # Skipped files are listed too, so a user sees why a device is missing (never a crash).
    for b in broken:
        rows.append({"name": b.name, "broken": b.reason, "origin": b.origin, "path": str(b.path)})
    return rows


def device_dirs() -> dict[str, str]:
    """Where shipped and user profiles are read from."""
    return {"shipped": str(shipped_dir()), "user": str(user_dir())}


def latency_predictor(space: str | SearchSpace, device: str | DeviceProfile, recalibrate=None) -> LatencyPredictor:
    """A compiled predictor of ``space`` on ``device``; reuse it for many batches.

    A profile measured on another host is calibrated here (``recalibrate="auto"``, the default
    unless ``$HWNAS_RECALIBRATE`` says otherwise; cached per host) or flagged (``"off"``); a
    ``latency_predictors.host_calibration.RecalibrationPolicy`` sets the sample size.
    ``predictor.host_status`` says which.
    """
    from latency_predictors.host_calibration import resolve_for_host

    sp = get_space(space)
    prof, host = resolve_for_host(get_profile(device), sp, recalibrate)
    return LatencyPredictor(prof, sp, host_status=host, check_host=False)


def predict_costs(space: str | SearchSpace, device: str | DeviceProfile,
                  archs: Sequence[Arch] | Arch, recalibrate=None) -> dict:
    """Latency (ms), MACs and params of each arch, with the latency's source.

    A row's ``latency_source`` is "modelled" when the profile's cost model priced a block its
    table lacks (e.g. a resolution or width the table was not made for), else the table's source.
    ``host`` says where a measured table was measured and whether it was calibrated here
    (``recalibrate``: see ``latency_predictor``).
    """
    sp = get_space(space)
    device = get_profile(device)  # an unknown device is the first error
    X = sp.encode(archs)  # bad archs are refused before any host check or calibration
    predictor = latency_predictor(sp, device, recalibrate)
    lat = predictor.predict(X)
    macs, params = macs_params(sp, X)
    # null (None) where the space can neither count nor build the net: unknown, not zero.
    sources = predictor.source_of_rows(X)
    rows = [{"latency_ms": float(l), "latency_source": src, "macs": None if np.isnan(m) else int(m),
             "params": None if np.isnan(p) else int(p)} for l, src, m, p in zip(lat, sources, macs, params)]
    host = predictor.host_status
    out = {"space": sp.name, "device": predictor.profile.name, "source": predictor.source,
           "host": host.as_dict() if host is not None else None, "archs": rows}
    if sp.space_params():
        out["space_params"] = sp.space_params()
    return out


def import_table(fmt: str, files: Sequence[str | os.PathLike], device: str,
                 out_dir: str | os.PathLike | None = None, aliases: Sequence[str] = ()) -> dict:
    """Import public latency tables (``ofa``, ``proxylessnas``, ``single-path``) into a device profile."""
    return import_tables(fmt, files, device, out_dir=out_dir, aliases=aliases)


def profile_device(device: str, space: str | SearchSpace, **kw) -> dict:
    """Measure ``space``'s blocks on this machine into ``device``'s profile (``nas profile``; resumable).

    Keywords: ``settings`` (``RuntimeSettings``: provider, threads, batch, precision), ``plan``
    (``RoundPlan``: rounds, reps, warmup), ``resolutions``, ``limit``, ``out_dir``, ``aliases``.
    """
    from latency_predictors.profiler import profile_space

    return profile_space(device, space, **kw)


def measure_latency(space: str | SearchSpace, device: str | DeviceProfile, archs, **kw) -> dict:
    """Whole-network latency of ``archs`` measured here under ``device``'s runtime settings."""
    from latency_predictors.measure import measure_device

    return measure_device(device, space, archs, **kw)


def calibrate_device(device: str, space: str | SearchSpace, n: int = 60, **kw) -> dict:
    """Fit ``device``'s calibration for ``space`` on n random networks measured whole (``nas calibrate``)."""
    from latency_predictors.calibrate import calibrate_device as _calibrate

    return _calibrate(device, space, n=n, **kw)


def validate_latency(device: str, space: str | SearchSpace, n: int = 100, **kw) -> dict:
    """Predictions vs n random networks measured whole, with the noise floor (``nas validate-latency``)."""
    from latency_predictors.validation import validate_device

    return validate_device(device, space, n=n, **kw)


__all__ = ["describe_devices", "device_dirs", "latency_predictor", "predict_costs", "predict_latency_ms",
           "import_table", "profile_device", "measure_latency", "calibrate_device", "validate_latency"]
