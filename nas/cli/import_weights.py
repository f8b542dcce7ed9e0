"""`nas import-weights`: convert Once-for-All's released supernet weights into an hwnas supernet file."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    p = add_command(
        sub, "import-weights",
        "Convert a Once-for-All MobileNetV3 supernet (a downloaded file, or ofa:NAME[@SHA256] fetched into the "
        "user cache) into an hwnas supernet checkpoint for --accuracy supernet:CKPT.",
        "nas import-weights --format ofa ofa_mbv3_d234_e346_k357_w1.2 --space ofa --out ofa_w12.pt\n"
        "  nas import-weights ofa:ofa_mbv3_d234_e346_k357_w1.0@<sha256> --out ofa_w10.pt", run)
    p.add_argument("src", metavar="CKPT", help="Once-for-All supernet file, or ofa:NAME[@SHA256]")
    p.add_argument("--format", choices=["ofa"], help="the file's format (default: detected)")
    p.add_argument("--space", help="ofa (width 1.2) or ofa-w1.0 (default: from the file's widths)")
    p.add_argument("--out", required=True, help="hwnas supernet file to write (must not exist)")


def run(args) -> int:
    from nas.ofa_weights import import_weights

    print_json(import_weights(args.src, args.out, space=args.space, fmt=args.format))
    return 0
