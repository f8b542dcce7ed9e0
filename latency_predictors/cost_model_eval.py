"""How well a cost model fitted on published figures holds on figures it was not fitted to.

- ``leave_one_family_out``: hold out every width and resolution of one network family, fit on
  the rest (and the block tables), report the held-out family's MAPE. Each held-out figure is
  predicted at its source's speed factor as fitted on that source's remaining rows; a family
  whose source has no other rows (or too few to get a factor) is predicted at factor 1, the
  reference source's speed.
- ``table_spearman``: leave one per-block table out of the fit, rank-correlate the model's block
  latencies with that table's entries (the table's own overall speed does not matter to a rank).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import spearmanr

from .cost_model import OperatorCostModel
from .measurements import BlockTable, NetworkMeasurement


def _mape_pct(pred: np.ndarray, y: np.ndarray) -> float:
    return float(100 * np.mean(np.abs(pred / y - 1)))


def leave_one_family_out(networks: Sequence[NetworkMeasurement], tables: Sequence[BlockTable] = (),
                         **model_params) -> dict[str, dict]:
    """Per family: MAPE (%) of its networks when the model is fitted without any of them."""
    out = {}
    for fam in sorted({n.family for n in networks}):
        train = [n for n in networks if n.family != fam]
        test = [n for n in networks if n.family == fam]
        model = OperatorCostModel(**model_params).fit(train, tables)
        pred = model.predict_networks(test, source_scaled=True)
        y = np.array([n.latency_ms for n in test])
        factors = sorted({round(model.source_factor(n), 4) for n in test})
        out[fam] = {"n": len(test), "mape_pct": _mape_pct(pred, y),
                    "max_ape_pct": float(100 * np.max(np.abs(pred / y - 1))),
                    "source_factor": factors[0] if len(factors) == 1 else factors}
    return out


def table_spearman(networks: Sequence[NetworkMeasurement], tables: Sequence[BlockTable],
                   held_out: BlockTable, **model_params) -> dict:
    """Spearman's rho between a held-out table and the model fitted on everything else."""
    rest = [t for t in tables if t is not held_out]
    model = OperatorCostModel(**model_params).fit(networks, rest)
    pred = model.predict_blocks(held_out.keys)
    rho = spearmanr(pred, held_out.latency_ms).statistic
    ratio = float(np.exp(np.mean(np.log(held_out.latency_ms / pred))))
    return {"n": len(held_out), "spearman": float(rho),
            "mape_pct_raw": _mape_pct(pred, held_out.latency_ms),
            "table_over_model": ratio,  # the table's overall speed relative to the published networks
            "mape_pct_rescaled": _mape_pct(pred * ratio, held_out.latency_ms)}


def evaluate(networks: Sequence[NetworkMeasurement], tables: Sequence[BlockTable] = (),
             **model_params) -> dict:
    """The full report: the fit on everything, leave-one-family-out, and each table held out."""
    model = OperatorCostModel(**model_params).fit(networks, tables)
    lofo = leave_one_family_out(networks, tables, **model_params)
    return {
        "model": model.to_dict(),
        "fit": model.fit_report_,
        "sources": model.source_report_,
        "leave_one_family_out": lofo,
        "leave_one_family_out_max_mape_pct": max(v["mape_pct"] for v in lofo.values()) if lofo else None,
        "table_held_out": {t.name: table_spearman(networks, tables, t, **model_params) for t in tables},
    }
