"""Evaluate the Pixel 1 operator cost model on the published figures; prints one JSON report.

    .venv/bin/python experiments/pixel1_model_eval.py [--data ../shared/data]

Leave-one-family-out MAPE on the published whole networks (every width and resolution of one
family held out, the model fitted on the rest and on the block tables), and Spearman's rho between
the model and each per-block table when that table is left out of the fit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from latency_predictors.cost_model_eval import evaluate
from latency_predictors.measurements import load_block_table, load_whole_networks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="the reference data folder")
    args = ap.parse_args(argv)
    data = Path(args.data)
    networks = load_whole_networks(data / "published" / "pixel1_published_latency.csv",
                                   data / "published" / "arch_configs.json")
    tables = [load_block_table(data / "proxylessnas" / "mobile_trim.yaml"),
              load_block_table(data / "single-path-nas" / "pixel1_runtime_model.json")]
    report = evaluate(networks, tables)

    def rounded(o):
        if isinstance(o, float):
            return round(o, 4)
        if isinstance(o, dict):
            return {k: rounded(v) for k, v in o.items()}
        return o

    print(json.dumps(rounded(report), indent=2))
    return 0


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "pixel1_model_eval"))
