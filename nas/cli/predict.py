"""`nas predict`: latency on a device, MACs and params of the archs in a file."""

from __future__ import annotations

from . import add_command, print_json
from ._timing_args import add_recalibrate_arg


def register(sub):
    p = add_command(sub, "predict", "Predict latency on a device, and count MACs and params, of archs in a file.",
                    "nas predict --device note10 --arch archs.json   (--space ofa for a bare arch)", run)
    p.add_argument("--space", help="search space name (see nas spaces); default: the space the arch file names")
    p.add_argument("--device", required=True, help="device name or alias (see nas devices)")
    p.add_argument("--arch", required=True, help="JSON file holding one arch or a list of archs")
    add_recalibrate_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from nas.archfile import read_arch_file, space_of
    from nas.latency import predict_costs

    af = read_arch_file(args.arch)
    result = predict_costs(space_of(af, args.space), args.device, af.archs, recalibrate=args.recalibrate)
    if args.json:
        print_json(result)
        return 0
    params = f" {result['space_params']}" if result.get("space_params") else ""
    host = f" ({result['host']['label']})" if result.get("host") else ""
    print(f"device {result['device']}, space {result['space']}{params}, latency source: {result['source']}{host}")
    print(f"{'#':>4}  {'latency_ms':>10}  {'MMACs':>8}  {'Mparams':>8}")
    for i, row in enumerate(result["archs"]):
        macs = "-" if row["macs"] is None else f"{row['macs'] / 1e6:.1f}"
        params = "-" if row["params"] is None else f"{row['params'] / 1e6:.2f}"
        note = "  (modelled)" if row["latency_source"] != result["source"] else ""
        print(f"{i:>4}  {row['latency_ms']:>10.3f}  {macs:>8}  {params:>8}{note}")
    return 0
