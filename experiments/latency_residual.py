"""Where does a calibrated block table still miss whole networks? Price block-boundary features on a validation report.

Reads the JSON that ``nas validate-latency`` writes (every network's arch, predicted and measured ms)
and fits, with k-fold cross-validation over those networks, a small correction in the spirit of
nn-Meter's kernel detection: ``measured = predicted + sum_k w_k * f_k`` with per-network features

- ``blocks``: active blocks (each boundary is a kernel launch and an output write a fused graph may skip),
- ``boundary_mb``: activation megabytes written at block boundaries (memory traffic between blocks),
- ``skip_adds``: blocks with an identity skip (their add is fused into the last conv in a whole graph),
- a constant (what the calibration's offset left),

fitted by least squares on relative error. It prints the cross-validated MAPE, share within +-5 % and
Spearman before and after, next to the report's own noise floor, and each feature's fitted cost.

    python experiments/latency_residual.py reports/latency-validation-mybox-ofa.json [--folds 5]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def features(space, archs: list[dict], predicted_ms: np.ndarray) -> tuple[np.ndarray, list[str]]:
    from search_spaces import get_space

    sp = get_space(space)
    X = sp.encode(archs)
    ids = sp.block_matrix(X)
    keys = sp.block_keys()
    out_mb = np.array([4 * np.prod(k.output) / 1e6 for k in keys] + [0.0])
    skip = np.array([1.0 if dict(k.params).get("idskip", 0) else 0.0 for k in keys] + [0.0])
    F = np.stack([(ids >= 0).sum(axis=1), out_mb[ids].sum(axis=1), skip[ids].sum(axis=1),
                  np.ones(len(X))], axis=1).astype(float)
    return F, ["blocks", "boundary_mb", "skip_adds", "constant"]


def fit(pred, meas, F):
    """w minimising sum(((pred + F w) - meas) / meas)^2."""
    A = F / meas[:, None]
    b = (meas - pred) / meas
    w, *_ = np.linalg.lstsq(A, b, rcond=None)
    return w


def main() -> None:
    from latency_predictors.validation import error_figures

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", help="JSON written by nas validate-latency")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rep = json.loads(open(args.report).read())
    archs = [r["arch"] for r in rep["archs"]]
    pred = np.array([r["predicted_ms"] for r in rep["archs"]])
    meas = np.array([r["measured_ms"] for r in rep["archs"]])
    F, names = features(rep["space"], archs, pred)
    folds = np.random.default_rng(args.seed).permutation(len(pred)) % args.folds
    corrected = np.empty_like(pred)
    for k in range(args.folds):
        tr, te = folds != k, folds == k
        corrected[te] = pred[te] + F[te] @ fit(pred[tr], meas[tr], F[tr])
    w = fit(pred, meas, F)
    before, after = error_figures(pred, meas), error_figures(corrected, meas)
    print(f"{rep['device']}/{rep['space']}: {len(pred)} networks, {args.folds}-fold cross-validated")
    for k in ("mape_pct", "within_5_pct", "within_10_pct", "spearman", "bias_pct"):
        print(f"  {k:14s} table {before[k]!s:>8}  corrected {after[k]!s:>8}  noise {rep.get('noise_' + k, '-')}")
    print("  fitted on all: " + ", ".join(f"{n} {v * 1000:+.2f} us" for n, v in zip(names, w))
          + " (boundary_mb: per MB written)")


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "latency_residual"))
