"""`nas measure`: whole-network latency on this machine under a device profile's runtime settings."""

from __future__ import annotations

from . import add_command, print_json
from ._timing_args import add_plan_args, plan_of


def register(sub):
    p = add_command(sub, "measure",
                    "Time whole networks on this machine with a measured device profile's settings (threads, "
                    "batch, precision, provider), next to the profile's prediction.",
                    "nas measure --device x86 --space ofa --arch archs.json", run)
    p.add_argument("--device", required=True, help="device name or alias of a measured profile (see nas devices)")
    p.add_argument("--space", help="search space name (see nas spaces); default: the space the arch file names")
    p.add_argument("--arch", required=True, help="JSON file holding one arch or a list of archs")
    add_plan_args(p, rounds=5, reps=10, warmup=2)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from latency_predictors.measure import measure_device
    from nas.archfile import read_arch_file, space_of

    af = read_arch_file(args.arch)
    res = measure_device(args.device, space_of(af, args.space), af.archs, plan_of(args), progress=not args.quiet)
    rows = [{"arch": a, "measured_ms": round(float(m), 4), "predicted_ms": None if p != p else round(float(p), 4),
             "spread_pct": round(float(s), 2), "round_ms": [round(float(v), 4) for v in r]}
            for a, m, p, s, r in zip(res["archs"], res["ms"], res["predicted_ms"], res["spread_pct"], res["round_ms"])]
    if args.json:
        print_json({"device": res["device"], "space": res["space"], "engine": res["engine"],
                    "execution_provider": res["execution_provider"], "settings": res["settings"],
                    "plan": res["plan"], "load_avg": res["load_avg"], "archs": rows})
        return 0
    s = res["settings"]
    print(f"device {res['device']}, space {res['space']}: {res['engine']} {res['execution_provider']}, threads "
          f"{s['threads']}, batch {s['batch']}, {s['precision']}; fastest run of {res['plan']['rounds']} rounds")
    print(f"{'#':>4}  {'measured_ms':>11}  {'predicted_ms':>12}  {'spread_%':>8}")
    for i, r in enumerate(rows):
        pred = f"{r['predicted_ms']:.3f}" if r["predicted_ms"] is not None else "-"
        print(f"{i:>4}  {r['measured_ms']:>11.3f}  {pred:>12}  {r['spread_pct']:>8.2f}")
    return 0
