"""optuna-nsga2 vs random search at equal budget: hypervolume of the accuracy/latency front.

Once-for-All's space, its released accuracy predictor and its note10 lookup tables (from
../shared/data/ofa, imported into a temporary device folder). Reference point: 0 accuracy and the
latency budget; the hypervolume is the area (top-1 fraction x ms) the front dominates within the
budget. Prints one JSON object: per-seed hypervolumes and the medians over 5 seeds.

    .venv/bin/python experiments/bench/nsga2_vs_random.py [--budget 3000] [--latency 25] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("HWNAS_SHARED_DATA", REPO.parent / "shared" / "data")) / "ofa"


def hypervolume(points: list[tuple[float, float]], budget_ms: float) -> float:
    """Area dominated by (latency ms, top-1) points within the budget, from (budget, 0)."""
    pts = sorted((lat, acc) for lat, acc in points if lat <= budget_ms)
    hv, best = 0.0, 0.0
    for lat, acc in pts:  # ascending latency: each new accuracy record adds a strip to the budget
        if acc > best:
            hv += (acc - best) * (budget_ms - lat)
            best = acc
    return hv


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=3000, help="accuracy evaluations per search")
    ap.add_argument("--latency", type=float, default=25.0, help="latency budget on note10 (ms)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--strategies", default="optuna-nsga2,random")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(json.dumps({"error": f"reference data not found at {DATA}"}))
        return 2
    os.environ["HWNAS_DEVICE_DIR"] = tempfile.mkdtemp(prefix="hwnas-bench-devices-")
    import nas
    from nas.accuracy.ofa_predictor import OFAAccuracyPredictor

    nas.import_table("ofa", sorted(DATA.glob("note10_*_lookup_table.yaml")), "note10")
    acc = OFAAccuracyPredictor(nas.get_space("ofa"), DATA / "acc_predictor.pth")
    out = {"space": "ofa", "device": "note10", "latency_ms": args.latency, "budget": args.budget,
           "reference_point": {"top1": 0.0, "latency_ms": args.latency}, "per_seed": {}, "median_hv": {},
           "median_best_top1": {}, "wall_s": {}}
    for strat in args.strategies.split(","):
        hvs, bests, t0 = [], [], time.perf_counter()
        for seed in range(args.seeds):
            # the front is what this bench measures: NSGA-II searches it (latency as an objective)
            params = {"latency": "objective"} if strat == "optuna-nsga2" else {}
            res = nas.search("ofa", "note10", args.latency, accuracy=acc, strategy=strat, budget=args.budget,
                             seed=seed, plot=False, strategy_params=params)
            hvs.append(hypervolume([(s.latency_ms["note10"], s.top1) for s in res.pareto], args.latency))
            bests.append(res.best.top1)
        out["per_seed"][strat] = [round(h, 5) for h in hvs]
        out["median_hv"][strat] = round(float(np.median(hvs)), 5)
        out["median_best_top1"][strat] = round(float(np.median(bests)), 5)
        out["wall_s"][strat] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "nsga2_vs_random"))
