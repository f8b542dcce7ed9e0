"""Does a trained supernet rank its subnets? Spearman between MACs and held-out accuracy.

Samples N random subnets of the space a ``nas train`` run trained (uniformly over the searched
choices), re-calibrates each one's BatchNorm statistics on training images, measures its top-1
on the run's held-out split and prints the Spearman rank correlation between MACs and accuracy
(plus the largest and smallest subnets for reference). A supernet that only trained its largest
net gives a low or negative figure; one that trains every subnet ranks the bigger ones higher.

    python experiments/supernet_rank.py RUN_DIR [--n 50] [--seed 0] [--out rank.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from nas.io import atomic_write_json, to_json
from nas.train.checkpoint import CHECKPOINT_FILE, load_training_state
from nas.train.config import TrainConfig
from nas.train.plans import plan_from_dict
from nas.train.trainer import Trainer


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a `nas train` --out folder")
    ap.add_argument("--n", type=int, default=50, help="random subnets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    st = load_training_state(Path(args.run) / CHECKPOINT_FILE)
    tr = Trainer(TrainConfig.model_validate(st["config"]), Path(args.run), plan_from_dict(st["plan"]), quiet=True)
    tr.load_state(st)
    space = tr.space
    archs = space.sample(np.random.default_rng(args.seed), args.n)
    macs = space.macs(space.encode(archs))
    t0 = time.perf_counter()
    acc = []
    for i, a in enumerate(archs):
        acc.append(tr.evaluate(a))
        print(f"\r{i + 1}/{len(archs)} subnets evaluated", end="", file=sys.stderr)
    print(file=sys.stderr)
    rho, p = spearmanr(macs, acc)
    ends = {name: {"macs_m": float(space.macs(space.encode([a]))[0]) / 1e6, "top1": tr.evaluate(a)}
            for name, a in tr.final_archs().items()}
    result = {"run": str(args.run), "space": space.name, "space_params": space.space_params(), "n": len(archs),
              "spearman_macs_vs_top1": float(rho), "p_value": float(p),
              "top1_min": float(min(acc)), "top1_median": float(np.median(acc)), "top1_max": float(max(acc)),
              "macs_m_range": [float(macs.min()) / 1e6, float(macs.max()) / 1e6], "ends": ends,
              "subnets": [{"macs_m": float(m) / 1e6, "top1": a_} for m, a_ in zip(macs, acc)],
              "eval_wall_s": time.perf_counter() - t0}
    if args.out:
        atomic_write_json(args.out, result)
    print(to_json({k: v for k, v in result.items() if k != "subnets"}))
    print(f"Spearman(MACs, held-out top-1) over {len(archs)} random subnets: {rho:.3f}")
    return result


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "supernet_rank"))
