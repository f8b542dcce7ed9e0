"""Data-parallel supernet training on Ray Train (TorchTrainer; gloo on CPU, NCCL on GPU).

Every worker runs the same ``Trainer`` on its shard of each global batch. The subnets of a step
are the same on every worker (the same seeds), so after the backward passes the gradients are
averaged with one all-reduce of the flattened gradients and every worker takes the same step:
DistributedDataParallel's arithmetic, done by hand because a supernet step runs several
subnets and leaves different parameters unused each time, which DDP's hooks do not allow
without ``find_unused_parameters`` and its extra pass. BatchNorm statistics stay per worker
(as in DDP without SyncBN); rank 0 writes the checkpoints, which Ray Train keeps in ``--storage``.
The run's final checkpoint is copied into ``--out`` in the single-machine layout, so
``nas train --resume --out OUT`` continues it on one machine.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from search_spaces.errors import UserError

from .checkpoint import CHECKPOINT_FILE, load_training_state
from .config import TrainConfig


def _all_reduce_mean(params: list[torch.Tensor]) -> None:
    import torch.distributed as dist

    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    off = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[off:off + n].view_as(g))
        off += n


def _worker(config: dict) -> None:
    import ray.train

    from .plans import plan_from_dict
    from .trainer import Dist, Trainer

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cfg = TrainConfig.model_validate(config["cfg"])
    out = Path(tempfile.mkdtemp(prefix=f"hwnas-train-w{rank}-"))

    def on_epoch(path, rec):
        metrics = {k: v for k, v in rec.items() if isinstance(v, (int, float))}
        if path is not None:
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(path.parent)))
        else:
            ray.train.report(metrics)

    dist = Dist(rank, world, grad_sync=_all_reduce_mean if world > 1 else None, on_epoch=on_epoch)
    st = None
    start = ray.train.get_checkpoint()
    if start is not None:  # Ray restarted the run: its latest checkpoint
        with start.as_directory() as d:
            st = load_training_state(Path(d) / CHECKPOINT_FILE)
    elif config.get("resume_from"):
        st = load_training_state(config["resume_from"])
    plan = plan_from_dict(st["plan"] if st else config["plan"])
    trainer = Trainer(cfg, out, plan, dist=dist, quiet=True)
    if st is not None:
        trainer.load_state(st)
    trainer.run()
    shutil.rmtree(out, ignore_errors=True)


def train_on_ray(cfg: TrainConfig, out: str | Path, address: str, workers: int, storage: str | None,
                 resume: bool = False, quiet: bool = False) -> dict:
    """Train on ``workers`` Ray Train workers of the cluster at ``address``; the result lands in ``out``."""
    from nas.sweep.runner import RayContext

    from .plans import load_plan
    from .trainer import Trainer, finish

    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    out = Path(out).resolve()
    ckpt = out / CHECKPOINT_FILE
    resume_from = None
    if resume and ckpt.exists():
        st = load_training_state(ckpt)
        cfg = TrainConfig.model_validate(st["config"])
        plan = st["plan"]
        resume_from = str(ckpt)
    else:
        if out.exists() and any(out.iterdir()):
            raise UserError(f"--out {str(out)!r} is not empty; pass --resume to continue the run there, "
                            "or choose a new folder")
        plan = load_plan(cfg.plan).model_dump()
    from nas.data import load_dataset

    load_dataset(cfg.data, cfg.image_size)  # bad data: one line here, not a failure inside every worker
    out.mkdir(parents=True, exist_ok=True)
    storage_path = Path(storage).resolve() if storage else out / "ray"
    storage_path.mkdir(parents=True, exist_ok=True)
    with RayContext(address):
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        use_gpu = cfg.device == "cuda"
        trainer = TorchTrainer(
            _worker, train_loop_config={"cfg": cfg.model_dump(), "plan": plan, "resume_from": resume_from},
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
            run_config=RunConfig(storage_path=str(storage_path), name=f"hwnas-train-{out.name}"))
        try:
            result = trainer.fit()
        except Exception as e:  # noqa: BLE001 - Ray wraps worker errors; show the first line
            raise UserError(f"Ray Train run failed: {(str(e).strip().splitlines() or [type(e).__name__])[-1][:300]}") from None
        if result.checkpoint is None:
            raise UserError("Ray Train run finished without a checkpoint")
        with result.checkpoint.as_directory() as d:
            shutil.copyfile(Path(d) / CHECKPOINT_FILE, out / (CHECKPOINT_FILE + ".tmp"))
        (out / (CHECKPOINT_FILE + ".tmp")).replace(ckpt)
    st = load_training_state(ckpt)
    from .plans import plan_from_dict

    local = Trainer(TrainConfig.model_validate(st["config"]), out, plan_from_dict(st["plan"]), quiet=True)
    local.load_state(st)
    summary = local.summary()
    summary.update({"workers": workers, "ray_storage": str(storage_path)})
    finish(local, summary)
    return summary
