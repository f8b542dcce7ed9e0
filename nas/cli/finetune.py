"""`nas finetune`: train the arch a search found as a plain network, re-measure it, export it."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    p = add_command(
        sub, "finetune",
        "Extract the arch a search found (RUN_DIR, its result.json or an arch JSON) from the supernet with its "
        "inherited weights, fine-tune it on the training split, re-measure held-out top-1 and export "
        "model.onnx (checked in ONNX Runtime) and model.pt into --out.",
        "nas finetune runs/search-ofa-small --ckpt runs/ps --data digits --epochs 10 --out runs/ft", run)
    p.add_argument("source", metavar="RUN_DIR|result.json", help="a `nas search` run folder, result.json or arch JSON")
    p.add_argument("--ckpt", required=True, help="`nas train` run folder, supernet .pt, or ofa:NAME")
    p.add_argument("--data", help="digits, a .npz or DIR/CLASS/images (default: the supernet's training data)")
    p.add_argument("--out", required=True, help="folder for model.onnx, model.pt and result.json (new or empty)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01, help="initial learning rate (cosine to 0)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print result.json")


def run(args) -> int:
    from nas.subnets import finetune

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    r = finetune(args.source, args.ckpt, args.data, args.out, epochs=args.epochs, lr=args.lr,
                 batch_size=args.batch_size, seed=args.seed, progress=not args.quiet)
    if args.json:
        print_json(r)
        return 0
    print(f"held-out top-1 ({r['measured_on']}): inherited {100 * r['held_out_top1_inherited']:.2f}% -> "
          f"fine-tuned {100 * r['held_out_top1']:.2f}% (epoch {r['kept_epoch']}); "
          f"ONNX Runtime {100 * r['held_out_top1_onnxruntime']:.2f}%")
    print(f"wrote {r['onnx']}, {r['pt']} and {args.out}/result.json")
    return 0
