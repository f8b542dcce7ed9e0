"""Once-for-All's recipe around a trained supernet: measure subnets into pairs, fine-tune the winner.

``eval_subnets`` measures N random subnets (held-out top-1 with BatchNorm re-calibrated) and
writes (arch, top1, MACs, params, latency per device) rows that ``nas fit-predictor`` reads.
``finetune`` extracts a found arch with its inherited weights, trains it as a plain network on the
training split, re-measures it on the held-out split and exports it (ONNX checked in ONNX Runtime,
and ``.pt``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from search_spaces import get_space
from search_spaces.errors import UserError

from .accuracy.supernet import HeldOutData, SubnetMeter, default_workers, load_trained_supernet, measure_supernet
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise UserError(f"{str(path)!r} exists; choose a new --out (earlier results are never overwritten)")


def eval_subnets(ckpt: str, data: str | None, n: int, out: str | Path, devices: Sequence[str] = (),
                 seed: int = 0, space: str | None = None, progress: bool = True,
                 calib_images: int | None = None, workers: int | None = None,
                 archs_from: Sequence[str | Path] = (), top: int = 1, threads: int = 1) -> dict:
    """Measure ``n`` distinct random subnets (or the archs of ``archs_from``: search run folders,
    result.json -- their ``top`` best -- or arch files); write the CSV ``out``; return a summary."""
    if top < 1:
        raise UserError(f"--top must be >= 1, got {top}")
    out = Path(out)
    _refuse_existing(out)
    if n < 1 and not archs_from:
        raise UserError(f"--n must be >= 1, got {n}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    ts = load_trained_supernet(ckpt, space)
    if calib_images is not None:
        ts.calib_images = calib_images
    sp = get_space(space or ts.net.space.name)
    hd = HeldOutData(data or ts.data or "digits", ts)
    if archs_from:
        X = sp.encode([sp.validate(a) for src in archs_from for a in read_found_archs(src, top)])
    else:
        rng = np.random.default_rng(seed)
        X = np.unique(sp.canonical(sp.sample_encoded(rng, n)), axis=0)
        while len(X) < n:  # tiny spaces / collisions: draw more until n distinct (or the space is exhausted)
            more = np.unique(np.concatenate([X, sp.canonical(sp.sample_encoded(rng, n))]), axis=0)
            if len(more) == len(X):
                break
            X = more
        X = X[rng.permutation(len(X))[:n]]
    archs = sp.decode(X)
    lat = {}
    if devices:
        from .latency import latency_predictor

        for d in devices:
            pred = latency_predictor(sp, d)
            lat[pred.profile.name] = np.asarray(pred.predict(X), dtype=float)
    meter = SubnetMeter(ts.net, hd, workers=default_workers() if workers is None else workers, threads=threads)
    acc = np.empty(len(archs))
    t0 = time.perf_counter()
    last = t0
    step = 10 * meter.workers
    for s in range(0, len(archs), step):
        acc[s:s + step] = meter.measure(archs[s:s + step])
        now = time.perf_counter()
        if progress and (now - last > 10 or s + step >= len(archs)):
            done = min(s + step, len(archs))
            rate = done / (now - t0)
            print(f"eval-subnets: {done}/{len(archs)} measured, {rate:.1f} evaluations/s, "
                  f"ETA {(len(archs) - done) / rate:.0f} s", file=sys.stderr)
            last = now
    meter.close()
    wall = time.perf_counter() - t0
    macs, params = np.asarray(sp.macs(X)), np.asarray(sp.params(X))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["arch", "top1", "macs", "params", *[f"latency_ms_{d}" for d in lat]])
    for i, a in enumerate(archs):
        w.writerow([json.dumps(a, separators=(",", ":")), f"{acc[i]:.6f}", int(macs[i]), int(params[i]),
                    *[f"{lat[d][i]:.6f}" for d in lat]])
    atomic_write_text(out, buf.getvalue())
    from scipy.stats import spearmanr

    rho = float(spearmanr(macs, acc)[0]) if len(acc) > 2 and np.ptp(acc) > 0 else float("nan")
    return {"out": str(out), "n": len(archs), "space": sp.name,
            "measured_on": f"{hd.spec}, {hd.n_held_out} held-out images", "supernet": ts.source,
            "top1_mean": float(acc.mean()), "top1_min": float(acc.min()), "top1_max": float(acc.max()),
            "spearman_macs_top1": rho, "devices": list(lat), "wall_s": wall,
            "evaluations_per_s": len(archs) / wall if wall > 0 else None}


def read_found_archs(source: str | Path, top: int = 1) -> list[dict]:
    """The ``top`` best archs of a search run folder or result.json (its ranked ``top_k``), or
    the arch of an arch JSON."""
    arch, found = read_found_arch(source)
    if top <= 1 or not found:
        return [arch]
    p = Path(source)
    doc = read_json(p / "result.json" if p.is_dir() else p, "search result")
    ranked = [e["arch"] for e in doc.get("top_k") or [] if isinstance(e, dict) and "arch" in e]
    return ranked[:top] or [arch]


# ---- fine-tuning ------------------------------------------------------------------------------
def read_found_arch(source: str | Path) -> tuple[dict, dict]:
    """(arch, what the search said about it) from a search run folder, its result.json or an arch JSON."""
    p = Path(source)
    if p.is_dir():
        p = p / "result.json"
    doc = read_json(p, "search result")
    if isinstance(doc, dict) and isinstance(doc.get("best"), dict) and "arch" in doc["best"]:
        return doc["best"]["arch"], doc["best"]
    if isinstance(doc, dict) and "best" in doc and doc["best"] is None:
        raise UserError(f"{str(p)!r}: the search found no arch meeting its constraints; nothing to fine-tune")
    if isinstance(doc, dict) and {"ks", "e", "d"} <= set(doc):
        return doc, {}
    raise UserError(f"{str(p)!r} is neither a search result (result.json with a best arch) nor an arch JSON")


@torch.no_grad()
def _top1(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    correct = sum(int((model(x[s:s + batch]).argmax(1) == y[s:s + batch]).sum()) for s in range(0, len(x), batch))
    return correct / max(1, len(y))


def finetune(source: str | Path, ckpt: str, data: str | None, out: str | Path, epochs: int = 10,
             lr: float = 0.01, batch_size: int = 64, seed: int = 0, space: str | None = None,
             progress: bool = True) -> dict:
    """Fine-tune the found arch of ``source`` from the supernet ``ckpt``; outputs go to the folder ``out``."""
    from search_spaces.ofa.supernet import recalibrate_bn

    from .export import export

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {str(out)!r} is not empty; choose a new folder")
    if epochs < 0 or lr <= 0 or batch_size < 1:
        raise UserError("--epochs >= 0, --lr > 0 and --batch-size >= 1 are required")
    arch, found = read_found_arch(source)
    ts = load_trained_supernet(ckpt, space)
    sp = ts.net.space
    arch = sp.validate(arch)
    hd = HeldOutData(data or ts.data or "digits", ts)
    r = int(arch["r"][0])
    cal, held = hd.at(r)
    inherited_supernet = float(measure_supernet(ts.net, hd, [arch])[0])
    ts.net.eval()
    model = recalibrate_bn(ts.net, [cal], arch)  # the extracted subnet, statistics of its own
    model.eval()
    inherited = _top1(model, held, hd.held_labels)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train = hd.train_images, hd.train_labels
    steps = max(1, len(x_train) // batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-5)
    total = epochs * steps
    history = []
    t0 = time.perf_counter()
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    best, best_epoch = inherited, 0
    for e in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        loss_sum = 0.0
        for s in range(steps):
            idx = order[s * batch_size:(s + 1) * batch_size]
            x = hd.tf.train(x_train[idx], r, gen)
            t = e * steps + s
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * t / max(1, total)))
            loss = F.cross_entropy(model(x), y_train[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            loss_sum += float(loss.detach())
        acc = _top1(model, held, hd.held_labels)
        history.append({"epoch": e + 1, "train_loss": loss_sum / steps, "held_out_top1": acc})
        if progress:
            el = time.perf_counter() - t0
            print(f"finetune: epoch {e + 1}/{epochs} loss {loss_sum / steps:.3f} held-out top-1 {100 * acc:.2f}% "
                  f"| {el:.0f} s elapsed, ETA {el / (e + 1) * (epochs - e - 1):.0f} s", file=sys.stderr)
        if acc >= best:
            best, best_epoch = acc, e + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    final = history[-1]["held_out_top1"] if history else inherited
    model.load_state_dict(best_state)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    export(sp, arch, out / "model.onnx", model=model, check=False)
    ort_top1, ort_diff = _ort_check(out / "model.onnx", model, held, hd.held_labels)
    buf = io.BytesIO()
    torch.save({"space": sp.name, "space_version": sp.version, "space_params": sp.space_params(), "arch": arch,
                "state_dict": model.state_dict(), "normalise_mean": hd.tf.mean.flatten(),
                "normalise_std": hd.tf.std.flatten()}, buf)
    atomic_write_bytes(out / "model.pt", buf.getvalue())
    result = {"arch": arch, "space": sp.name, "supernet": ts.source,
              "measured_on": f"{hd.spec}, {hd.n_held_out} held-out images",
              "held_out_top1_inherited": inherited, "held_out_top1_inherited_in_supernet": inherited_supernet,
              "held_out_top1_final_epoch": final, "held_out_top1": best, "kept_epoch": best_epoch,
              "note": ("weights of the epoch with the best held-out top-1 (0: the inherited ones); the held-out "
                       "split selects among these candidates, so the figure is mildly optimistic"),
              "held_out_top1_onnxruntime": ort_top1, "onnx": str(out / "model.onnx"),
              "onnx_ort_max_abs_diff": ort_diff, "pt": str(out / "model.pt"),
              "input": {"shape": [1, 3, r, r], "normalise_mean": hd.tf.mean.flatten().tolist(),
                        "normalise_std": hd.tf.std.flatten().tolist()},
              "latency_ms": found.get("latency_ms"), "macs": int(np.asarray(sp.macs(sp.encode([arch])))[0]),
              "epochs": epochs, "lr": lr, "history": history, "wall_s": time.perf_counter() - t0}
    atomic_write_json(out / "result.json", result)
    return result


@torch.no_grad()
def _ort_check(path: Path, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(held-out top-1 in ONNX Runtime, max |ORT - torch| logit difference) on the real held-out images.

    The tolerance is relative to the logits' scale (a freshly extracted net's logits can be large).
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = x.numpy()
    got = np.concatenate([sess.run(None, {"input": xs[i:i + 1]})[0] for i in range(len(xs))])
    ref = model.eval()(x).numpy()
    diff = float(np.abs(got - ref).max())
    if not diff <= 1e-4 * max(1.0, float(np.abs(ref).max())):
        raise RuntimeError(f"the exported ONNX file's outputs differ from torch by {diff:.2e}; not exported correctly")
    return float((got.argmax(1) == y.numpy()).mean()), diff
