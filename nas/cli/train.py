"""`nas train`: train a weight-shared supernet (progressive shrinking or the sandwich rule)."""

from __future__ import annotations

import sys

from . import add_command, print_json

EXAMPLE = ("nas train --space ofa-small --data digits --plan progressive --epochs 30 --out runs/ps\n"
           "  nas train --plan sandwich --epochs 12 --out runs/sw          # BigNAS sandwich rule\n"
           "  nas train --out runs/ps --resume                             # continue after kill -9\n"
           "  nas train --dump-plan my_plan.yaml; nas train --plan my_plan.yaml --out runs/mine\n"
           "  nas train --address 10.0.0.1:6379 --workers 4 --storage /shared/ray --out runs/ddp")


def register(sub):
    p = add_command(sub, "train", "Train a supernet on image data (ImageFolder, .npz or digits), resumable.",
                    EXAMPLE, run)
    p.add_argument("--out", help="run folder (must be new or empty unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--space", default="ofa-small", help="ofa-small (default), ofa, ofa-w1.0 or single_path")
    p.add_argument("--data", default="digits",
                   help="digits (scikit-learn's, offline), a .npz with images and labels, or DIR/CLASS/images")
    p.add_argument("--plan", default="progressive", help="progressive, sandwich or a plan YAML (see --dump-plan)")
    p.add_argument("--dump-plan", metavar="PATH", help="write the --plan as editable YAML to PATH and exit")
    p.add_argument("--epochs", type=int, default=30, help="total epochs, spread over the plan's phases")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.2, help="base learning rate (phases scale it)")
    p.add_argument("--weight-decay", type=float, default=5e-5)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=5.0, help="max gradient norm; 0 disables")
    p.add_argument("--kd-weight", type=float, default=1.0, help="weight of the teacher's soft loss (progressive)")
    p.add_argument("--held-out", type=float, default=0.2, help="fraction held out for accuracy (stratified)")
    p.add_argument("--image-size", type=int, help="storage size of ImageFolder images (default 64)")
    p.add_argument("--resolution", type=int, help="input size for spaces without a resolution choice")
    p.add_argument("--crop-scale", type=float, nargs=2, default=(0.5, 1.0), metavar=("LO", "HI"))
    p.add_argument("--flip", action="store_true", help="random horizontal flips (not for digits)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=1, help="evaluate largest/smallest every N epochs")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (AMP on CUDA)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--address", help="Ray cluster HEAD:PORT: data-parallel training on Ray Train")
    p.add_argument("--workers", type=int, default=2, help="Ray Train workers (with --address)")
    p.add_argument("--storage", help="Ray Train storage folder for checkpoints (with --address)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from search_spaces.errors import UserError

    from nas.train import Stopped, make_config, train_supernet
    from nas.train.plans import load_plan, plan_yaml

    if args.dump_plan:
        from nas.io import atomic_write_text

        atomic_write_text(args.dump_plan, plan_yaml(load_plan(args.plan)))
        print(f"wrote {args.dump_plan}")
        return 0
    if not args.out:
        raise UserError("--out is required (the run folder)")
    from pathlib import Path

    from nas.train.checkpoint import CHECKPOINT_FILE

    if args.resume and not (Path(args.out) / CHECKPOINT_FILE).is_file():
        raise UserError(f"--resume: {args.out!r} holds no {CHECKPOINT_FILE}; it is not a `nas train` run folder")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = make_config(space=args.space, data=args.data, plan=args.plan, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                      warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
                      grad_clip=args.grad_clip or None, kd_weight=args.kd_weight, held_out=args.held_out,
                      image_size=args.image_size, resolution=args.resolution, crop_scale=tuple(args.crop_scale),
                      flip=args.flip, seed=args.seed, eval_every=args.eval_every, device=args.device)
    if args.address:
        from nas.train.distributed import train_on_ray

        summary = train_on_ray(cfg, args.out, args.address, args.workers, args.storage, resume=args.resume,
                               quiet=args.quiet)
    else:
        if args.storage:
            raise UserError("--storage is for Ray runs; give --address HEAD:PORT too")
        try:
            summary = train_supernet(cfg, args.out, resume=args.resume, quiet=args.quiet)
        except Stopped as e:
            print(f"nas train: {e}", file=sys.stderr)
            return 143
    print_json(summary)
    return 0
