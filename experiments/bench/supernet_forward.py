"""Supernet forward vs the extracted static subnet: eval (batch 1 @ 224) and a training step (16 @ 160).

For each of N random archs the contenders are timed interleaved, rep by rep, in a rotating order
(so drift and other load on the machine hit them alike); each figure is a median over reps, and
the ratios are medians over archs of the per-arch ratio. ``set_active`` is timed on its own.
When the ``ofa`` package imports, Once-for-All's own supernet is timed the same way beside ours.

    python experiments/bench/supernet_forward.py [--space ofa] [--archs 20] [--reps 7] [--quick]

Prints one JSON object (``--out FILE`` also writes it). On GPU (``--device cuda``) times are
taken with CUDA events.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import types
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from search_spaces import get_space


class Timer:
    """Seconds of one call: wall clock on CPU, CUDA events on GPU."""

    def __init__(self, device: torch.device, clock: str = "wall"):
        self.cuda = device.type == "cuda"
        # CPU time of this process is what a shared machine's other load disturbs least
        # (use it with --threads 1, where no worker thread spins while waiting).
        self.now = time.process_time if clock == "cpu" else time.perf_counter

    def __call__(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
        t = self.now()
        fn()
        return self.now() - t


def load_ofa_supernet(width_mult: float):
    """Once-for-All's own OFAMobileNetV3, or (None, reason) when it cannot be imported.

    Its package imports torchvision for data loading only; when torchvision is absent, empty
    stand-in modules are registered so the network code imports (nothing from them is called).
    """
    stubbed = False
    try:
        import torchvision  # noqa: F401
    except ImportError:
        stubbed = True

        class _Anything:
            def __init__(self, *a, **k):
                pass

            def __call__(self, *a, **k):
                return _Anything()

            def __getattr__(self, name):
                return _Anything()

            def __mro_entries__(self, bases):  # subclassing a stand-in gives a plain class
                return (object,)

        class _StubModule(types.ModuleType):
            def __getattr__(self, name):
                if name.startswith("__"):
                    raise AttributeError(name)
                return _Anything()

        for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
                     "torchvision.transforms.transforms", "torchvision.datasets", "torchvision.models",
                     "torchvision.utils"):
            mod = _StubModule(name)
            mod.__path__ = []
            sys.modules.setdefault(name, mod)
    try:
        from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    except Exception as e:  # not installed, or needs more than we can stand in for
        return None, f"ofa not importable: {type(e).__name__}: {e}".splitlines()[0]
    net = OFAMobileNetV3(n_classes=1000, width_mult=width_mult, ks_list=[3, 5, 7],
                         expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    return net, "torchvision stubbed for import" if stubbed else "ok"


def interleaved(timer: Timer, fns: dict[str, Callable[[], object]], reps: int, warmup: int) -> dict[str, float]:
    """Median seconds per contender, the contenders run in a rotating order each rep."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            times[n].append(timer(fns[n]))
    return {n: statistics.median(v) for n, v in times.items()}


def train_step(net, x, y):
    def step():
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
    return step


