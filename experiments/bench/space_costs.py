"""MACs and params without building: archs/s for a batch of random archs of a space (JSON).

    python experiments/bench/space_costs.py --space ofa --n 100000

Also times building the same archs as torch modules and counting their parameters, on a few
archs, so the two figures sit side by side.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from search_spaces import get_space


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="example: python experiments/bench/space_costs.py --space ofa --n 100000")
    ap.add_argument("--space", default="ofa")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n-build", type=int, default=5, help="archs built as torch modules for comparison")
    args = ap.parse_args(argv)
    sp = get_space(args.space)
    rng = np.random.default_rng(0)
    X = sp.sample_encoded(rng, args.n)
    sp.macs(X[:10]), sp.params(X[:10])  # compile the per-block cost arrays once
    best = float("inf")
    for _ in range(args.reps):
        t = time.perf_counter()
        macs, params = sp.macs(X), sp.params(X)
        best = min(best, time.perf_counter() - t)
    archs = sp.decode(X[: args.n_build])
    t = time.perf_counter()
    for a in archs:
        sum(p.numel() for p in sp.build(a).parameters())
    build_s = (time.perf_counter() - t) / len(archs)
    print(json.dumps({"space": sp.name, "n_archs": args.n, "macs_and_params_archs_per_s": round(args.n / best),
                      "build_and_count_archs_per_s": round(1 / build_s, 1),
                      "mean_mmacs": round(float(macs.mean()) / 1e6, 1),
                      "mean_mparams": round(float(params.mean()) / 1e6, 2)}, indent=2))
    return 0


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "space_costs"))
