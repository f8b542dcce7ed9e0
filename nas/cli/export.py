"""`nas export`: an arch as ONNX (checked in ONNX Runtime) or a torch state dict."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    p = add_command(sub, "export", "Export an arch as ONNX (verified in ONNX Runtime) or .pt (state dict + arch).",
                    "nas export --arch arch.json --out model.onnx   (--space ofa for a bare arch)", run)
    p.add_argument("--space", help="search space name (see nas spaces); default: the space the arch file names")
    p.add_argument("--arch", required=True, help="JSON file holding one arch")
    p.add_argument("--out", required=True, help="output path ending in .onnx or .pt")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from nas.archfile import read_arch_file, space_of
    from nas.export import export
    from search_spaces.errors import UserError

    af = read_arch_file(args.arch)
    if len(af.archs) != 1:
        raise UserError(f"arch file {args.arch!r} holds {len(af.archs)} archs; export takes exactly one")
    info = export(space_of(af, args.space), af.archs[0], args.out)
    if args.json:
        print_json(info)
    else:
        check = f", ONNX Runtime matches torch to {info['ort_max_abs_diff']:.1e}" if "ort_max_abs_diff" in info else ""
        print(f"wrote {info['path']}{check}")
    return 0
