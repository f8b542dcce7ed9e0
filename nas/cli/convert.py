"""`nas convert`: Once-for-All net.config layer lists <-> hwnas archs."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    p = add_command(
        sub, "convert",
        "Convert a Once-for-All net.config (or a folder with net.config and run.config) into an arch, "
        "or an arch file into a net.config (with --space).",
        "nas convert ofa_nets/flops-389M/ --out arch.json", run)
    p.add_argument("source", help="net.config file, a folder holding net.config [+ run.config], or an arch JSON")
    p.add_argument("--resolution", type=int, help="image size when converting a net.config without run.config")
    p.add_argument("--space", help="the space to read the net.config in (default: every space that reads one), "
                                   "or of an arch file that does not name its space (e.g. ofa)")
    p.add_argument("--out", help="write the result here (atomically) instead of printing it")


def run(args) -> int:
    from nas.api import convert
    from nas.io import atomic_write_json

    result = convert(args.source, resolution=args.resolution, space=args.space)
    if args.out:
        atomic_write_json(args.out, result["file"])
        params = " with its own widths (space_params)" if result.get("space_params") else ""
        print(f"wrote {args.out} ({result['kind']}, space {result['space']}{params})")
    else:
        print_json(result["file"])
    return 0
