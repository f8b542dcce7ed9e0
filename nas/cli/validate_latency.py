"""`nas validate-latency`: a device profile's predictions against random networks measured whole here."""

from __future__ import annotations

from . import add_command, non_negative_int, print_json
from ._timing_args import add_plan_args, add_recalibrate_arg, plan_of


def register(sub):
    p = add_command(sub, "validate-latency",
                    "Measure n random networks whole on this machine and compare them with the profile's "
                    "predictions: MAPE, max error, share within +-5/10 %, Spearman, Kendall, each next to the "
                    "measurement's noise floor; JSON + scatter PNG; figures stored in the profile.",
                    "nas validate-latency --device x86 --space ofa --n 100 --seed 0 --out reports/", run)
    p.add_argument("--device", required=True, help="device name or alias of a measured profile")
    p.add_argument("--space", required=True, help="search space name")
    p.add_argument("--n", type=int, default=100, help="networks to measure (default 100)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed (a stream apart from calibration's; default 0)")
    p.add_argument("--resolutions", type=int, nargs="+", metavar="R", help="only networks at these resolutions")
    add_plan_args(p, rounds=5, reps=10, warmup=2)
    p.add_argument("--out", metavar="DIR", help="folder for every output: latency-validation-DEVICE-SPACE.json "
                                                "and .png (default: the current folder)")
    p.add_argument("--report", help="JSON report path (default DIR/latency-validation-DEVICE-SPACE.json)")
    p.add_argument("--plot", help="scatter PNG path (default DIR/latency-validation-DEVICE-SPACE.png)")
    p.add_argument("--no-store", action="store_true", help="do not store the figures in the profile")
    p.add_argument("--profile-dir", metavar="DIR",
                   help="validate and update DIR/<device>.yaml instead of the registered profile")
    add_recalibrate_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from latency_predictors.validation import validate_device

    info = validate_device(args.device, args.space, n=args.n, seed=args.seed, plan=plan_of(args),
                           resolutions=args.resolutions, json_path=args.report, png_path=args.plot,
                           report_dir=args.out or ".", store=not args.no_store, out_dir=args.profile_dir,
                           progress=not args.quiet, recalibrate=args.recalibrate)
    if args.json:
        print_json(info)
        return 0
    f = info
    where = f", {f['host']['label']}" if f.get("host") else ""
    print(f"{f['device']}/{f['space']}{where}: {f['n']} random networks measured whole (load average "
          f"{f['load_avg'][0]:.2f}), measurement noise floor in brackets")
    print(f"  MAPE            {f['mape_pct']:7.2f} %   (noise {f['noise_mape_pct']:.2f} %; raw block sum "
          f"{f['raw_block_sum_mape_pct']:.2f} %)")
    if "additive_mape_pct" in f:
        print(f"  MAPE, additive per-op model {f['additive_mape_pct']:.2f} % (calibrated; raw sum "
              f"{f['additive_raw_mape_pct']:.2f} %) vs {f['mape_pct']:.2f} % pricing whole cells")
    print(f"  max error       {f['max_abs_err_pct']:7.2f} %   (noise {f['noise_max_abs_err_pct']:.2f} %)")
    print(f"  within +-5 %    {f['within_5_pct']:7.1f} %   (noise {f['noise_within_5_pct']:.1f} %)")
    print(f"  within +-10 %   {f['within_10_pct']:7.1f} %   (noise {f['noise_within_10_pct']:.1f} %)")
    print(f"  Spearman        {f['spearman']:7.4f}     (noise {f['noise_spearman']})")
    print(f"  Kendall         {f['kendall_tau']:7.4f}     (noise {f['noise_kendall_tau']})")
    print(f"  median spread of a network's round values {f['noise_median_round_spread_pct']} %")
    print(f"  wrote {f.get('json')}, {f.get('plot')}" + (f", {f['profile']}" if "profile" in f else "")
          + (f" (not stored in the profile: {f['not_stored']})" if "not_stored" in f else ""))
    return 0
