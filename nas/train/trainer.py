"""Supernet training: the plan's phases, epochs and steps, evaluation, logs and exact resume.

``train_supernet(config, out)`` runs a whole plan (progressive shrinking or the sandwich rule) on
one machine; ``Trainer`` is the reusable loop (the Ray Train workers run the same one with a
gradient all-reduce and a shard of each batch). Each epoch ends with an atomic checkpoint, a
JSON log line and the loss / held-out accuracy PNG; SIGTERM saves a checkpoint mid-epoch.

Determinism: the data order of epoch e comes from a generator seeded by (seed, e); augmentation
and subnet sampling from one generator and dropout from torch's global RNG, whose states go
into every checkpoint. A run stopped at any checkpoint and resumed ends with the same weights.
"""

from __future__ import annotations

import copy
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nas.data import BatchTransform, ImageDataset, load_dataset, split_held_out
from search_spaces import get_space
from search_spaces.errors import UserError
from search_spaces.ofa.supernet import recalibrate_bn

from ..io import atomic_write_json
from .checkpoint import CHECKPOINT_FILE, load_training_state, save_training_state
from .config import TrainConfig
from .plans import Phase, Plan, load_plan, plan_from_dict, plan_yaml, scale_epochs
from .step import StepOptions, supernet_step
from .subnets import SortsChannels, sampler_for


class Stopped(Exception):
    """Training stopped by SIGTERM/SIGINT after writing a checkpoint."""

    def __init__(self, path: Path):
        super().__init__(f"stopped; checkpoint written to {path} (continue with --resume)")
        self.path = path


@dataclass
class Dist:
    """Data parallelism: this worker's rank, the world size and a gradient all-reduce."""

    rank: int = 0
    world: int = 1
    grad_sync: Callable[[list[torch.Tensor]], None] | None = None
    on_epoch: Callable[[Path | None, dict], None] | None = None  # every worker, after each epoch

    @property
    def main(self) -> bool:
        return self.rank == 0


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available; use --device cpu")
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class Progress:
    """A one-line progress bar on stderr; the ETA weighs steps by the forward passes they run."""

    total_units: float
    quiet: bool = False
    start: float = field(default_factory=time.perf_counter)
    done_units: float = 0.0
    _last: float = 0.0

    def update(self, units: float, text: str) -> None:
        self.done_units += units
        now = time.perf_counter()
        tty = sys.stderr.isatty()
        gap = 0.5 if tty else 10.0  # a log file gets a line every 10 s, a terminal a live bar
        if self.quiet or (now - self._last < gap and self.done_units < self.total_units):
            return
        self._last = now
        el = now - self.start
        eta = el / self.done_units * max(0.0, self.total_units - self.done_units) if self.done_units else float("nan")
        frac = min(1.0, self.done_units / max(self.total_units, 1e-9))
        bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
        end = "\r" if tty else "\n"
        sys.stderr.write(f"[{bar}] {100 * frac:5.1f}% {text} | {_hms(el)} elapsed, ETA {_hms(eta)}{end}")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.quiet and sys.stderr.isatty():
            sys.stderr.write("\n")


