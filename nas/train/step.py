"""One optimisation step of a weight-shared supernet over several subnets (the training hot path).

``supernet_step`` runs each subnet on the same batch (resized to its resolution), accumulates
the gradients in the shared weights, optionally averages them over data-parallel workers, clips
and steps once. Targets: hard labels with label smoothing for the first subnet of a sandwich
(the largest) and for progressive shrinking; soft labels for the rest:
- ``inplace``: the largest subnet's own predictions from this step (BigNAS in-place distillation);
- ``teacher``: a separate frozen network's predictions (Once-for-All's knowledge distillation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from nas.data.transforms import resize
from search_spaces.base import Arch


@dataclass
class StepOptions:
    label_smoothing: float = 0.1
    kd_weight: float = 1.0          # weight of the teacher's soft loss next to the hard loss
    grad_clip: float | None = 5.0   # max global gradient norm; None: no clipping
    amp: bool = False               # mixed precision (CUDA only)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def supernet_step(net, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  archs: Sequence[tuple[Arch, int]], opts: StepOptions, *, inplace: bool = False,
                  teacher: torch.nn.Module | None = None, scaler=None,
                  grad_sync: Callable[[list[torch.Tensor]], None] | None = None) -> dict:
    """Train ``archs`` (arch, resolution) on batch (x, y) with one optimiser step; returns the losses.

    ``x`` is the augmented batch at the largest resolution; each subnet sees it resized to its own.
    ``inplace``: archs[0] is the largest; its detached softmax teaches the others.
    ``teacher``: a frozen network whose softmax (at each subnet's resolution) adds a KD term.
    """
    optimizer.zero_grad(set_to_none=True)
    device_type = x.device.type
    use_amp = opts.amp and device_type == "cuda"
    soft = None
    teacher_probs: dict[int, torch.Tensor] = {}
    losses = []
    for i, (arch, res) in enumerate(archs):
        xi = resize(x, res)
        net.set_active(arch)
        with torch.autocast(device_type, dtype=torch.float16, enabled=use_amp):
            out = net(xi)
            if inplace and i > 0:
                loss = soft_cross_entropy(out.float(), soft)
            else:
                loss = F.cross_entropy(out.float(), y, label_smoothing=opts.label_smoothing)
                if teacher is not None:
                    if res not in teacher_probs:
                        with torch.no_grad():
                            teacher_probs[res] = F.softmax(teacher(xi).float(), dim=1)
                    loss = loss + opts.kd_weight * soft_cross_entropy(out.float(), teacher_probs[res])
        if inplace and i == 0:
            soft = F.softmax(out.detach().float(), dim=1)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        losses.append(float(loss.detach()))
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if grad_sync is not None:
        grad_sync(params)
    if scaler is not None:
        scaler.unscale_(optimizer)
    if opts.grad_clip:
        torch.nn.utils.clip_grad_norm_(params, opts.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return {"loss": losses[0], "losses": losses}
