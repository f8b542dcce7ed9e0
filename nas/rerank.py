"""``--verify-accuracy SPEC``: measure a search's top-k with a second estimator and re-rank them by it.

Once-for-All's recipe: measure subnets with the supernet, fit a predictor to them, search on the
predictor (free), then measure the predictor's best picks with the supernet and keep the best
measured. A predictor fitted on a few hundred random archs ranks them well overall but cannot
separate the best few percent it has hardly seen, near the latency limit, where every search
ends; measuring its top K settles that. The K measurements count in the recipe's budget
(``cost.verification_evaluations``), beside the pairs the predictor was fitted on.
"""

from __future__ import annotations

import time

import numpy as np

from .results import SearchResult


def rerank_result(result: SearchResult, space, est, spec: str, run_dir=None) -> SearchResult:
    """Each top-k arch's ``measured_top1`` by the estimator ``est`` (built from ``spec``); top-k
    re-ranked by it, best = best measured."""
    from .accuracy import describe
    from .accuracy.run_state import KeepsRunState

    if not result.top_k:
        return result
    if run_dir is not None and isinstance(est, KeepsRunState):  # a resumed run's verification is cached
        est.use_run_dir(run_dir)
    t0 = time.perf_counter()
    X = space.encode([s.arch for s in result.top_k])
    acc = np.asarray(est.predict(X), dtype=np.float64)
    wall = time.perf_counter() - t0
    for s, a in zip(result.top_k, acc):
        s.measured_top1 = float(a)
    # stable: among equal measurements the search's own order (its predicted top-1) decides
    order = sorted(range(len(acc)), key=lambda i: -acc[i])
    predicted_best = result.top_k[0]
    result.top_k = [result.top_k[i] for i in order]
    result.best = result.top_k[0]
    info = describe(est)
    result.verified_accuracy = {"spec": spec, "name": info.get("name"), "source": info.get("source"),
                                "n": len(acc), "wall_s": round(wall, 1),
                                "search_best_measured_top1": predicted_best.measured_top1,
                                "best_rank_in_search": order[0] + 1}
    if result.cost is not None:
        result.cost["verification_evaluations"] = len(acc)
    result.notes.append(
        f"--verify-accuracy: the search's top {len(acc)} measured with {info.get('name')} ({info.get('source')}) "
        f"in {wall:.1f} s; best measured {100 * acc.max():.2f} % (the search's rank {order[0] + 1}; its rank 1 "
        f"measured {100 * predicted_best.measured_top1:.2f} %); ranked by the measurement")
    return result
