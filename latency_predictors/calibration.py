"""Calibration: ``whole = scale * sum(blocks) + offset_ms``, fitted on measured whole networks (``nas calibrate``).

A block timed alone runs with its weights and activations warm in cache and pays a session call of
its own; inside a network neither holds, and the network adds its own fixed costs. On this machine
raw block sums come out about 20 % below whole networks, mostly proportionally: a scale and an
offset capture it. The fit minimises *relative* error (what MAPE and the +-10 % share measure) by
iteratively reweighted least squares with Huber weights, so a network whose measurement was hit by
noise does not pull the line.
"""

from __future__ import annotations

import numpy as np

from search_spaces.errors import UserError

HUBER_K = 1.345  # the usual 95 %-efficiency constant, in units of the residuals' robust scale


def fit_scale_offset(block_sum_ms, whole_ms, iters: int = 50) -> tuple[float, float]:
    """(scale, offset_ms) minimising Huber-weighted relative errors of ``scale * sum + offset``."""
    x = np.asarray(block_sum_ms, dtype=float)
    y = np.asarray(whole_ms, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (y > 0)
    x, y = x[ok], y[ok]
    if len(x) < 3:
        raise UserError(f"calibration needs at least 3 measured networks, got {len(x)}")
    A = np.stack([x, np.ones_like(x)], axis=1)
    w = 1.0 / y ** 2
    coef = np.zeros(2)
    for _ in range(iters):
        sw = np.sqrt(w)
        new, *_ = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)
        if np.allclose(new, coef, rtol=1e-10, atol=1e-12):
            break
        coef = new
        rel = (A @ coef - y) / y
        s = 1.4826 * np.median(np.abs(rel - np.median(rel))) or 1e-9
        u = np.abs(rel) / (HUBER_K * s)
        w = np.where(u <= 1, 1.0, 1.0 / np.maximum(u, 1e-12)) / y ** 2
    scale, offset = float(coef[0]), float(coef[1])
    if not scale > 0:
        # A degenerate sample (e.g. all archs of one size): fall back to a pure scale.
        scale, offset = float(np.median(y / x)), 0.0
    return scale, offset


def leave_one_out_mape(block_sum_ms, whole_ms) -> float:
    """MAPE (%) of the calibration predicting each network from a fit on the others."""
    x, y = np.asarray(block_sum_ms, float), np.asarray(whole_ms, float)
    errs = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        s, o = fit_scale_offset(x[keep], y[keep])
        errs.append(abs(s * x[i] + o - y[i]) / y[i])
    return float(100 * np.mean(errs))


def fit_calibration(profile, space, n: int = 50, seed: int = 0, plan=None, resolutions=None, out_dir=None,
                    progress: bool = True, label: str | None = None) -> tuple[dict, dict]:
    """Measure n random whole networks here and fit ``profile``'s calibration for ``space``; nothing is stored.

    Returns (table name -> Calibration, figures). The networks come from the calibration seed
    stream, never the validation one (``measure.py``). A graph space priced by whole cells also
    gets its additive per-op table's calibration, fitted on the same networks.
    """
    from search_spaces.registry import get_space

    from .measure import DEFAULT_NET_PLAN, STREAM_CALIBRATE, measure_networks, profile_settings, sample_archs
    from .predictor import LatencyPredictor
    from .profile import Calibration, now_iso

    plan = plan or DEFAULT_NET_PLAN
    prof = profile
    sp = get_space(space)
    settings = profile_settings(prof)
    predictor = LatencyPredictor(prof, sp, check_host=False)  # the caller decided which host this is for
    if resolutions is None and predictor.cells_ is None and predictor.layers_ is None:
        covered = predictor.covered_resolutions()
        rdim = sp.dims[-1].choices if sp.dims and sp.dims[-1].name == "r" else ()
        if covered and len(covered) < len(rdim):
            resolutions = covered  # a table of some resolutions: calibrate on the networks it prices
    X = sample_archs(sp, n, seed, STREAM_CALIBRATE, resolutions)
    cells = predictor.cells_
    if cells is not None:
        cells.measure_missing(X)  # whole-cell pricing first measures every unit these networks need
    sums = predictor.block_sum_ms(X)
    additive = cells.additive if cells is not None else None
    add_sums = additive.block_sum_ms(X) if additive is not None else None
    res = measure_networks(sp, X, settings, plan, seed=seed, progress=progress,
                           label=label or f"calibrate {prof.name}/{sp.name}")
    scale, offset = fit_scale_offset(sums, res["ms"])
    fitted = scale * sums + offset
    fit_mape = float(100 * np.mean(np.abs(fitted - res["ms"]) / res["ms"]))
    loo = leave_one_out_mape(sums, res["ms"])
    raw_gap = float(100 * np.median(res["ms"] / sums - 1))
    note = (f"nas calibrate {now_iso()}: {len(X)} random {sp.name} networks (seed {seed}, calibration stream) "
            f"measured whole, {plan.rounds} interleaved rounds; robust relative-error fit; fit MAPE {fit_mape:.2f} %, "
            f"leave-one-out MAPE {loo:.2f} %; whole networks were {raw_gap:+.1f} % vs raw block sums (median)")
    cals = {predictor.table_name: Calibration(scale=round(scale, 6), offset_ms=round(offset, 5), note=note)}
    if add_sums is not None:  # a graph space's additive fallback, fitted on the same networks
        s2, o2 = fit_scale_offset(add_sums, res["ms"])
        add_mape = float(100 * np.mean(np.abs(s2 * add_sums + o2 - res["ms"]) / res["ms"]))
        note2 = (f"nas calibrate {now_iso()}: the additive per-op model of whole-cell space {sp.name}, fitted on the "
                 f"same {len(X)} networks (seed {seed}, calibration stream); fit MAPE {add_mape:.2f} %, leave-one-out "
                 f"MAPE {leave_one_out_mape(add_sums, res['ms']):.2f} %")
        cals[sp.name] = Calibration(scale=round(s2, 6), offset_ms=round(o2, 5), note=note2)
    main = cals[predictor.table_name]
    info = {"device": prof.name, "space": sp.name, "n": len(X), "seed": seed,
            "scale": main.scale, "offset_ms": main.offset_ms, "fit_mape_pct": round(fit_mape, 3),
            "loo_mape_pct": round(loo, 3), "raw_gap_pct": round(raw_gap, 2),
            "median_net_spread_pct": round(float(np.median(res["spread_pct"])), 2),
            "median_net_repeat_pct": round(float(np.nanmedian(res["repeat_pct"])), 2),
            "load_avg": res["load_avg"], "plan": {"rounds": plan.rounds, "reps": plan.reps, "warmup": plan.warmup}}
    return cals, info
