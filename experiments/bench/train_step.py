"""One sandwich step of the supernet vs the same four subnets' static training steps, side by side.

A sandwich step (the trainer's ``supernet_step`` with in-place distillation) trains the largest,
the smallest and two random subnets of the supernet on one batch, each at its own resolution,
with one optimiser step. The baseline is each of those four subnets extracted as a plain
network with its own SGD optimiser, one full training step each (zero_grad, forward, loss,
backward, clipping, step). Contenders are timed interleaved, rep by rep, in a rotating order;
the ratio is sandwich / sum of the four static steps, per set of random subnets, then the
median over sets. On CUDA (``--device cuda``, untested here: no GPU on this machine) times come
from CUDA events, the step runs under AMP, and images/s of the sandwich step are reported.

    python -m experiments.bench.train_step [--space ofa-small] [--sets 4] [--reps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from experiments.bench.search_vs_ofa import finish  # the shared finishing step of the bench scripts
from experiments.bench.supernet_forward import Timer

from nas.data.transforms import resize
from nas.train.plans import load_plan
from nas.train.step import StepOptions, supernet_step
from nas.train.subnets import sampler_for
from search_spaces import get_space


def sgd(params, lr=0.05):
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-5)


def static_step(net, opt, x, y, opts: StepOptions, use_amp: bool):
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.float16, enabled=use_amp):
            out = net(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=opts.label_smoothing)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.grad is not None], opts.grad_clip)
        opt.step()
    return step


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="ofa-small", help="ofa-small, ofa or ofa-w1.0")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--sets", type=int, default=4, help="random (largest, smallest, 2 random) sets")
    ap.add_argument("--reps", type=int, default=5, help="timed reps per set and contender")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall clock, or this process's CPU time (steadier on a shared machine, with --threads 1)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        load0 = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load0 = None
    dev = torch.device(args.device)
    use_amp = dev.type == "cuda"
    space = get_space(args.space)
    torch.manual_seed(args.seed)
    net = space.supernet().to(dev).train()
    sampler = sampler_for(space)
    phase = load_plan("sandwich").resolved()[0]
    gen = torch.Generator().manual_seed(args.seed)
    opts = StepOptions(amp=use_amp)
    opt = sgd(net.parameters())
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    timer = Timer(dev, args.clock)
    n_out = getattr(space, "n_classes", 1000)
    x = torch.randn(args.batch_size, 3, sampler.max_resolution, sampler.max_resolution, device=dev)
    y = torch.randint(0, n_out, (args.batch_size,), device=dev)
    per_set = []
    for s in range(args.sets):
        archs = [sampler.largest(phase), sampler.smallest(phase)] + [sampler.random(phase, gen) for _ in range(2)]
        pairs = [(a, sampler.resolution(a)) for a in archs]
        statics = []
        for a, r in pairs:
            sub = net.extract(a).train()
            statics.append(static_step(sub, sgd(sub.parameters()), resize(x, r), y, opts, use_amp))
        fns = {"sandwich": lambda: supernet_step(net, opt, x, y, pairs, opts, inplace=True, scaler=scaler),
               **{f"static{i}": f for i, f in enumerate(statics)}}
        times = {k: [] for k in fns}
        names = list(fns)
        for rep in range(args.warmup + args.reps):
            order = names[rep % len(names):] + names[:rep % len(names)]  # rotate: drift hits all alike
            for k in order:
                t = timer(fns[k])
                if rep >= args.warmup:
                    times[k].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        static_sum = sum(med[f"static{i}"] for i in range(4))
        per_set.append({"sandwich_s": med["sandwich"], "static_sum_s": static_sum,
                        "static_s": [med[f"static{i}"] for i in range(4)],
                        "ratio": med["sandwich"] / static_sum,
                        "resolutions": [r for _, r in pairs]})
        print(f"set {s + 1}/{args.sets}: sandwich {1e3 * med['sandwich']:.1f} ms, static sum "
              f"{1e3 * static_sum:.1f} ms, ratio {per_set[-1]['ratio']:.3f}", file=sys.stderr)
    ratio = statistics.median(p["ratio"] for p in per_set)
    result = {"bench": "train_step", "space": args.space, "batch_size": args.batch_size, "device": str(dev),
              "clock": args.clock, "sets": per_set,
              "ratio_sandwich_over_static_sum": ratio,
              "sandwich_images_per_s": 4 * args.batch_size / statistics.median(p["sandwich_s"] for p in per_set),
              "goal": "<= 1.10", "holds": ratio <= 1.10}
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
           "loadavg_at_start": load0, "when_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    finish(result, env, args.out)
    return result


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "train_step"))
