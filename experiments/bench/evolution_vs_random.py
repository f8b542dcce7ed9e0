"""Evolution and the RL controller vs random search at equal budget: note10, OFA predictor.

At each latency budget (15, 25 and 35 ms on note10) and seed (1-5), runs ``nas.search`` once per
strategy (``--strategies``, default evolution, rl and random), all with the same budget (accuracy
evaluations; default ``nas.search``'s) and their default parameters, and records the best arch's
predicted top-1. Following Yang et al., "NAS evaluation is frustratingly hard" (ICLR 2020), the
method is compared with random sampling in the same space under the same protocol through the
relative improvement RI = 100 * (acc_method - acc_random) / acc_random, given here for the medians
over seeds and as the median of the per-seed (paired by seed) RI.

The inputs are Once-for-All's note10 lookup tables (imported with ``nas.import_table`` into a
temporary device folder) and its released acc_predictor.pth.

Examples:

    python -m experiments.bench.evolution_vs_random --out /tmp/evolution_vs_random.json
    python -m experiments.bench.evolution_vs_random --quick    # smoke run: 25 ms, seeds 1-2

Prints one JSON object (also written atomically to --out). Without ../shared/data/ofa (or
$HWNAS_SHARED_DATA/ofa) it prints {"skipped": reason} and exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile


from experiments.bench.search_vs_ofa import (SEEDS, TARGETS_MS, environment, finish, hwnas_search,
                          missing_data_reason, ofa_data_dir, setup_note10, skip, summarize, table_files)

STRATEGIES = ("evolution", "rl", "random")


def rel_improvement(acc: float, acc_random: float) -> float:
    return round(100.0 * (acc - acc_random) / acc_random, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="examples:" + __doc__.split("Examples:")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 25 ms only, seeds 1-2")
    ap.add_argument("--targets", type=float, nargs="+", help="latency budgets in ms (default 15 25 35)")
    ap.add_argument("--seeds", type=int, nargs="+", help="seeds (default 1 2 3 4 5)")
    ap.add_argument("--budget", type=int, help="accuracy evaluations per search (default: nas.search's)")
    ap.add_argument("--out", help="also write the JSON here (atomically)")
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                    help="strategies compared with random (random is always run)")
    args = ap.parse_args()
    targets = [int(t) if float(t).is_integer() else t
               for t in (args.targets or ([25] if args.quick else list(TARGETS_MS)))]
    seeds = args.seeds or ([1, 2] if args.quick else list(SEEDS))

    data = ofa_data_dir()
    reason = missing_data_reason(data)
    if reason:
        skip("evolution_vs_random", reason, args.out)

    from nas.accuracy.ofa_predictor import OFAAccuracyPredictor
    from nas.search import DEFAULT_BUDGET
    from search_spaces import get_space

    budget = args.budget or DEFAULT_BUDGET
    env = environment()
    result = {"bench": "evolution_vs_random", "device": "note10", "targets_ms": targets, "seeds": seeds,
              "budget": budget, "budget_unit": "accuracy evaluations (the same for both strategies)",
              "accuracy": f"OFA acc_predictor.pth ({data / 'acc_predictor.pth'})",
              "latency": f"Once-for-All note10 lookup tables ({len(table_files(data))} resolutions)",
              "protocol": "Yang et al., ICLR 2020: RI = 100 * (acc_method - acc_random) / acc_random"}
    settings, rows, details = {}, [], {}
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-") as tmp:
        setup_note10(data, tmp)
        acc = OFAAccuracyPredictor(get_space("ofa"), data / "acc_predictor.pth")
        strategies = [s for s in args.strategies if s != "random"] + ["random"]
        methods = strategies[:-1]
        for t in targets:
            runs = {s: [] for s in strategies}
            for seed in seeds:
                for strat in strategies:
                    r = hwnas_search(acc, t, seed, strategy=strat, budget=budget)
                    settings[strat] = r["_settings"]
                    runs[strat].append(r)
                    print(f"{t:g} ms seed {seed}: {strat:9s} {r['top1']:.4f} {r['latency_ms']:.2f} ms "
                          f"{r['wall_s']:.2f}s", file=sys.stderr)
            summ = {k: summarize(v) for k, v in runs.items()}
            rnd = summ["random"]
            row = {"target_ms": t, "median_top1": {k: v["median_top1"] for k, v in summ.items()},
                   "median_wall_s": {k: v["median_wall_s"] for k, v in summ.items()},
                   "per_seed_top1": {k: [r["top1"] for r in v] for k, v in runs.items()}}
            for m in methods:
                per_seed_ri = [rel_improvement(a["top1"], b["top1"]) for a, b in zip(runs[m], runs["random"])]
                row[m] = {"ri_of_medians_pct": rel_improvement(summ[m]["median_top1"], rnd["median_top1"]),
                          "median_per_seed_ri_pct": round(statistics.median(per_seed_ri), 3),
                          "seeds_better_than_random": sum(ri > 0 for ri in per_seed_ri),
                          "beats_random": bool(summ[m]["median_top1"] > rnd["median_top1"]),
                          "per_seed_ri_pct": per_seed_ri}
            rows.append(row)
            details[str(t)] = summ
    result["settings"] = settings
    result["comparison"] = rows
    for m in methods:
        result[f"{m}_beats_random_at_all_targets"] = all(r[m]["beats_random"] for r in rows)
    result["details"] = details
    finish(result, env, args.out)


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "evolution_vs_random"))
