"""How much of the eval-subnets -> predictor Spearman is limited by the held-out set's size.

For N random subnets of a trained supernet (BatchNorm re-calibrated, as ``supernet:CKPT``
measures them), records which held-out images each subnet gets right. Then:

- split-half reliability: the held-out images are split in two random stratified halves many
  times; Spearman between the subnets' top-1 on one half and on the other, corrected to the
  full set with Spearman-Brown (r_full = 2r / (1 + r)). A predictor that knew every subnet's
  expected top-1 exactly could reach a Spearman of about sqrt(r_full) against measured top-1:
  the ceiling the held-out set's size puts on ``nas fit-predictor``'s held-out Spearman.
- the spread of top-1 across subnets against the binomial noise of one measurement;
- Spearman(MACs, top-1), and a cross-validated predictor (the ``nas fit-predictor`` models,
  5 folds) against measured top-1 and against the per-image log-likelihood (a less noisy label).

    python experiments/supernet_label_noise.py RUN --n 200 [--data digits] [--out noise.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from nas.accuracy.learned import LearnedPredictor
from nas.accuracy.supernet import HeldOutData, SubnetMeter, load_trained_supernet


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--data")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", type=int, default=50)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ts = load_trained_supernet(args.ckpt)
    data = HeldOutData(args.data or ts.data or "digits", ts)
    sp = ts.net.space
    rng = np.random.default_rng(args.seed)
    X = np.unique(sp.canonical(sp.sample_encoded(rng, args.n)), axis=0)[: args.n]
    archs = sp.decode(X)
    meter = SubnetMeter(ts.net, data)
    y = data.held_labels
    correct = np.empty((len(archs), len(y)), dtype=bool)
    loglik = np.empty(len(archs))
    t0 = time.perf_counter()
    for i, a in enumerate(archs):
        logits = meter.held_out_logits(a)
        correct[i] = (logits.argmax(1) == y).numpy()
        loglik[i] = float(torch.log_softmax(logits, 1)[torch.arange(len(y)), y].mean())
    wall = time.perf_counter() - t0
    top1 = correct.mean(1)
    # split-half reliability, halves stratified by class
    rs = []
    classes = np.unique(y.numpy())
    for _ in range(args.splits):
        half = np.zeros(len(y), dtype=bool)
        for c in classes:
            idx = np.flatnonzero(y.numpy() == c)
            half[rng.permutation(idx)[: len(idx) // 2]] = True
        rs.append(spearmanr(correct[:, half].mean(1), correct[:, ~half].mean(1))[0])
    r_half = float(np.mean(rs))
    r_full = 2 * r_half / (1 + r_half)
    macs = np.asarray(sp.macs(X), dtype=float)
    # 5-fold cross-validated predictors
    folds = np.array_split(rng.permutation(len(X)), 5)
    cv = {}
    for kind in ("mlp", "gbr"):
        for label, target in (("top1", top1), ("loglik", loglik)):
            pred = np.empty(len(X))
            for f in folds:
                train = np.setdiff1d(np.arange(len(X)), f)
                t = (target - target.min()) / max(np.ptp(target), 1e-12) if label == "loglik" else target
                m = LearnedPredictor(sp, kind=kind, seed=args.seed).fit(X[train], t[train])
                pred[f] = m.predict(X[f])
            cv[f"{kind}_on_{label}_vs_top1"] = round(float(spearmanr(pred, top1)[0]), 3)
            cv[f"{kind}_on_{label}_vs_{label}"] = round(float(spearmanr(pred, target)[0]), 3)
    p = top1.mean()
    result = {
        "supernet": args.ckpt, "data": data.spec, "held_out_images": len(y), "n": len(archs),
        "top1_mean": round(float(p), 4), "top1_min": round(float(top1.min()), 4),
        "top1_max": round(float(top1.max()), 4),
        "top1_std_across_subnets_points": round(100 * float(top1.std()), 2),
        "binomial_std_of_one_measurement_points": round(100 * float(np.sqrt(p * (1 - p) / len(y))), 2),
        "split_half_spearman": round(r_half, 3), "reliability_full_set": round(r_full, 3),
        "spearman_ceiling_for_a_predictor": round(float(np.sqrt(max(r_full, 0))), 3),
        "spearman_loglik_top1": round(float(spearmanr(loglik, top1)[0]), 3),
        "spearman_macs_top1": round(float(spearmanr(macs, top1)[0]), 3),
        "cv5_spearman": cv, "measure_wall_s": round(wall, 1),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        from nas.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "supernet_label_noise"))
