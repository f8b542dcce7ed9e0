"""A sweep's outputs: summary.csv, the table on screen and sweep.png (accuracy vs latency per device)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from search_spaces.fileio import save_figure

from ..io import atomic_write_text

COLUMNS = ["trial", "status", "space", "target", "latency_ms", "strategy", "accuracy", "seed", "budget",
           "best_top1", "best_latency_ms", "best_macs_m", "n_evaluated", "pareto_size", "search_wall_s",
           "trial_wall_s", "starts", "result"]


def write_reports(run_dir: Path, rows: list[dict], quiet: bool = False) -> dict:
    cols = COLUMNS + sorted({k for r in rows for k in r} - set(COLUMNS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    csv_path = atomic_write_text(run_dir / "summary.csv", buf.getvalue())
    png = plot_sweep(rows, run_dir / "sweep.png")
    table = format_table(rows)
    if not quiet:
        print(table)
        print(f"summary: {csv_path}, plot: {png}")
    return {"run_dir": str(run_dir), "rows": rows, "summary_csv": str(csv_path), "plot": str(png)}


def format_table(rows: list[dict]) -> str:
    head = (f"{'trial':<34} {'status':<10} {'target':<8} {'budget ms':>9} {'strategy':<13} {'seed':>4} "
            f"{'top-1 %':>7} {'lat ms':>7} {'evals':>6}")
    lines = [head]
    for r in rows:
        top1 = f"{100 * r['best_top1']:.2f}" if isinstance(r.get("best_top1"), float) else "-"
        lat = f"{r['best_latency_ms']:.2f}" if isinstance(r.get("best_latency_ms"), float) else "-"
        lines.append(f"{r['trial'][:34]:<34} {r['status']:<10} {str(r.get('target', ''))[:8]:<8} "
                     f"{r.get('latency_ms', 0):>9g} {str(r.get('strategy', ''))[:13]:<13} {r.get('seed', ''):>4} "
                     f"{top1:>7} {lat:>7} {r.get('n_evaluated') or 0:>6}")
    return "\n".join(lines)


def plot_sweep(rows: list[dict], path: Path) -> Path:
    """One panel per device: each trial's Pareto front (step line) and its best arch, budgets dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # only search trials have a target device (other kinds, e.g. train, have no front to draw)
    devices = sorted({r.get("target") for r in rows if r.get("result") and r.get("target")}) or ["(no results)"]
    fig, axes = plt.subplots(1, len(devices), figsize=(5.5 * len(devices), 4.3), squeeze=False)
    strategies = sorted({r.get("strategy") for r in rows})
    colors = {s: f"C{i}" for i, s in enumerate(strategies)}
    for ax, dev in zip(axes[0], devices):
        labelled = set()
        for r in rows:
            if r.get("target") != dev or not r.get("result") or not Path(r["result"]).is_file():
                continue
            res = json.loads(Path(r["result"]).read_text())
            name = res["targets"][0]["device"]
            front = sorted(res.get("pareto", []), key=lambda s: s["latency_ms"][name])
            lab = r["strategy"] if r["strategy"] not in labelled else None
            labelled.add(r["strategy"])
            c = colors[r["strategy"]]
            ax.step([s["latency_ms"][name] for s in front], [100 * s["top1"] for s in front], where="post",
                    color=c, alpha=0.45, lw=1, label=lab)
            if res.get("best"):
                ax.scatter([res["best"]["latency_ms"][name]], [100 * res["best"]["top1"]], color=c, s=25, zorder=3)
            ax.axvline(r["latency_ms"], color="gray", ls="--", lw=0.8)
        ax.set_title(f"{dev}: fronts (lines) and best within budget (dots)", fontsize=9)
        ax.set_xlabel(f"predicted latency on {dev} (ms)")
        ax.set_ylabel("estimated top-1 (%)")
        ax.grid(alpha=0.3)
        if labelled:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
