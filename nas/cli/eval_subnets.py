"""`nas eval-subnets`: measure random subnets of a trained supernet into (arch, top-1, MACs, latency) rows."""

from __future__ import annotations

from search_spaces.errors import UserError

from . import add_command, print_json


def register(sub):
    p = add_command(
        sub, "eval-subnets",
        "Measure N random subnets of a trained supernet (held-out top-1, BatchNorm re-calibrated) and write "
        "CSV rows (arch, top1, macs, params, latency_ms_<device>) that `nas fit-predictor` reads.",
        "nas eval-subnets --ckpt runs/ps --data digits --n 200 --target x86 --out pairs.csv\n"
        "  nas eval-subnets --ckpt runs/ps --data digits --arch runs/search --out found.csv\n"
        "  nas fit-predictor --space ofa-small --data pairs.csv --out acc.json", run)
    p.add_argument("--ckpt", required=True, help="`nas train` run folder, supernet .pt, or ofa:NAME")
    p.add_argument("--data", help="digits, a .npz or DIR/CLASS/images (default: the supernet's training data)")
    p.add_argument("--n", type=int, default=200, help="number of distinct random subnets (default 200)")
    p.add_argument("--arch", action="append", default=[], metavar="RUN|FILE",
                   help="measure this arch instead of random ones: a search run folder, its result.json or "
                        "an arch JSON (repeatable)")
    p.add_argument("--top", type=int, default=1,
                   help="with --arch RUN: measure the run's K best archs (its top_k), not only the best")
    p.add_argument("--out", required=True, help="CSV to write (must not exist)")
    p.add_argument("--target", action="append", default=[], help="device to price each arch on (repeatable)")
    p.add_argument("--space", help="space name the checkpoint must belong to (default: the checkpoint's)")
    p.add_argument("--calib", type=int, help="BatchNorm calibration images per arch (default: the training run's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads of each measuring process (default 1)")
    p.add_argument("--workers", type=int, help="processes measuring archs in parallel, one torch thread each "
                                               "(default: the CPUs available)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args) -> int:
    from nas.subnets import eval_subnets

    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    print_json(eval_subnets(args.ckpt, args.data, args.n, args.out, devices=args.target, seed=args.seed,
                            space=args.space, progress=not args.quiet, calib_images=args.calib,
                            workers=args.workers, archs_from=args.arch, top=args.top,
                            threads=args.threads))
    return 0
