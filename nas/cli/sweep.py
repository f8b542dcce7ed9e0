"""`nas sweep`: many searches from a sweep file on Ray Tune, resumable, local or on a cluster."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    p = add_command(
        sub, "sweep",
        "Run a grid (and random draws) of searches from a sweep.yaml on Ray Tune: a summary CSV, a table "
        "and accuracy-vs-latency plots; resumable after the driver is killed; local or on a Ray cluster.",
        "nas sweep experiments/sweeps/strategies_small.yaml --out runs/sweep1\n"
        "  nas sweep --resume runs/sweep1\n"
        "  nas sweep sweep.yaml --address 10.0.0.5:6379 --storage /mnt/shared/sweeps", run)
    p.add_argument("sweep", nargs="?", help="the sweep file (YAML; see docs/sweeps.md)")
    p.add_argument("--out", help="run folder (default runs/sweep-NAME-TIMESTAMP)")
    p.add_argument("--address", help="an existing Ray cluster: auto or HOST:PORT (default: a local Ray for this command)")
    p.add_argument("--storage", help="where Tune keeps trials and checkpoints: a path every node reaches or an "
                                     "object-store URL (default: the run folder)")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (default 2; ignored with --address)")
    p.add_argument("--resume", metavar="RUN_DIR", help="finish a stopped sweep; finished trials are not run again")
    p.add_argument("--quiet", action="store_true", help="no per-trial lines")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of the table")


def run(args) -> int:
    from nas.sweep import resume_sweep, run_sweep
    from search_spaces.errors import UserError

    quiet = args.quiet or args.json
    if args.resume:
        if args.sweep or args.out or args.storage:
            raise UserError("--resume RUN_DIR takes the sweep file, --out and --storage from the run folder; "
                            "give none of them")
        summary = resume_sweep(args.resume, address=args.address, cpus=args.cpus, quiet=quiet)
    else:
        if not args.sweep:
            raise UserError("give a sweep file (e.g. experiments/sweeps/strategies_small.yaml) or --resume RUN_DIR")
        summary = run_sweep(args.sweep, args.out, address=args.address, storage=args.storage, cpus=args.cpus,
                            quiet=quiet)
    if args.json:
        print_json(summary)
    bad = [r["trial"] for r in summary["rows"] if r["status"] != "TERMINATED"]
    if bad:
        import sys

        print(f"nas sweep: {len(bad)} trial(s) did not finish: {', '.join(bad)}; rerun with --resume "
              f"{summary['run_dir']}", file=sys.stderr)
        return 1
    return 0
