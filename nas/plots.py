"""PNG figures of a search: the accuracy/latency front with the top-k, and the search trajectory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search_spaces.fileio import save_figure

from .results import SearchResult


def plot_search(result: SearchResult, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dev = result.targets[0].device
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    front = sorted(result.pareto, key=lambda s: s.latency_ms[dev])
    ax1.step([s.latency_ms[dev] for s in front], [100 * s.top1 for s in front], where="post",
             color="tab:blue", label="Pareto front (evaluated archs)")
    ax1.scatter([s.latency_ms[dev] for s in result.top_k], [100 * s.top1 for s in result.top_k],
                color="tab:orange", zorder=3, label=f"top-{len(result.top_k)}")
    if result.best is not None:
        ax1.scatter([result.best.latency_ms[dev]], [100 * result.best.top1], marker="*", s=180,
                    color="tab:red", zorder=4, label="best")
    ax1.axvline(result.targets[0].limit_ms, color="gray", ls="--", label=f"budget {result.targets[0].budget_ms:g} ms")
    ax1.set_xlabel(f"predicted latency on {dev} (ms)")
    ax1.set_ylabel(f"estimated top-1 (%) [{result.accuracy.get('name', '')}]")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    hist = [h for h in result.history if "best_top1" in h]  # none before the first feasible arch
    n = [h["n_evaluated"] for h in hist]
    if result.reward == "hard":
        ax2.plot(n, [100 * h["best_top1"] for h in hist])
        ax2.set_ylabel("best top-1 so far (%)")
    else:
        # MnasNet's rewards trade accuracy for latency: the best arch so far is the best *reward*
        # so far (monotone); its top-1 may well go down when a faster arch wins
        ax2.plot(n, np.fmax.accumulate([h["best_score"] for h in hist]))
        ax2.set_ylabel(f"best {result.reward} reward so far")
    ax2.set_xlabel("archs evaluated")
    ax2.set_title(f"{result.strategy} on {result.space}, seed {result.seed}", fontsize=9)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
