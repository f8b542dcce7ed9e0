"""`nas calibrate`: fit a measured profile's calibration (scale, offset) on random whole networks."""

from __future__ import annotations

from . import add_command, non_negative_int, print_json
from ._timing_args import add_plan_args, plan_of


def register(sub):
    p = add_command(sub, "calibrate",
                    "Measure N random whole networks and fit the profile's calibration for the space "
                    "(latency = scale * sum(blocks) + offset, a robust relative-error fit).",
                    "nas calibrate --device x86 --space ofa --n 60 --out reports/", run)
    p.add_argument("--device", required=True, help="device name or alias of a measured profile")
    p.add_argument("--space", required=True, help="search space name")
    p.add_argument("--n", type=int, default=60, help="networks to measure (default 60)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed (a stream apart from validation's; default 0)")
    p.add_argument("--resolutions", type=int, nargs="+", metavar="R", help="only networks at these resolutions")
    add_plan_args(p, rounds=5, reps=10, warmup=2)
    p.add_argument("--out", metavar="DIR", help="folder for the report (calibration-DEVICE-SPACE.json); the "
                                                "calibration itself goes where nas predict reads it")
    p.add_argument("--profile-dir", metavar="DIR",
                   help="use and update DIR/<device>.yaml instead of the registered profile (for maintainers "
                        "updating a profile file; nas predict reads it only when DIR is $HWNAS_DEVICE_DIR)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from latency_predictors.calibrate import calibrate_device

    info = calibrate_device(args.device, args.space, n=args.n, seed=args.seed, plan=plan_of(args),
                            resolutions=args.resolutions, out_dir=args.profile_dir, report_dir=args.out,
                            progress=not args.quiet)
    if args.json:
        print_json(info)
        return 0
    where = ("this host's calibration cache (the profile was measured on another host)"
             if info["stored"] != "profile" else "the profile")
    print(f"wrote {info['path']} ({where}): {info['device']}/{info['space']} calibration scale {info['scale']:.4f}, "
          f"offset {info['offset_ms']:.3f} ms from {info['n']} networks")
    print(f"  fit MAPE {info['fit_mape_pct']:.2f} %, leave-one-out MAPE {info['loo_mape_pct']:.2f} %; whole networks "
          f"{info['raw_gap_pct']:+.1f} % vs raw block sums; median network spread between rounds "
          f"{info['median_net_spread_pct']} %, even/odd repeat {info['median_net_repeat_pct']} %")
    if info.get("report"):
        print(f"  report: {info['report']}")
    return 0