def _hms(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Trainer:
    """One supernet, one plan, one dataset: ``run()`` trains from wherever the state says."""

    def __init__(self, cfg: TrainConfig, out: Path, plan: Plan | None = None, dist: Dist | None = None,
                 quiet: bool = False, data: ImageDataset | None = None):
        self.cfg, self.out, self.dist, self.quiet = cfg, Path(out), dist or Dist(), quiet
        self.plan = plan or load_plan(cfg.plan)
        self.phases: list[Phase] = self.plan.resolved()
        self.device = _device(cfg)
        data = data or load_dataset(cfg.data, cfg.image_size)
        self.data = data
        tr, ho = split_held_out(data.labels, cfg.held_out, cfg.seed)
        self.train_set, self.held_out = data.subset(tr), data.subset(ho)
        if len(self.train_set) < cfg.batch_size:
            raise UserError(f"{len(self.train_set)} training images are fewer than one batch of {cfg.batch_size}; "
                            "lower --batch-size")
        if cfg.batch_size % self.dist.world:
            raise UserError(f"batch size {cfg.batch_size} must divide by the {self.dist.world} workers")
        mean, std = self.train_set.mean_std()
        self.tf = BatchTransform(mean, std, tuple(cfg.crop_scale), flip=cfg.flip)
        base = get_space(cfg.space)
        from search_spaces.ofa.space import OFASpace

        if isinstance(base, OFASpace) and base.n_classes != data.n_classes:
            space = base.variant(n_classes=data.n_classes)  # the head follows the data
        else:
            space = base
        self.space = space
        n_out = getattr(space, "n_classes", None)
        if n_out is not None and n_out < data.n_classes:
            raise UserError(f"space {cfg.space!r} has {n_out} outputs but the data has {data.n_classes} classes")
        self.sampler = sampler_for(space, cfg.resolution)
        torch.manual_seed(cfg.seed)
        self.net = space.supernet(dropout=cfg.dropout).to(self.device)
        zero_init_residual_bn(self.net)
        self.teacher: torch.nn.Module | None = None
        self.epochs_per_phase = scale_epochs(self.plan, cfg.epochs)
        self.phase_start = np.concatenate([[0], np.cumsum(self.epochs_per_phase)]).astype(int).tolist()
        self.steps_per_epoch = len(self.train_set) // cfg.batch_size
        self.opts = StepOptions(cfg.label_smoothing, cfg.kd_weight, cfg.grad_clip, cfg.amp)
        self.scaler = torch.amp.GradScaler("cuda") if (cfg.amp and self.device.type == "cuda") else None
        self.optimizer = self._new_optimizer()
        self.epoch, self.step = 0, 0
        self.gen = torch.Generator().manual_seed(cfg.seed * 7919 + 1)
        self.history: list[dict] = []
        self.sums = {"loss": 0.0, "n": 0}
        self._stop = False

    # ---- state ---------------------------------------------------------------------------
    def _new_optimizer(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for name, p in self.net.named_parameters():
            # BN affine terms, biases and the kernel-transform matrices are not decayed
            (no_decay if p.ndim <= 1 or "kernel_transform" in name else decay).append(p)
        c = self.cfg
        return torch.optim.SGD([{"params": decay, "weight_decay": c.weight_decay},
                                {"params": no_decay, "weight_decay": 0.0}],
                               lr=c.lr, momentum=c.momentum, nesterov=c.nesterov and c.momentum > 0)

    def state(self) -> dict:
        return {"config": self.cfg.model_dump(), "plan": self.plan.model_dump(), "space": self.space.name,
                "space_params": _space_params(self.space),
                "n_classes": self.data.n_classes, "classes": list(self.data.classes),
                "supernet": self.net.state_dict(),
                "teacher": None if self.teacher is None else self.teacher.state_dict(),
                "teacher_arch": getattr(self, "teacher_arch", None),
                "optimizer": self.optimizer.state_dict(),
                "scaler": None if self.scaler is None else self.scaler.state_dict(),
                "position": {"epoch": self.epoch, "step": self.step, "epochs": self.cfg.epochs},
                "rng": {"torch": torch.get_rng_state(), "sampling": self.gen.get_state()},
                "history": self.history, "sums": dict(self.sums)}

    def load_state(self, st: dict) -> None:
        self.net.load_state_dict(st["supernet"])
        if st.get("teacher") is not None:
            self.teacher_arch = st["teacher_arch"]
            self.teacher = self.net.extract(self.teacher_arch).eval()
            self.teacher.load_state_dict(st["teacher"])
            self.teacher.requires_grad_(False)
        self.optimizer.load_state_dict(st["optimizer"])
        if self.scaler is not None and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.epoch, self.step = int(st["position"]["epoch"]), int(st["position"]["step"])
        torch.set_rng_state(st["rng"]["torch"])
        self.gen.set_state(st["rng"]["sampling"])
        self.history = list(st["history"])
        self.sums = dict(st["sums"])

    def save(self) -> Path | None:
        if not self.dist.main:
            return None
        return save_training_state(self.state(), self.out / CHECKPOINT_FILE)

    # ---- plan position -------------------------------------------------------------------
    def phase_index(self, epoch: int) -> int:
        return int(np.searchsorted(self.phase_start, epoch, side="right") - 1)

    def lr_at(self, phase_i: int, epoch: int, step: int) -> float:
        """Cosine decay over the phase after a linear warm-up (when the phase has one)."""
        p = self.phases[phase_i]
        spe = self.steps_per_epoch
        t = (epoch - self.phase_start[phase_i]) * spe + step
        total = self.epochs_per_phase[phase_i] * spe
        warm = min(int(round(self.cfg.warmup_epochs * spe)), total - 1) if p.warmup else 0
        base = self.cfg.lr * p.lr
        if t < warm:
            return base * (t + 1) / warm
        return base * 0.5 * (1 + math.cos(math.pi * (t - warm) / max(1, total - warm)))

    def begin_phase(self, i: int) -> None:
        """Before a phase's first step: sort channels if asked, fresh optimiser, the teacher if needed."""
        p = self.phases[i]
        if p.sort_channels and isinstance(self.net, SortsChannels) and i > 0:
            self.net.sort_channels(keep_expands=self.sampler.expands_at(self.phases[i - 1].expand))
        if i > 0:
            self.optimizer = self._new_optimizer()  # optimiser state does not follow permuted channels
        if p.distill and self.teacher is None:
            # Once-for-All's teacher: the largest net as trained so far (the first phase), frozen
            self.teacher_arch = self.sampler.largest(self.phases[0])
            self.teacher = copy.deepcopy(self.net.extract(self.teacher_arch)).eval().requires_grad_(False)

    def archs_for(self, phase: Phase) -> list:
        s = self.sampler
        archs = [s.largest(phase), s.smallest(phase)] if phase.sandwich else []
        archs += [s.random(phase, self.gen) for _ in range(phase.n_subnets)]
        return [(a, s.resolution(a)) for a in archs]

    # ---- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, arch, batch_size: int = 256) -> float:
        """Held-out top-1 of one subnet after BatchNorm re-calibration on training images."""
        res = self.sampler.resolution(arch)
        sub = self.net.extract(arch)
        n = len(self.train_set)
        g = torch.Generator().manual_seed(self.cfg.seed + 12345)
        idx = torch.randperm(n, generator=g)[:self.cfg.calib_batches * self.cfg.batch_size]
        calib = [self.tf.eval(self.train_set.images[idx[i:i + self.cfg.batch_size]], res).to(self.device)
                 for i in range(0, len(idx), self.cfg.batch_size)]
        recalibrate_bn(sub, calib)
        sub.eval()
        correct = 0
        for i in range(0, len(self.held_out), batch_size):
            x = self.tf.eval(self.held_out.images[i:i + batch_size], res).to(self.device)
            correct += int((sub(x).argmax(1).cpu() == self.held_out.labels[i:i + batch_size]).sum())
        return correct / max(1, len(self.held_out))

    def final_archs(self) -> dict:
        last = self.phases[-1].model_copy(update={"kernel": "all", "depth": "all", "expand": "all",
                                                  "resolution": "all"})
        return {"largest": self.sampler.largest(last), "smallest": self.sampler.smallest(last)}

    # ---- the loop --------------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        self._stop = True

    def run(self) -> dict:
        cfg = self.cfg
        total_epochs = cfg.epochs
        units_left = sum(self._units(self.phases[self.phase_index(e)]) * self.steps_per_epoch
                         for e in range(self.epoch, total_epochs)) - self.step * (
            self._units(self.phases[self.phase_index(self.epoch)]) if self.epoch < total_epochs else 0)
        prog = Progress(units_left, quiet=self.quiet or not self.dist.main)
        handlers = {}
        if self.dist.main and _in_main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            while self.epoch < total_epochs:
                self._run_epoch(prog)
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
            prog.close()
        return self.summary()

    def _units(self, p: Phase) -> int:
        return (2 if p.sandwich else 0) + p.n_subnets + (1 if p.distill else 0)

    def _run_epoch(self, prog: Progress) -> None:
        cfg, e = self.cfg, self.epoch
        pi = self.phase_index(e)
        phase = self.phases[pi]
        if e == self.phase_start[pi] and self.step == 0:
            self.begin_phase(pi)
        elif self.teacher is None and phase.distill:
            self.begin_phase(pi)  # unreachable after a resume (the teacher is saved); kept for safety
        order = torch.randperm(len(self.train_set), generator=torch.Generator().manual_seed(cfg.seed * 100003 + e))
        self.net.train()
        w, r = self.dist.world, self.dist.rank
        local = cfg.batch_size // w
        t0 = time.perf_counter()
        while self.step < self.steps_per_epoch:
            s = self.step
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size][r * local:(r + 1) * local]
            archs = self.archs_for(phase)
            x = self.tf.train(self.train_set.images[idx], self.sampler.max_resolution, self.gen).to(self.device)
            y = self.train_set.labels[idx].to(self.device)
            lr = self.lr_at(pi, e, s)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            out = supernet_step(self.net, self.optimizer, x, y, archs, self.opts, inplace=phase.sandwich,
                                teacher=self.teacher if phase.distill else None, scaler=self.scaler,
                                grad_sync=self.dist.grad_sync)
            if not math.isfinite(out["loss"]):
                raise UserError(f"the loss became {out['loss']} at epoch {e + 1} step {s + 1}; "
                                "lower --lr or raise --grad-clip")
            self.sums["loss"] += out["loss"]
            self.sums["n"] += 1
            self.step += 1
            prog.update(self._units(phase), f"{phase.name} ep {e + 1}/{cfg.epochs} loss {out['loss']:.3f}")
            if self._stop and self.step < self.steps_per_epoch:
                path = self.save()
                raise Stopped(path or self.out / CHECKPOINT_FILE)
        rec = {"epoch": e + 1, "phase": phase.name, "lr_end": lr, "train_loss": self.sums["loss"] / max(1, self.sums["n"]),
               "epoch_s": time.perf_counter() - t0}
        if self.dist.main and ((e + 1) % cfg.eval_every == 0 or e + 1 == cfg.epochs):
            for name, arch in self.final_archs().items():
                rec[f"held_out_top1_{name}"] = self.evaluate(arch)
        self.history.append(rec)
        self.epoch, self.step = e + 1, 0
        self.sums = {"loss": 0.0, "n": 0}
        path = None
        if self.dist.main:
            path = self.save()
            self.write_logs()
        if self.dist.on_epoch is not None:
            self.dist.on_epoch(path, rec)
        if self._stop and self.epoch < cfg.epochs:
            raise Stopped(self.out / CHECKPOINT_FILE)

    # ---- outputs ---------------------------------------------------------------------------
    def write_logs(self) -> None:
        atomic_write_json(self.out / "log.json", {"config": self.cfg.model_dump(), "space": self.space.name,
                                                  "space_params": _space_params(self.space),
                                                  "epochs_per_phase": dict(zip([p.name for p in self.phases],
                                                                               self.epochs_per_phase)),
                                                  "history": self.history})
        try:
            plot_training(self.history, self.out / "train.png")
        except Exception as e:  # noqa: BLE001 - a missing plotting backend must not stop training
            print(f"nas train: warning: could not draw train.png: {e}", file=sys.stderr)

    def summary(self) -> dict:
        last = self.history[-1] if self.history else {}
        return {"space": self.space.name, "plan": self.plan.name, "epochs": self.cfg.epochs,
                "held_out_top1_largest": last.get("held_out_top1_largest"),
                "held_out_top1_smallest": last.get("held_out_top1_smallest"),
                "train_wall_s": sum(h["epoch_s"] for h in self.history),
                "checkpoint": str(self.out / CHECKPOINT_FILE)}


@torch.no_grad()
def zero_init_residual_bn(net: torch.nn.Module) -> None:
    """Zero the last BN's scale of every residual block (BigNAS): each block starts as the identity,
    so a deep supernet trains like a shallow one at first (much faster from scratch on small data)."""
    from search_spaces.elastic import ElasticMBConv
    from search_spaces.single_path.supernet import SuperkernelMBConv

    for m in net.modules():
        if isinstance(m, (ElasticMBConv, SuperkernelMBConv)) and m.residual:
            m.project.bn.weight.zero_()


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def plot_training(history: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from search_spaces.fileio import save_figure

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(ep, [h["train_loss"] for h in history], marker=".")
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss (mean over the step's subnets' first)")
    a1.grid(alpha=0.3)
    for key, label in (("held_out_top1_largest", "largest"), ("held_out_top1_smallest", "smallest")):
        pts = [(h["epoch"], 100 * h[key]) for h in history if key in h]
        if pts:
            a2.plot(*zip(*pts), marker=".", label=label)
    a2.set_xlabel("epoch")
    a2.set_ylabel("held-out top-1 (%)")
    if a2.get_legend_handles_labels()[0]:  # a run stopped before its first held-out measurement has none
        a2.legend(fontsize=8)
    a2.grid(alpha=0.3)
    for h0, h1 in zip(history, history[1:]):
        if h0["phase"] != h1["phase"]:
            for a in (a1, a2):
                a.axvline(h0["epoch"] + 0.5, color="gray", lw=0.6, ls="--")
    fig.tight_layout()
    return save_figure(fig, path)


def train_supernet(cfg: TrainConfig, out: str | Path, resume: bool = False, plan: Plan | None = None,
                   quiet: bool = False, on_epoch: Callable[[Path | None, dict], None] | None = None) -> dict:
    """Train (or continue, with ``resume``) a supernet in ``out``; returns the summary (also result.json).

    ``on_epoch(checkpoint_path, record)`` is called after each epoch (e.g. to report to Ray Tune).
    """
    dist = Dist(on_epoch=on_epoch)
    out = Path(out)
    ckpt = out / CHECKPOINT_FILE
    if resume and ckpt.exists():
        st = load_training_state(ckpt)
        cfg = TrainConfig.model_validate(st["config"])
        trainer = Trainer(cfg, out, plan_from_dict(st["plan"], str(ckpt)), dist=dist, quiet=quiet)
        trainer.load_state(st)
    else:
        if out.exists() and any(out.iterdir()) and not resume:
            raise UserError(f"--out {str(out)!r} is not empty; pass --resume to continue the run there, "
                            "or choose a new folder")
        if out.exists() and any(out.iterdir()):
            raise UserError(f"--resume: {str(out)!r} holds no {CHECKPOINT_FILE}; it is not a `nas train` folder")
        out.mkdir(parents=True, exist_ok=True)
        trainer = Trainer(cfg, out, plan, dist=dist, quiet=quiet)
        (out / "plan.yaml").write_text(plan_yaml(trainer.plan))
    summary = trainer.run()
    finish(trainer, summary)
    return summary


def finish(trainer: Trainer, summary: dict) -> None:
    """The final supernet file (ofa family) and result.json, once the plan is complete."""
    out = trainer.out
    from search_spaces.ofa.supernet import OFASupernet

    if isinstance(trainer.net, OFASupernet):
        from nas.checkpoints import save_supernet

        save_supernet(trainer.net, out / "supernet.pt")
        summary["supernet"] = str(out / "supernet.pt")
    trainer.write_logs()
    atomic_write_json(out / "result.json", summary)


def _space_params(space) -> dict:
    """A parameterised space's constructor arguments (ofa family); {} for fixed spaces."""
    from search_spaces.ofa.space import OFASpace

    return space.space_params() if isinstance(space, OFASpace) else {}
