"""`nas import-table`: public latency tables (Once-for-All, ProxylessNAS, Single-Path NAS) -> a device profile."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    from latency_predictors.importers import FORMATS

    p = add_command(
        sub, "import-table",
        "Import public latency tables into a device profile (written to the user profile folder unless --out).",
        "nas import-table --format ofa note10_*_lookup_table.yaml --device note10", run)
    p.add_argument("--format", required=True, choices=list(FORMATS),
                   help="ofa: per-resolution YAML tables; proxylessnas: mobile_trim.yaml; "
                        "single-path: per-layer runtime JSON")
    p.add_argument("files", nargs="+", metavar="FILE", help="table file(s) of that format")
    p.add_argument("--device", required=True, help="name of the device profile to write or extend")
    p.add_argument("--alias", action="append", default=[], help="another name for the device (repeatable)")
    p.add_argument("--out", help="folder to write <device>.yaml into (default: $HWNAS_DEVICE_DIR or "
                                 "~/.hwnas/device_profiles)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from nas.latency import import_table

    info = import_table(args.format, args.files, args.device, out_dir=args.out, aliases=args.alias)
    if args.json:
        print_json(info)
    else:
        spaces = ", ".join(f"{s} ({n} entries)" for s, n in info["spaces"].items())
        print(f"wrote {info['path']}: device {info['device']}, {spaces}")
    return 0
