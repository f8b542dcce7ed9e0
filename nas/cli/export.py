"""`nas export`: an arch as ONNX (checked in ONNX Runtime) or a torch state dict."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    p = add_command(sub, "export", "Export an arch as ONNX (verified in ONNX Runtime) or .pt (state dict + arch).",
                    "nas export --space ofa --arch arch.json --out model.onnx", run)
    p.add_argument("--space", required=True, help="search space name (see nas spaces)")
    p.add_argument("--arch", required=True, help="JSON file holding one arch")
    p.add_argument("--out", required=True, help="output path ending in .onnx or .pt")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from nas.export import export
    from nas.io import read_archs
    from search_spaces.errors import UserError

    archs = read_archs(args.arch)
    if len(archs) != 1:
        raise UserError(f"arch file {args.arch!r} holds {len(archs)} archs; export takes exactly one")
    info = export(args.space, archs[0], args.out)
    if args.json:
        print_json(info)
    else:
        check = f", ONNX Runtime matches torch to {info['ort_max_abs_diff']:.1e}" if "ort_max_abs_diff" in info else ""
        print(f"wrote {info['path']}{check}")
    return 0
