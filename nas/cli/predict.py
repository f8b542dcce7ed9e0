"""`nas predict`: latency on a device, MACs and params of the archs in a file."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    p = add_command(sub, "predict", "Predict latency on a device, and count MACs and params, of archs in a file.",
                    "nas predict --space ofa --device note10 --arch archs.json", run)
    p.add_argument("--space", required=True, help="search space name (see nas spaces)")
    p.add_argument("--device", required=True, help="device name or alias (see nas devices)")
    p.add_argument("--arch", required=True, help="JSON file holding one arch or a list of archs")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from nas.io import read_archs
    from nas.latency import predict_costs

    result = predict_costs(args.space, args.device, read_archs(args.arch))
    if args.json:
        print_json(result)
        return 0
    print(f"device {result['device']}, space {result['space']}, latency source: {result['source']}")
    print(f"{'#':>4}  {'latency_ms':>10}  {'MMACs':>8}  {'Mparams':>8}")
    for i, row in enumerate(result["archs"]):
        macs = "-" if row["macs"] is None else f"{row['macs'] / 1e6:.1f}"
        params = "-" if row["params"] is None else f"{row['params'] / 1e6:.2f}"
        print(f"{i:>4}  {row['latency_ms']:>10.3f}  {macs:>8}  {params:>8}")
    return 0