def summarise(per_arch: list[dict[str, float]], num: str, den: str) -> dict:
    ratios = [a[num] / a[den] for a in per_arch]
    return {"ratio_median": round(statistics.median(ratios), 4),
            "ratio_geomean": round(float(np.exp(np.mean(np.log(ratios)))), 4),
            "ratio_min": round(min(ratios), 4), "ratio_max": round(max(ratios), 4),
            f"{num}_ms_median": round(1e3 * statistics.median(a[num] for a in per_arch), 3),
            f"{den}_ms_median": round(1e3 * statistics.median(a[den] for a in per_arch), 3)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="ofa", choices=["ofa", "ofa-w1.0"])
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions per arch and contender")
    ap.add_argument("--train-reps", type=int, default=None, help="reps of the training step (default: --reps)")
    ap.add_argument("--train-archs", type=int, default=None,
                    help="time the training step on the first N archs only (default: all)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall clock, or this process's CPU time (steadier on a shared machine)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--no-ofa", action="store_true", help="skip Once-for-All's own supernet")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke test: 3 archs, 2 reps, small inputs")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.archs, args.reps, args.warmup = 3, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    timer = Timer(device, "wall" if device.type == "cuda" else args.clock)
    eval_res, train_res, train_batch = (96, 64, 4) if args.quick else (224, 160, 16)

    space = get_space(args.space)
    torch.manual_seed(args.seed)
    ours = space.supernet().to(device)
    theirs, ofa_status = (None, "skipped (--no-ofa)") if args.no_ofa else load_ofa_supernet(space.width_mult)
    if theirs is not None:
        theirs.to(device)
    archs = [ours.largest_arch(), ours.smallest_arch()] + space.sample(np.random.default_rng(args.seed), args.archs - 2)
    archs = archs[:args.archs]

    g = torch.Generator().manual_seed(args.seed)
    x_eval = torch.randn(1, 3, eval_res, eval_res, generator=g).to(device)
    x_train = torch.randn(train_batch, 3, train_res, train_res, generator=g).to(device)
    y_train = torch.randint(0, 1000, (train_batch,), generator=g).to(device)

    set_active_ms, set_active_ofa_ms, evals, trains = [], [], [], []
    for arch in archs:
        arch = space.validate(arch)
        ours.eval()
        set_active_ms.append(1e3 * statistics.median(timer(lambda: ours.set_active(arch)) for _ in range(3)))
        static = ours.extract(arch).eval()
        fns = {"supernet": lambda: ours(x_eval), "static": lambda: static(x_eval)}
        if theirs is not None:
            theirs.eval()
            set_active_ofa_ms.append(1e3 * timer(lambda: theirs.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])))
            their_static = theirs.get_active_subnet(preserve_weight=True).to(device).eval()
            fns.update({"ofa_supernet": lambda: theirs(x_eval), "ofa_static": lambda: their_static(x_eval)})
        with torch.no_grad():
            evals.append(interleaved(timer, fns, args.reps, args.warmup))

        if args.skip_train or len(trains) >= (args.train_archs or len(archs)):
            continue
        ours.train()
        static.train()
        fns = {"supernet": train_step(ours, x_train, y_train), "static": train_step(static, x_train, y_train)}
        if theirs is not None:
            theirs.train()
            their_static.train()
            fns.update({"ofa_supernet": train_step(theirs, x_train, y_train),
                        "ofa_static": train_step(their_static, x_train, y_train)})
        trains.append(interleaved(timer, fns, args.train_reps or args.reps, args.warmup))
        print(f"arch {len(evals)}/{len(archs)}: eval {evals[-1]['supernet'] / evals[-1]['static']:.3f} "
              f"train {trains[-1]['supernet'] / trains[-1]['static']:.3f}", file=sys.stderr, flush=True)

    result = {
        "bench": "supernet_forward", "space": args.space, "device": str(device),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "clock": timer.now.__name__ if not timer.cuda else "cuda_events",
        "threads": torch.get_num_threads(), "archs": len(archs), "reps": args.reps,
        "train_archs": len(trains), "train_reps": args.train_reps or args.reps, "quick": args.quick,
        "eval": {"batch": 1, "resolution": eval_res, **summarise(evals, "supernet", "static")},
        "set_active_ms_median": round(statistics.median(set_active_ms), 3),
        "set_active_ms_max": round(max(set_active_ms), 3),
        "ofa_package": ofa_status,
    }
    if trains:
        result["train_step"] = {"batch": train_batch, "resolution": train_res, **summarise(trains, "supernet", "static")}
    if theirs is not None:
        result["ofa_eval"] = summarise(evals, "ofa_supernet", "ofa_static")
        result["ofa_set_active_ms_median"] = round(statistics.median(set_active_ofa_ms), 3)
        if trains:
            result["ofa_train_step"] = summarise(trains, "ofa_supernet", "ofa_static")
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "supernet_forward"))
