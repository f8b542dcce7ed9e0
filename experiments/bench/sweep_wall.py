"""Wall time of a 16-trial sweep on a local Ray against the same 16 searches run one after another.

The sweep test (tests/test_sweep.py) checks behaviour only; how long a sweep takes is measured
here. Both sides run in this one process on the same machine, back to back, and the script
prints the ratio (sequential / sweep), so a loaded machine slows both alike. The grid is the
test's: ofa, pixel and (when ../shared/data/ofa is present) note10, latency 30 and 60 ms,
evolution and optuna-nsga2, seeds 0 and 1, 300 evaluations per trial.

    python -m experiments.bench.sweep_wall --cpus 2 --out /tmp/sweep_wall.json

Prints one JSON object (also written atomically to --out).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


from experiments.bench.search_vs_ofa import environment, finish, ofa_data_dir


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    env = environment()

    import nas
    from nas.sweep import run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HWNAS_DEVICE_DIR"] = str(Path(tmp) / "devices")
        targets = ["pixel"]
        ofa = ofa_data_dir()
        if ofa is not None and ofa.is_dir():
            nas.import_table("ofa", sorted(ofa.glob("note10_*_lookup_table.yaml")), device="note10")
            targets.append("note10")
        params = {"evolution": {"population": 50}, "optuna-nsga2": {"population": 50}}
        sweep = {"name": "bench", "fixed": {"space": "ofa", "budget": args.budget, "strategy_params": params},
                 "grid": {"target": targets, "latency_ms": [30, 60], "strategy": ["evolution", "optuna-nsga2"],
                          "seed": [0, 1]}}
        t0 = time.perf_counter()
        summary = run_sweep(sweep, Path(tmp) / "sweep", cpus=args.cpus, quiet=True)
        sweep_s = time.perf_counter() - t0
        rows = summary["rows"]
        t0 = time.perf_counter()
        for r in rows:
            sp = dict(params.get(r["strategy"], {}))
            nas.search("ofa", r["target"], r["latency_ms"], strategy=r["strategy"], strategy_params=sp,
                       budget=args.budget, seed=int(r["seed"]), plot=False)
        seq_s = time.perf_counter() - t0
    finish({"bench": "sweep_wall", "trials": len(rows), "cpus": args.cpus,
            "all_terminated": all(r["status"] == "TERMINATED" for r in rows),
            "sweep_wall_s": round(sweep_s, 1), "sequential_in_process_s": round(seq_s, 1),
            "ratio_sequential_over_sweep": round(seq_s / sweep_s, 3)}, env, args.out)


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "sweep_wall"))
