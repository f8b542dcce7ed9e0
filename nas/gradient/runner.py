"""Running a training strategy: data, supernet, alternating steps, the coefficient toward the target,
projection, held-out accuracy, checkpoints with exact resume, and the ``SearchResult``.

Randomness comes from generators seeded by (seed, epoch, step) — the data order, augmentation,
Gumbel noise and sampled paths — so a run resumed from a checkpoint (model, optimisers,
coefficient, position, history) continues bit for bit like an uninterrupted one.
"""

from __future__ import annotations

import io
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from search_spaces.errors import UserError

from ..data import BatchTransform, load_dataset, split_held_out
from ..io import atomic_write_bytes, atomic_write_json
from ..results import ArchScore, SearchResult, TargetInfo, versions
from ..run import SearchGrid
from ..train.checkpoint import load_training_state, save_training_state
from .base import TrainJob
from .found import found_bytes
from .pricing import argmax_choice, arch_row, bounds_ms, expected_ms, layer_costs, project
from .supernet import largest_choice, layer_specs

CHECKPOINT = "checkpoint.pt"
SUPERNET = "supernet.pt"
FOUND_NET = "found_net.pt"
COEFFICIENT_RANGE = (1e-4, 1e4)


class TrainProgress:
    """One line a second on stderr: epoch, step, expected latency vs target, coefficient, ETA."""

    def __init__(self, stream=None):
        # stderr looked up now, not at import (a caller may have swapped sys.stderr since)
        self.stream = stream if stream is not None else sys.stderr
        self.t0, self.done0, self.last = None, 0, 0.0

    def __call__(self, info: dict):
        now = time.perf_counter()
        if self.t0 is None:
            self.t0, self.done0 = now, info["steps_done"]
        if now - self.last < 1.0 and not info["finished"]:
            return
        self.last = now
        el = now - self.t0
        rate = el / max(info["steps_done"] - self.done0, 1)
        eta = rate * (info["steps_total"] - info["steps_done"])
        self.stream.write(f"epoch {info['epoch'] + 1}/{info['epochs']} ({info['phase']})  step "
                          f"{info['steps_done']}/{info['steps_total']}  E[latency] {info['expected_latency_ms']:.3f} ms "
                          f"(target {info['limit_ms']:g})  {info['coefficient_name']} {info['coefficient']:.3g}  "
                          f"loss {info['loss']:.3f}  elapsed {el:.1f}s  eta {eta:.1f}s\n")
        self.stream.flush()


def _gen(*key: int) -> torch.Generator:
    seed = 0
    for k in key:
        seed = (seed * 1_000_003 + int(k) + 1) % (2**62)
    return torch.Generator().manual_seed(seed)


def train_search(space, target, strategy, config, *, seed: int = 0, out: str | Path | None = None, resume: bool = False,
                 progress: bool = False, callbacks: Sequence[Callable[[dict], None]] = ()) -> SearchResult:
    """Train ``strategy``'s supernet on its data and derive an arch of ``space`` within ``target``'s budget."""
    threads = strategy.params()["threads"]
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)  # on a shared machine one thread each avoids OpenMP oversubscription
    try:
        return _train_search(space, target, strategy, config, seed=seed, out=out, resume=resume, progress=progress,
                             callbacks=callbacks)
    finally:
        torch.set_num_threads(before)


