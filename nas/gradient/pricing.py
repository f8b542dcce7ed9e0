"""The latency term of gradient strategies and the final projection onto the budget, from the target's table.

Latency tables price an arch as a sum over its blocks, so the full space's latency is
``base + sum_l cost[l, choice_l]`` with ``cost[l, c]`` the change from the base arch (every layer
at its first searched choice) when layer l alone takes choice c. ``layer_costs`` reads those
entries off the target's predictor with one call on ``1 + sum(choices)`` archs, at the space's
full input size; the expected latency under per-layer choice probabilities P is then
``base + sum(P * cost)``, differentiable in P. For a predictor that is not additive this is its
first-order expansion around the base arch; the projection checks its pick with the predictor itself.

``project`` picks the arch of highest probability whose latency lies in ``[fill * T, T]``: a
multiple-choice knapsack solved exactly by dynamic programming over latency bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search_spaces.errors import UserError


@dataclass(frozen=True)
class LayerCosts:
    base_ms: float           # latency of the base arch
    base_row: np.ndarray     # (n_dims,) the base arch
    cost_ms: np.ndarray      # (n_layers, max positions) change from the base; NaN at unused positions
    mask: np.ndarray         # (n_layers, max positions) positions that exist


def layer_costs(specs, grid, predict) -> LayerCosts:
    """Per-layer, per-choice latency (ms) of the full space from ``predict(X) -> ms`` (one call)."""
    base = grid.canonical(grid.table[:, 0].copy()[None, :])[0]
    rows = [base]
    for s in specs:
        V = np.repeat(base[None, :], len(s.positions), axis=0)
        V[:, s.dim] = s.positions
        rows.append(V)
    X = np.vstack([rows[0][None, :]] + rows[1:])
    lat = np.asarray(predict(X), np.float64).reshape(len(X), -1)[:, 0]
    if not np.isfinite(lat).all():
        raise UserError("the target's latency table does not price every choice of every layer of this space; "
                        "profile the space on it first (nas profile --space SPACE)")
    width = max(len(s.positions) for s in specs)
    cost = np.full((len(specs), width), np.nan)
    mask = np.zeros((len(specs), width), bool)
    at = 1
    for i, s in enumerate(specs):
        n = len(s.positions)
        cost[i, :n] = lat[at:at + n] - lat[0]
        mask[i, :n] = True
        at += n
    return LayerCosts(float(lat[0]), base, cost, mask)


def expected_ms(costs: LayerCosts, P) -> "float | object":
    """base + sum(P * cost): works on numpy arrays and on torch tensors (differentiable in P)."""
    c = np.where(costs.mask, costs.cost_ms, 0.0)
    try:
        import torch

        if isinstance(P, torch.Tensor):
            return costs.base_ms + (P * torch.as_tensor(c, dtype=P.dtype)).sum()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return costs.base_ms + float((np.asarray(P) * c).sum())


def bounds_ms(costs: LayerCosts) -> tuple[float, float]:
    """(smallest, largest) latency over the layer choices."""
    c = np.where(costs.mask, costs.cost_ms, np.nan)
    return costs.base_ms + float(np.nanmin(c, axis=1).sum()), costs.base_ms + float(np.nanmax(c, axis=1).sum())


def arch_row(costs: LayerCosts, specs, choice: np.ndarray) -> np.ndarray:
    """The encoded arch of per-layer positions (indices into each layer's searched choices)."""
    row = costs.base_row.copy()
    for s, c in zip(specs, choice):
        row[s.dim] = s.positions[int(c)]
    return row


def argmax_choice(costs: LayerCosts, P: np.ndarray) -> np.ndarray:
    return np.argmax(np.where(costs.mask, P, -np.inf), axis=1)


def project(costs: LayerCosts, P: np.ndarray, limit_ms: float, fill: float, bins: int = 4000) -> np.ndarray | None:
    """Per-layer positions maximising sum(log P) with latency in [fill * limit, limit]; None if none.

    Costs are rounded up to bins of (limit - floor) / bins, so a pick never exceeds ``limit``;
    the lower edge is asked one bin per layer higher, so it holds too.
    """
    logp = np.where(costs.mask, np.log(np.clip(P, 1e-12, 1.0)), -np.inf)
    c = np.where(costs.mask, costs.cost_ms, np.inf)
    floor = c.min(axis=1)                      # per-layer cheapest choice
    lo_ms = costs.base_ms + floor.sum()
    room = limit_ms - lo_ms
    if room < 0:
        return None
    step = max(room, 1e-9) / bins
    w = np.where(costs.mask, np.ceil((c - floor[:, None]) / step - 1e-9), 0).astype(np.int64)
    # a cost rounded up to w bins is above (w - 1) bins: asking one more bin per layer keeps the
    # lower edge exact
    need = int(np.ceil((fill * limit_ms - lo_ms) / step)) + len(c) if fill > 0 else 0
    n = bins + 1
    V = np.full(n, -np.inf)
    V[0] = 0.0
    back = np.zeros((len(c), n), np.int64)
    for i in range(len(c)):
        best = np.full(n, -np.inf)
        arg = np.zeros(n, np.int64)
        for j in np.flatnonzero(costs.mask[i]):
            if w[i, j] >= n:
                continue
            cand = np.full(n, -np.inf)
            cand[w[i, j]:] = V[: n - w[i, j]] + logp[i, j]
            better = cand > best
            best[better], arg[better] = cand[better], j
        V, back[i] = best, arg
    ok = np.arange(n) >= max(need, 0)
    if not np.isfinite(V[ok]).any():
        ok = np.ones(n, bool)                  # nothing reaches the lower edge: the most probable within limit
        if not np.isfinite(V).any():
            return None
    b = int(np.flatnonzero(ok)[np.argmax(V[ok])])
    choice = np.zeros(len(c), np.int64)
    for i in range(len(c) - 1, -1, -1):
        choice[i] = back[i, b]
        b -= w[i, choice[i]]
    return choice
