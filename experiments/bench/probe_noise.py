"""How far the speed probe moves between probes of one host, seconds apart, for each protocol.

The host check calls a host "another one" when its probe is more than 15 % off the recorded one,
so two probes of the same host must agree far closer than that. This takes ``--n`` probes in one
process, each with fresh sessions, for:

- ``v1``: the first protocol (the profile's 2 intra-op threads, 7 rounds, no warm-up, one pass);
- ``2-threads``: today's protocol (warm-up, passes until repeatable) but at 2 threads;
- ``current``: today's protocol as shipped (1 thread; ``latency_predictors/probe.py``).

For each it prints every probe's ratio to the first probe and to the median probe, the largest
``|ratio - 1|`` and the probe's own even/odd-round repeat figure. Run it with and without the
priority recipe (docs/profiling.md, "Priority") to see what load does:

    /tmp/prio.sh python experiments/bench/probe_noise.py --n 8      # with priority
    python experiments/bench/probe_noise.py --n 8                   # without

Prints one JSON object (and a line per protocol on stderr); the load average is in the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

from latency_predictors import probe as speed_probe
from latency_predictors.sched import priority_state
from latency_predictors.timing import RoundPlan

PROTOCOLS = {
    "v1": dict(threads=2, plan=RoundPlan(rounds=7, reps=10, warmup=2), max_passes=1, warmup_s=0.0),
    "2-threads": dict(threads=2),
    "current": dict(),
}


def _ratio(a: dict, b: dict) -> float:
    return float(math.exp(np.mean([math.log(b[k] / a[k]) for k in a])))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python experiments/bench/probe_noise.py --n 8")
    ap.add_argument("--n", type=int, default=8, help="probes per protocol (default 8)")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help=f"comma list of {', '.join(PROTOCOLS)}")
    args = ap.parse_args(argv)
    names = [p.strip() for p in args.protocols.split(",") if p.strip()]
    bad = [p for p in names if p not in PROTOCOLS]
    if bad or args.n < 2:
        ap.error(f"unknown protocol {bad[0]!r}; accepted: {', '.join(PROTOCOLS)}" if bad else "--n must be >= 2")
    speed_probe.measure_probe()  # the process's first sessions (imports, allocator) are not any protocol's
    out = {"load_before": os.getloadavg(), "priority": priority_state(), "n": args.n, "protocols": {}}
    for name in names:
        probes, secs = [], []
        for _ in range(args.n):
            t0 = time.perf_counter()
            probes.append(speed_probe.measure_probe(**PROTOCOLS[name]))
            secs.append(time.perf_counter() - t0)
        ms = [p.ms for p in probes]
        med = {k: float(np.median([m[k] for m in ms])) for k in ms[0]}
        to_first = [_ratio(ms[0], m) for m in ms]
        to_median = [_ratio(med, m) for m in ms]
        row = {"ratio_to_first": [round(r, 3) for r in to_first], "ratio_to_median": [round(r, 3) for r in to_median],
               "max_abs_pct_to_median": round(100 * max(abs(r - 1) for r in to_median), 2),
               "max_pair_pct": round(100 * (max(to_median) / min(to_median) - 1), 2),
               "repeat_pct": [p.repeat_pct for p in probes], "rounds": [p.rounds for p in probes],
               "seconds_each": round(float(np.median(secs)), 3)}
        out["protocols"][name] = row
        print(f"{name:10s} worst pair {row['max_pair_pct']:6.2f} %, worst vs median {row['max_abs_pct_to_median']:6.2f} %, "
              f"{row['seconds_each']} s a probe, rounds {row['rounds']}", file=sys.stderr, flush=True)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "probe_noise"))
