"""Options shared by the commands that time networks on this machine (profile, measure, calibrate, validate)."""

from __future__ import annotations


def add_plan_args(p, rounds: int, reps: int, warmup: int) -> None:
    p.add_argument("--rounds", type=int, default=rounds,
                   help=f"interleaved shuffled rounds; each round keeps its fastest run, and the fastest round is kept (default {rounds})")
    p.add_argument("--reps", type=int, default=reps, help=f"timed runs per item per round (default {reps})")
    p.add_argument("--warmup", type=int, default=warmup, help=f"untimed runs before them (default {warmup})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def plan_of(args):
    from latency_predictors.timing import RoundPlan

    return RoundPlan(rounds=args.rounds, reps=args.reps, warmup=args.warmup)


def add_recalibrate_arg(p) -> None:
    p.add_argument("--recalibrate", choices=["auto", "off"], default=None,
                   help="a device measured on another host (CPU, ISA, cores, ONNX Runtime or speed probe differ): "
                        "auto calibrates it here first on a small sample of whole networks (under a minute; cached "
                        "per host in the user folder), off predicts with its table as measured there and flags it "
                        "(default: auto, or $HWNAS_RECALIBRATE)")
