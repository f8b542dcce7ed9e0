"""How well a device profile predicts whole networks measured here (``nas validate-latency``).

Every error figure comes with the measurement's own noise floor: each network's rounds are split
into even and odd halves, the kept statistic (the fastest run) is computed on each, and the
same figures are computed between the two halves. A prediction cannot be checked more finely
than two measurements of the same network agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search_spaces.errors import UserError
from search_spaces.fileio import atomic_write_bytes, save_figure


def error_figures(pred_ms, true_ms) -> dict:
    """MAPE, max and mean errors, shares within +-5 / +-10 %, Spearman and Kendall of pred vs true."""
    from scipy.stats import kendalltau, spearmanr

    p, t = np.asarray(pred_ms, float), np.asarray(true_ms, float)
    rel = (p - t) / t
    err = p - t
    both = len(p) > 1 and np.ptp(p) > 0 and np.ptp(t) > 0
    return {"mape_pct": round(float(100 * np.mean(np.abs(rel))), 3),
            "max_abs_err_pct": round(float(100 * np.max(np.abs(rel))), 3),
            "bias_pct": round(float(100 * np.mean(rel)), 3),
            "mae_ms": round(float(np.mean(np.abs(err))), 4),
            "max_abs_err_ms": round(float(np.max(np.abs(err))), 4),
            "rmse_ms": round(float(np.sqrt(np.mean(err ** 2))), 4),
            "within_5_pct": round(float(100 * np.mean(np.abs(rel) <= 0.05)), 1),
            "within_10_pct": round(float(100 * np.mean(np.abs(rel) <= 0.10)), 1),
            "spearman": round(float(spearmanr(p, t)[0]), 4) if both else None,
            "kendall_tau": round(float(kendalltau(p, t)[0]), 4) if both else None}


def noise_floor(round_ms: np.ndarray) -> dict:
    """The error figures between the kept statistic of the even and of the odd rounds of each network."""
    rm = np.asarray(round_ms, float)
    if rm.ndim != 2 or rm.shape[1] < 2:
        raise UserError("a noise floor needs at least 2 rounds (--rounds)")
    a, b = rm[:, 0::2].min(axis=1), rm[:, 1::2].min(axis=1)
    f = error_figures(a, b)
    keep = ("mape_pct", "max_abs_err_pct", "within_5_pct", "within_10_pct", "spearman", "kendall_tau")
    out = {f"noise_{k}": f[k] for k in keep}
    out["noise_median_round_spread_pct"] = round(float(np.median(100 * (rm.max(1) - rm.min(1)) / rm.min(1))), 2)
    return out


def plot_scatter(pred_ms, true_ms, path, title: str) -> Path:
    """Predicted vs measured latency with the y = x line and the +-10 % band, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, t = np.asarray(pred_ms, float), np.asarray(true_ms, float)
    lo, hi = 0.9 * min(p.min(), t.min()), 1.1 * max(p.max(), t.max())
    line = np.array([lo, hi])
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.fill_between(line, 0.9 * line, 1.1 * line, color="tab:gray", alpha=0.15, label="+-10 %")
    ax.plot(line, line, color="tab:gray", lw=1, label="predicted = measured")
    ax.scatter(t, p, s=12, color="tab:blue", label=f"{len(p)} networks")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured whole-network latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def report_paths(report_dir, device: str, space: str) -> tuple[Path, Path]:
    """The JSON and PNG a validation writes into ``report_dir``.

    Built by appending, not ``with_suffix``: a space named ``ofa-w1.0`` would otherwise lose its
    ``.0`` (and collide with ``ofa-w1.2``).
    """
    stem = f"latency-validation-{device}-{space}"
    folder = Path(report_dir).expanduser()
    return folder / f"{stem}.json", folder / f"{stem}.png"


