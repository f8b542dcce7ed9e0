"""`nas profile`: measure a space's blocks on this machine into a device profile (resumable)."""

from __future__ import annotations

from . import add_command, non_negative_int, print_json
from ._timing_args import add_plan_args, plan_of


def register(sub):
    p = add_command(
        sub, "profile",
        "Measure every distinct block of a space on this machine with ONNX Runtime into a device profile "
        "(created or extended in the user profile folder unless --out). Killed and re-run, it continues "
        "where it stopped. Then it measures --calibrate N whole networks and fits the table's calibration "
        "(what `nas calibrate` does), so the profile predicts whole networks, not sums of blocks timed alone.",
        "nas profile --device x86-2core-ort --alias x86 --space ofa --threads 2", run)
    p.add_argument("--device", required=True, help="name of the device profile to create or extend")
    p.add_argument("--alias", action="append", default=[], help="another name for the device (repeatable)")
    p.add_argument("--space", required=True, help="search space name (see nas spaces)")
    p.add_argument("--provider", default="cpu", help="execution provider: cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads on the CPU (default 2)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--precision", default="fp32", help="fp32 (default) or int8 (static QDQ quantization)")
    p.add_argument("--resolutions", type=int, nargs="+", metavar="R",
                   help="only blocks of networks at these input resolutions (default: every searched one)")
    p.add_argument("--limit", type=int, help="only the first N distinct blocks (a quick slice)")
    p.add_argument("--chunk", type=int, default=320,
                   help="blocks whose sessions are kept at once (~4 MB each; default 320)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the round orders (default 0)")
    p.add_argument("--calibrate", type=non_negative_int, default=40, metavar="N",
                   help="whole networks to measure for the calibration after the table (default 40, about "
                        "30-60 s on a 2-core CPU; 0: none, e.g. to calibrate later with `nas calibrate`); "
                        "skipped with --limit (a partial table prices no whole network)")
    add_plan_args(p, rounds=5, reps=10, warmup=2)
    p.add_argument("--out", help="folder to write <device>.yaml into (default: $HWNAS_DEVICE_DIR or "
                                 "~/.hwnas/device_profiles)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from latency_predictors.profiler import profile_space
    from latency_predictors.runtime import RuntimeSettings

    settings = RuntimeSettings(provider=args.provider, threads=args.threads, batch=args.batch,
                               precision=args.precision)
    plan = plan_of(args)
    info = profile_space(args.device, args.space, settings, plan, resolutions=args.resolutions, limit=args.limit,
                         out_dir=args.out, aliases=args.alias, chunk=args.chunk, seed=args.seed,
                         progress=not args.quiet)
    if args.calibrate and args.limit is None:
        from latency_predictors.calibrate import calibrate_device

        # A block timed alone pays its own session call and runs with warm caches; whole networks
        # differ from block sums by a host-dependent 20-35 % (docs/profiling.md), so a table without
        # its calibration would mislead every prediction until `nas calibrate` ran.
        info["calibration"] = calibrate_device(args.device, args.space, n=args.calibrate, seed=args.seed,
                                               plan=plan, resolutions=args.resolutions, out_dir=args.out,
                                               progress=not args.quiet)
    if args.json:
        print_json(info)
        return 0
    rt = info["runtime"]
    print(f"wrote {info['path']}: device {info['device']}, space {info['space']}, {info['blocks']} distinct blocks "
          f"({info['measured']} measured now, {info['reused']} already there) in {info['wall_s']:.1f} s "
          f"({info['total_wall_s']:.1f} s over all runs)")
    print(f"  {rt['engine']} {rt['version']} {rt['execution_provider']}, threads {rt['threads']}, batch {rt['batch']}, "
          f"{rt['precision']}; median block spread between rounds {info['median_spread_pct']} %, "
          f"median even/odd-round repeat {info['median_repeat_pct']} %")
    probe = info.get("probe")
    if probe and probe.get("repeat_pct") is not None:
        print(f"  speed probe of this host (compared wherever the profile is used): {probe['rounds']} rounds at "
              f"{probe['threads']} thread, even/odd rounds agree within {probe['repeat_pct']:.2f} %")
    cal = info.get("calibration")
    if cal:
        print(f"  calibrated on {cal['n']} whole networks: scale {cal['scale']:.4f}, offset {cal['offset_ms']:.3f} ms; "
              f"fit MAPE {cal['fit_mape_pct']:.2f} %, leave-one-out MAPE {cal['loo_mape_pct']:.2f} %; whole networks "
              f"{cal['raw_gap_pct']:+.1f} % vs raw block sums")
    return 0
