"""Peak memory of one DNAS step against one ProxylessNAS step, same space, same reduced supernet, same batch.

What is measured: the bytes of the tensors autograd saves for the backward pass during one
training step (``torch.autograd.graph.saved_tensors_hooks``; each distinct storage counted once),
which is what grows with the number of paths run: activations kept for the gradient. Both steps
run on one ``CandidateSupernet`` built for the chosen space, so weights and batch are identical:
DNAS runs every candidate of every layer (Gumbel-softmax mixture), ProxylessNAS's weight step one
sampled path and its arch step two. Also printed: the process's peak RSS growth over the step
(``resource.getrusage``, coarse: the allocator keeps freed pages).

    .venv/bin/python experiments/bench/dnas_memory.py --space fbnet --batch 32 --image-size 32
"""

from __future__ import annotations

import argparse
import json
import resource
import warnings

import torch

warnings.filterwarnings("ignore")


def saved_bytes(fn) -> int:
    seen, total = set(), [0]

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default="fbnet")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--width", type=float, default=0.25)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from nas.gradient.base import TrainJob
    from nas.gradient.pricing import layer_costs
    from nas.gradient.supernet import layer_specs
    from nas.run import SearchGrid
    from nas.search import make_target
    from nas.strategies import get_strategy
    from search_spaces import get_space

    sp = get_space(args.space)
    grid = SearchGrid.of(sp)
    specs = layer_specs(sp, grid)
    tgt = make_target("x86", sp, 100)
    costs = layer_costs(specs, grid, tgt.predictor.predict)
    kw = dict(width=args.width, image_size=args.image_size, head=64)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size)
    y = torch.randint(0, 10, (args.batch,))
    rows = {}
    for name in ("dnas", "proxyless"):
        strat = get_strategy(name, **kw)
        job = TrainJob(specs, costs, 100.0, strat.params(), 10)
        torch.manual_seed(0)
        job.model = strat.supernet(job)
        job.w_opt = torch.optim.SGD(strat.weight_parameters(job.model), lr=0.01)
        job.a_opt = torch.optim.Adam(strat.arch_parameters(job.model), lr=0.01)
        job.coefficient = strat.initial_coefficient()
        gen = torch.Generator().manual_seed(0)
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        w = saved_bytes(lambda: strat.weight_step(job, x, y, gen))
        a = saved_bytes(lambda: strat.arch_step(job, x, y, gen))
        r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows[name] = {"weight_step_saved_MiB": w / 2**20, "arch_step_saved_MiB": a / 2**20,
                      "peak_rss_growth_MiB": (r1 - r0) / 1024}
    d, p = rows["dnas"], rows["proxyless"]
    print(f"space {args.space}, batch {args.batch}, {args.image_size} px, width {args.width}: "
          f"{len(specs)} layers, {int(costs.mask.sum())} candidates")
    print(f"{'saved activations (MiB)':<28}{'DNAS':>10}{'Proxyless':>12}{'ratio':>8}")
    for k, label in (("weight_step_saved_MiB", "weight step"), ("arch_step_saved_MiB", "architecture step")):
        print(f"{label:<28}{d[k]:>10.2f}{p[k]:>12.2f}{d[k] / max(p[k], 1e-9):>8.1f}x")
    print(f"{'peak RSS growth (MiB)':<28}{d['peak_rss_growth_MiB']:>10.1f}{p['peak_rss_growth_MiB']:>12.1f}")
    print(json.dumps({"space": args.space, "batch": args.batch, "image_size": args.image_size, **rows}))
    return 0


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "dnas_memory"))