def validate_device(device, space, n: int = 100, seed: int = 0, plan=None, resolutions=None,
                    json_path=None, png_path=None, store: bool = True, out_dir=None, progress: bool = True,
                    report_dir=None, recalibrate=None) -> dict:
    """Measure n random networks whole, compare with the profile's predictions; report, plot and store the figures.

    The profile is resolved exactly as ``nas predict`` resolves it (``host_calibration.resolve_for_host``:
    the user's copy over the shipped one, calibrated here or flagged when measured on another host;
    ``out_dir``: a folder holding ``<device>.yaml`` to use instead). ``report_dir``: the JSON report
    and the PNG go there (``latency-validation-DEVICE-SPACE.json/.png``) unless ``json_path`` /
    ``png_path`` name them. Figures are stored in the profile only when it was measured on this host.
    """
    import json

    from search_spaces.registry import get_space

    from .host_calibration import resolve_for_host
    from .measure import (DEFAULT_NET_PLAN, STREAM_VALIDATE, check_writable_dir, measure_networks, profile_settings,
                          resolve_profile, sample_archs, store_dir, store_profile)
    from .predictor import LatencyPredictor
    from .profile import ValidationFigures, now_iso

    plan = plan or DEFAULT_NET_PLAN
    if plan.rounds < 2:
        raise UserError("validation needs at least 2 rounds (--rounds) to measure its noise floor")
    sp = get_space(space)
    prof = resolve_profile(device, out_dir)
    if report_dir is not None:
        default_json, default_png = report_paths(report_dir, prof.name, sp.name)
        json_path = json_path if json_path is not None else default_json
        png_path = png_path if png_path is not None else default_png
    # Every output is checked before any network is measured (minutes of work).
    for target in ([store_dir(prof.name, out_dir)] if store else []) + \
            [Path(p).expanduser().parent for p in (json_path, png_path) if p is not None]:
        check_writable_dir(target)
    prof, host = resolve_for_host(prof, sp, recalibrate)
    settings = profile_settings(prof)
    X = sample_archs(sp, n, seed, STREAM_VALIDATE, resolutions)
    predictor = LatencyPredictor(prof, sp, host_status=host, check_host=False)
    cells = predictor.cells_
    if cells is not None:
        cells.measure_missing(X)  # whole-cell pricing first measures every unit these networks need
    pred = predictor.predict(X)
    raw = predictor.block_sum_ms(X)
    additive = cells.additive if cells is not None else None
    res = measure_networks(sp, X, settings, plan, seed=seed, progress=progress,
                           label=f"validate {prof.name}/{sp.name}")
    meas = res["ms"]
    figs = {**error_figures(pred, meas), **noise_floor(res["round_ms"])}
    figs["raw_block_sum_mape_pct"] = error_figures(raw, meas)["mape_pct"]
    if additive is not None:  # the per-op additive model beside whole cells: what pricing cells buys
        add = error_figures(additive.predict(X), meas)
        figs.update({f"additive_{k}": add[k] for k in ("mape_pct", "max_abs_err_pct", "within_10_pct", "spearman")})
        figs["additive_raw_mape_pct"] = error_figures(additive.block_sum_ms(X), meas)["mape_pct"]
        figs["pricing"] = "whole cells"
    cal = prof.calibration_of(predictor.table_name)
    info = {"device": prof.name, "space": sp.name, "n": len(X), "seed": seed, "created": now_iso(),
            "reference": (f"nas validate-latency: {len(X)} random {sp.name} networks (seed {seed}, validation stream, "
                          f"disjoint from calibration) measured whole, {plan.rounds} interleaved rounds of "
                          f"{plan.warmup} warm-up + {plan.reps} timed runs, fastest run"),
            "runtime": settings.as_dict(), "engine": res["engine"], "calibration": {"scale": cal.scale,
                                                                                     "offset_ms": cal.offset_ms},
            "host": host.as_dict() if host is not None else None,
            "load_avg": [round(v, 2) for v in res["load_avg"]],
            "measured_ms_range": [round(float(meas.min()), 3), round(float(meas.max()), 3)], **figs}
    where = f", {host.label}" if host is not None else ""
    title = (f"{prof.name} / {sp.name}{where}: MAPE {figs['mape_pct']:.2f} % (noise {figs['noise_mape_pct']:.2f} %), "
             f"{figs['within_10_pct']:.0f} % within +-10 %,\nSpearman {figs['spearman']}, Kendall "
             f"{figs['kendall_tau']}, n = {len(X)}")
    if json_path is not None:
        rows = [{"arch": a, "predicted_ms": round(float(p), 4), "measured_ms": round(float(m), 4),
                 "round_ms": [round(float(v), 4) for v in r]}
                for a, p, m, r in zip(res["archs"], pred, meas, res["round_ms"])]
        atomic_write_bytes(json_path, (json.dumps({**info, "archs": rows}, indent=1) + "\n").encode())
        info["json"] = str(json_path)
    if png_path is not None:
        info["plot"] = str(plot_scatter(pred, meas, png_path, title))
    if store and host is not None and host.status != "same-host":
        info["not_stored"] = f"the profile was {host.label}: its figures are kept for its own host"
    elif store:
        prof = resolve_profile(device, out_dir)  # as on disk now: on-demand measuring wrote tables meanwhile
        extra = {k: v for k, v in info.items() if k not in ("device", "space", "n", "created", "reference",
                                                              "json", "plot", "mae_ms", "max_abs_err_ms",
                                                              "rmse_ms", "kendall_tau", "mape_pct", "host")}
        vf = ValidationFigures(reference=info["reference"], n_archs=len(X), mape_pct=figs["mape_pct"],
                               mae_ms=figs["mae_ms"], max_abs_err_ms=figs["max_abs_err_ms"], rmse_ms=figs["rmse_ms"],
                               kendall_tau=figs["kendall_tau"], created=info["created"], **extra)
        validation = dict(prof.validation)
        validation[sp.name] = vf
        info["profile"] = str(store_profile(prof.model_copy(update={"validation": validation}), out_dir))
    return info