def _train_search(space, target, strategy, config, *, seed, out, resume, progress, callbacks) -> SearchResult:
    t0 = time.perf_counter()
    p = strategy.params()
    grid = SearchGrid.of(space)
    specs = layer_specs(space, grid)
    strategy.check(space, specs)
    costs = layer_costs(specs, grid, target.predictor.predict)
    lo_ms, hi_ms = bounds_ms(costs)
    if lo_ms > target.limit_ms:
        raise UserError(f"latency budget {target.limit_ms:g} ms on {target.device} is below the smallest "
                        f"{space.name!r} subnet's predicted latency; the smallest achievable is {lo_ms:.3f} ms")

    fingerprint = config.fingerprint()  # the SearchConfig nas.search resolved (nas.search_config)
    run_dir = Path(out) if out is not None else None
    ckpt = run_dir / CHECKPOINT if run_dir is not None else None
    if run_dir is not None:
        if not resume and (ckpt.exists() or (run_dir / "checkpoint.npz").exists()):
            raise UserError(f"run folder {str(run_dir)!r} already holds a search; pass --resume to continue it "
                            "or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume and ckpt.is_file():
            saved = load_training_state(ckpt)
            if saved.get("fingerprint") != fingerprint:
                raise UserError(f"checkpoint {str(ckpt)!r} belongs to a different search configuration; "
                                "resume with the same settings or use another --out")
            if saved.get("finished") and (run_dir / "result.json").is_file():
                return SearchResult.read(run_dir / "result.json")
        config.write(run_dir)

    # ---- data: weight split, architecture (validation) split, held-out split -------------------
    ds = load_dataset(p["data"])
    train_idx, held_idx = split_held_out(ds.labels, p["held_out"], seed)
    w_rel, a_rel = split_held_out(ds.labels[train_idx], p["val_fraction"], seed + 1)
    w_idx, a_idx = train_idx[w_rel], train_idx[a_rel]
    if min(len(w_idx), len(a_idx), len(held_idx)) < 2:
        raise UserError(f"data {p['data']!r} has too few images ({len(ds)}) for a train / validation / held-out split")
    mean, std = ds.subset(train_idx).mean_std()
    tf = BatchTransform(mean, std, scale=(p["crop_scale"], 1.0))
    res, bs = p["image_size"], p["batch_size"]

    job = TrainJob(specs, costs, target.limit_ms, p, ds.n_classes)
    torch.manual_seed(seed)  # the supernet's initial weights
    job.model = strategy.supernet(job)
    job.w_opt = weight_optimizer(strategy.weight_parameters(job.model), p["optimizer"], p["lr"])
    job.a_opt = torch.optim.Adam(strategy.arch_parameters(job.model), lr=p["arch_lr"], betas=(0.5, 0.999))
    job.coefficient = float(strategy.initial_coefficient())

    n_search, n_total = p["epochs"], p["epochs"] + p["finetune_epochs"]
    steps = max(1, math.ceil(len(w_idx) / bs))
    if p["steps_per_epoch"]:
        steps = min(steps, p["steps_per_epoch"])
    a_batches = max(1, len(a_idx) // bs) if len(a_idx) >= bs else 1
    history: list[dict] = []
    epoch, step, elapsed_before, choice = 0, 0, 0.0, None
    if resume and ckpt is not None and ckpt.is_file():
        job.model.load_state_dict(saved["model"])
        job.w_opt.load_state_dict(saved["w_opt"])
        job.a_opt.load_state_dict(saved["a_opt"])
        job.coefficient, epoch, step = float(saved["coefficient"]), int(saved["epoch"]), int(saved["step"])
        history, elapsed_before = list(saved["history"]), float(saved["elapsed_s"])
        choice = None if saved.get("choice") is None else np.asarray(saved["choice"], np.int64)

    def save(finished: bool = False):
        if ckpt is None:
            return
        save_training_state({"fingerprint": fingerprint, "model": job.model.state_dict(),
                             "w_opt": job.w_opt.state_dict(), "a_opt": job.a_opt.state_dict(),
                             "coefficient": job.coefficient, "epoch": epoch, "step": step, "history": history,
                             "choice": None if choice is None else [int(c) for c in choice],
                             "elapsed_s": elapsed_before + time.perf_counter() - t0, "finished": finished}, ckpt)

    largest = largest_choice(specs)
    cbs = list(callbacks) + ([TrainProgress()] if progress else [])
    e_lat = expected_ms(costs, strategy.probabilities(job))
    losses: list[float] = []
    while epoch < n_total:
        job.epoch = epoch
        searching = p["warmup_epochs"] <= epoch < n_search
        job.scratch["searching"] = searching
        if epoch >= n_search and choice is None:
            choice = _final_choice(costs, strategy.probabilities(job), target.limit_ms, p["fill"])
        lr = p["lr"] * 0.5 * (1 + math.cos(math.pi * epoch / n_total))
        for g in job.w_opt.param_groups:
            g["lr"] = lr
        perm = torch.randperm(len(w_idx), generator=_gen(seed, 1, epoch)).numpy()
        a_perm = torch.randperm(len(a_idx), generator=_gen(seed, 2, epoch)).numpy()
        first = epoch < p["largest_first_epochs"]
        if epoch == p["largest_first_epochs"] > 0 and step == 0:
            strategy.inherit(job, largest)  # at a fixed point of the schedule, so a resumed run does it too
        job.model.train()
        while step < steps:
            gen = _gen(seed, 3, epoch, step)
            idx = w_idx[perm[step * bs:(step + 1) * bs]]
            x, y = tf.train(ds.images[idx], res, gen), ds.labels[idx]
            if first:
                loss = _path_step(strategy, job, x, y, largest)
            elif choice is None:
                loss = strategy.weight_step(job, x, y, gen)
                if searching:
                    k = step % a_batches
                    ai = a_idx[a_perm[k * bs:(k + 1) * bs]]
                    a_loss = strategy.arch_step(job, tf.train(ds.images[ai], res, gen), ds.labels[ai], gen)
                    loss = loss if a_loss is None else a_loss
                    e_lat = expected_ms(costs, strategy.probabilities(job))
                    # dual ascent on the coefficient: up while the expected latency is over the target
                    job.coefficient = float(np.clip(job.coefficient * math.exp(
                        p["dual_rate"] * (e_lat / target.limit_ms - 1.0)), *COEFFICIENT_RANGE))
            else:
                loss = _path_step(strategy, job, x, y, choice)
            losses.append(float(loss))
            step += 1
            done = epoch * steps + step
            if step % p["checkpoint_steps"] == 0 and step < steps:
                save()
            info = {"epoch": epoch, "epochs": n_total, "steps_done": done, "steps_total": n_total * steps,
                    "phase": "fine-tune" if choice is not None else ("search" if searching else
                                                                     "warm-up, largest path" if first else "warm-up"),
                    "expected_latency_ms": float(e_lat), "limit_ms": target.limit_ms,
                    "coefficient": job.coefficient, "coefficient_name": strategy.coefficient_name,
                    "loss": float(loss), "finished": False}
            for cb in cbs:
                cb(info)
        history.append({"epoch": float(epoch), "loss": float(np.mean(losses)) if losses else float("nan"),
                        "expected_latency_ms": float(e_lat), "coefficient": float(job.coefficient)})
        losses = []
        epoch, step = epoch + 1, 0
        save()
    if choice is None:  # no fine-tune epochs
        choice = _final_choice(costs, strategy.probabilities(job), target.limit_ms, p["fill"])

    P = strategy.probabilities(job)
    found = strategy.found_net(job, choice)
    top1 = _held_out_accuracy(found, ds, tf, w_idx, held_idx, res, bs)
    row = arch_row(costs, specs, choice)
    lat_ms = float(np.asarray(target.predictor.predict(row[None, :])).reshape(-1)[0])
    am = argmax_choice(costs, P)
    am_ms = float(np.asarray(target.predictor.predict(arch_row(costs, specs, am)[None, :])).reshape(-1)[0])
    training = {
        "reached_target_by": (f"dual ascent on {strategy.coefficient_name} during the search "
                              f"({strategy.coefficient_name} *= exp({p['dual_rate']:g} * (E[latency] / T - 1)) per "
                              f"architecture step), then projection: the arch of highest architecture probability "
                              f"with latency in [{p['fill']:g} T, T] from the table (exact dynamic programme)"),
        "coefficient_name": strategy.coefficient_name,
        "coefficient_initial": float(strategy.initial_coefficient()),
        "coefficient_final": float(job.coefficient),
        "expected_latency_ms_final": float(expected_ms(costs, P)),
        "argmax_arch_latency_ms": am_ms,
        "projected_arch_latency_ms": lat_ms,
        "projection_changed_layers": int((am != choice).sum()),
        "log_probability_projected": float(np.log(np.clip(P[np.arange(len(choice)), choice], 1e-12, 1)).sum()),
        "log_probability_argmax": float(np.log(np.clip(P[np.arange(len(am)), am], 1e-12, 1)).sum()),
        "space_latency_range_ms": [lo_ms, hi_ms],
        "reduced_config": {"data": p["data"], "image_size": res, "width": p["width"],
                           "train_images": int(len(w_idx)), "validation_images": int(len(a_idx)),
                           "held_out_images": int(len(held_idx))},
        "supernet_checkpoint": SUPERNET,
        **strategy.report(job),
    }
    arch = space.decode(row[None, :])[0]
    notes = [f"accuracy is the found arch's top-1 on {len(held_idx)} held-out {p['data']} images in the reduced "
             f"supernet (width {p['width']:g}, {res} px, weights inherited, {p['finetune_epochs']} fine-tune epochs, "
             "BatchNorm recalibrated); latency is the full space's at its full input size from the target's table"]
    if lat_ms > target.limit_ms + 1e-9:
        notes.append(f"the target's predictor is not additive over layers: the projected arch predicts {lat_ms:.3f} ms "
                     f"against {target.limit_ms:g} ms")
    for cb in cbs:
        cb({**info, "finished": True}) if n_total else None
    try:
        macs, params = float(space.macs(row[None, :])[0]), float(space.params(row[None, :])[0])
    except NotImplementedError:
        macs = params = 0.0
    best = ArchScore(arch=arch, top1=top1, latency_ms={target.device: lat_ms}, macs=macs, params=params, score=top1)
    wall_s = elapsed_before + time.perf_counter() - t0
    result = SearchResult(
        space=space.name, space_version=space.version, strategy=strategy.name, strategy_params=p,
        accuracy={"name": "held-out", "description": notes[0]}, reward="hard",
        targets=[TargetInfo(device=target.device, budget_ms=target.budget_ms, margin=target.margin,
                            limit_ms=target.limit_ms, latency_source=target.source,
                            expected_error=target.expected_error, host=target.host)],
        budget=n_total, n_evaluated=1, n_proposed=None,
        cost={"accuracy_evaluations": 1, "latency_evaluations": int(costs.mask.sum()) + 3,
              "training_steps": int(n_total * steps)},
        seed=int(seed), best=best, top_k=[best], pareto=[best], history=history, notes=notes,
        versions=versions(), wall_time_s=wall_s, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        training=training)
    if run_dir is not None:
        _write_nets(run_dir, strategy, job, found, arch, choice)
        save(finished=True)
        result.write(run_dir / "result.json")
        atomic_write_json(run_dir / "best_arch.json", arch)
    return result


def weight_optimizer(params, kind: str, lr: float) -> torch.optim.Optimizer:
    """The weights' optimiser. Adam by default: a DNAS mixture scales each candidate's gradient by
    its mixture weight (about 1/9 on fbnet) and ProxylessNAS updates a candidate only when its
    path is sampled; Adam's per-parameter step size does not shrink with either, plain SGD's does."""
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=4e-5)


def _final_choice(costs, P, limit_ms, fill) -> np.ndarray:
    choice = project(costs, P, limit_ms, fill)
    if choice is None:
        raise UserError(f"no arch of the space fits {limit_ms:g} ms")
    return choice


def _path_step(strategy, job, x, y, choice) -> float:
    job.w_opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(strategy.forward(job, x, strategy.path(job, choice)), y)
    loss.backward()
    job.w_opt.step()
    return float(loss)


@torch.no_grad()
def _held_out_accuracy(found, ds, tf, w_idx, held_idx, res, bs) -> float:
    """Top-1 of the found net on the held-out split, after recalibrating its BatchNorm on training images.

    The supernet's running statistics mix every path it trained; the found net's own are re-estimated
    (a cumulative average over one pass of the weight split), and the net is kept with them.
    """
    bns = [m for m in found.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    found.train()
    for i in range(0, len(w_idx), bs):
        found(tf.eval(ds.images[w_idx[i:i + bs]], res))
    for m in bns:
        m.momentum = 0.1
    found.eval()
    correct = 0
    for i in range(0, len(held_idx), bs):
        idx = held_idx[i:i + bs]
        correct += int((found(tf.eval(ds.images[idx], res)).argmax(1) == ds.labels[idx]).sum())
    return correct / len(held_idx)


def _write_nets(run_dir: Path, strategy, job, found, arch, choice) -> None:
    """The trained supernet (weights and architecture parameters) and the found net with its inherited weights."""
    buf = io.BytesIO()
    torch.save({"format": "hwnas.gradient-supernet", "strategy": strategy.name, "params": strategy.params(),
                "model": job.model.state_dict()}, buf)
    atomic_write_bytes(run_dir / SUPERNET, buf.getvalue())
    atomic_write_bytes(run_dir / FOUND_NET, found_bytes(found, {
        "arch": arch, "choice": [int(c) for c in choice], "strategy": strategy.name, "params": strategy.params()}))
