"""A per-operator analytical latency model, fitted on published figures of a device we cannot touch.

Each block is decomposed into the kernels the runtime executes (``operators.block_ops``); a
kernel's latency is a non-negative sum of physical terms:

    ms = a_kind * MMACs  +  b_act * MB of activations  +  b_w * MB of weights
         + b_elem * MB through element-wise kernels  +  b_pool * MB through global pooling
         + t_kernel * 1 (dispatch overhead per kernel)

with one MAC rate per compute kind (regular conv incl. the stem, depthwise, pointwise, fully
connected), and a whole network adds one fixed overhead (``network_overhead_ms``). Ten
coefficients in all, fitted by non-negative least squares on relative errors, so a 5 ms and a
140 ms network weigh alike; a few Huber re-weighting rounds keep one odd figure from steering it.

Per-block tables measured by other people on the same phone (another TFLite build, another
harness) may sit at another overall speed: each table gets one multiplicative scale, fitted
alongside. A table then teaches relative costs only.

Whole-network figures come from several documents, measured with TFLite builds years apart (the
2018 MobileNetV2 and MnasNet tables; the MobileNetV3 README's, about 12 % faster at equal work).
Likewise each source (``measurements.source_key``: the cited document and table) gets one
multiplicative speed factor, fitted jointly; the source with the most rows is the reference
(factor 1), and a source with fewer than ``min_source_rows`` rows in the fit keeps factor 1 (one
or two rows would only absorb their own error). Coefficients, block predictions and device
profiles are on the reference source's scale; ``predict_networks(..., source_scaled=True)``
multiplies a measurement by its source's factor (1 for a source the fit did not scale).

Scikit-learn style: ``fit(networks, tables)`` learns ``coef_`` (and ``table_scale_``,
``source_scale_``, ``reference_source_``, ``fit_report_``, ``source_report_``),
``predict_blocks(keys)`` prices blocks, ``to_dict``/``from_dict`` round-trip the fitted state as
plain data for a device profile.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from search_spaces.blocks import BlockKey
from search_spaces.errors import UserError

from .measurements import BlockTable, NetworkMeasurement, source_key
from .operators import COMPUTE_KINDS, ELEMENTWISE, FC, POOL, Op, block_ops

MODEL_NAME = "operator-cost-v1"

# (name, unit, what it multiplies) in column order.
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("conv_mmacs", "ms/MMAC", "multiply-accumulates of regular convs (incl. the stem)"),
    ("dwconv_mmacs", "ms/MMAC", "multiply-accumulates of depthwise convs"),
    ("pwconv_mmacs", "ms/MMAC", "multiply-accumulates of 1x1 (pointwise, grouped) convs"),
    ("fc_mmacs", "ms/MMAC", "multiply-accumulates of fully connected layers (1x1 on a 1x1 map)"),
    ("act_mb", "ms/MB", "activations read and written by convs and FCs"),
    ("weight_mb", "ms/MB", "weights of convs (re-packed for the GEMM on every call)"),
    ("elementwise_mb", "ms/MB", "bytes through element-wise kernels (h-swish, gates, SE scaling, adds)"),
    ("pool_mb", "ms/MB", "bytes read by global average pooling (incl. SE squeeze)"),
    ("kernels", "ms/kernel", "fixed dispatch overhead of every kernel"),
    ("network", "ms/network", "fixed overhead of one whole-network inference"),
)
FEATURE_NAMES = tuple(f[0] for f in FEATURES)
_IDX = {n: i for i, n in enumerate(FEATURE_NAMES)}
NETWORK = _IDX["network"]


def op_features(ops: Iterable[Op]) -> np.ndarray:
    """The feature vector (without the network column) of a list of kernels."""
    f = np.zeros(len(FEATURES))
    for op in ops:
        if op.kind in COMPUTE_KINDS:
            f[_IDX[f"{op.kind}_mmacs"]] += op.macs / 1e6
            f[_IDX["act_mb"]] += op.act_bytes / 1e6
            if op.kind != FC:  # a matrix-vector product streams its weights once: fc_mmacs
                f[_IDX["weight_mb"]] += op.weight_bytes / 1e6
        elif op.kind == ELEMENTWISE:
            f[_IDX["elementwise_mb"]] += op.act_bytes / 1e6
        elif op.kind == POOL:
            f[_IDX["pool_mb"]] += op.act_bytes / 1e6
        f[_IDX["kernels"]] += 1
    return f


_FEATURE_CACHE: dict[BlockKey, np.ndarray] = {}


def block_features(keys: Sequence[BlockKey]) -> np.ndarray:
    """(n_blocks, n_features): each block's work, from its decomposition into kernels."""
    out = np.empty((len(keys), len(FEATURES)))
    for i, key in enumerate(keys):
        f = _FEATURE_CACHE.get(key)
        if f is None:
            f = _FEATURE_CACHE[key] = op_features(block_ops(key))
        out[i] = f
    return out


def network_features(blocks: Sequence[BlockKey]) -> np.ndarray:
    """The feature vector of a whole network: its blocks' sum plus one network overhead."""
    f = block_features(blocks).sum(axis=0)
    f[NETWORK] = 1.0
    return f


def _as_block_lists(networks) -> list[list[BlockKey]]:
    return [list(n.blocks) if isinstance(n, NetworkMeasurement) else list(n) for n in networks]


class OperatorCostModel:
    """Latency of any block from its operators' MACs and memory traffic; see the module doc.

    Parameters (stored, not validated, until ``fit``):
      table_scale: fit one multiplicative scale per block table (else all share the networks').
      table_weight: total weight of each block table relative to all whole networks together
        (0.3: tables, timed by other harnesses, shape the relative costs; the networks lead).
      huber_delta: relative residual beyond which a figure's weight is reduced (0 disables it).
      n_reweight: Huber re-weighting rounds.
      source_scale: fit one speed factor per source of whole-network figures (the one with the
        most rows is the reference, factor 1).
      min_source_rows: a source needs this many rows in the fit to get its own factor.
    """

    def __init__(self, table_scale: bool = True, table_weight: float = 0.3,
                 huber_delta: float = 0.05, n_reweight: int = 5, source_scale: bool = True,
                 min_source_rows: int = 3):
        self.table_scale = table_scale
        self.source_scale = source_scale
        self.min_source_rows = min_source_rows
        self.table_weight = table_weight
        self.huber_delta = huber_delta
        self.n_reweight = n_reweight

    # ---- fitting ----------------------------------------------------------------------------
    def fit(self, networks: Sequence[NetworkMeasurement] = (),
            tables: Sequence[BlockTable] = ()) -> "OperatorCostModel":
        """Learn the coefficients from whole-network figures and per-block tables."""
        networks, tables = list(networks), list(tables)
        if not networks and not tables:
            raise UserError("nothing to fit: give whole-network figures and/or block tables")
        sources, reference = self._network_sources(networks)
        n_groups = len(tables) + len(sources)
        rows, y, weight, group = [], [], [], []
        for n in networks:
            rows.append(network_features(n.blocks))
            y.append(n.latency_ms)
            weight.append(1.0 / len(networks))
            key = source_key(n) if self.source_scale else ""
            group.append(len(tables) + sources.index(key))
        for t, table in enumerate(tables):
            if len(table) == 0:
                raise UserError(f"block table {table.name!r} is empty")
            rows.append(block_features(table.keys))
            y.extend(table.latency_ms)
            share = self.table_weight if networks else 1.0
            weight.extend([share / len(table)] * len(table))
            group.extend([t] * len(table))
        A = np.vstack([np.atleast_2d(r) for r in rows])
        y = np.asarray(y, dtype=np.float64)
        weight = np.asarray(weight)
        group = np.asarray(group)
        if np.any(y <= 0):
            raise UserError("every latency to fit must be positive")

        # Which groups get a fitted scale: tables (if table_scale), network sources other than
        # the reference with at least min_source_rows rows (if source_scale).
        free = np.zeros(n_groups, dtype=bool)
        free[:len(tables)] = bool(self.table_scale)
        for s, key in enumerate(sources):
            free[len(tables) + s] = (self.source_scale and key != reference
                                     and np.sum(group == len(tables) + s) >= self.min_source_rows)
        scale = np.ones(n_groups)
        robust = np.ones(len(y))
        for _ in range(max(1, self.n_reweight + 1)):
            target = y / scale[group]
            coef = _weighted_nnls(A, target, weight * robust / target ** 2)
            pred = A @ coef
            for g in np.flatnonzero(free):
                m = (group == g) & (pred > 0)
                scale[g] = float(np.exp(np.mean(np.log(y[m] / pred[m])))) if m.any() else 1.0
            rel = pred * scale[group] / y - 1.0
            if self.huber_delta > 0:
                robust = np.minimum(1.0, self.huber_delta / np.maximum(np.abs(rel), 1e-12))

        self.coef_ = coef
        self.table_scale_ = {tables[t].name: float(scale[t]) for t in range(len(tables))}
        self.source_scale_ = ({key: float(scale[len(tables) + s]) for s, key in enumerate(sources)}
                              if self.source_scale else {})
        self.reference_source_ = reference
        self.fit_report_ = self._report(networks, tables, rel, group)
        # Each source of whole-network figures: its rows, its factor, its MAPE at that factor.
        self.source_report_ = {
            key: {"n": int(np.sum(group == len(tables) + s)), "scale": self.source_scale_[key],
                  "mape_pct": float(100 * np.abs(rel[group == len(tables) + s]).mean())}
            for s, key in enumerate(sources)} if self.source_scale else {}
        return self

    def _network_sources(self, networks) -> tuple[list[str], str]:
        """The distinct source keys of the networks (first-seen order) and the reference one."""
        keys = [source_key(n) if self.source_scale else "" for n in networks]
        sources = list(dict.fromkeys(keys))
        reference = max(sources, key=keys.count) if sources else ""
        return sources, reference

    def _report(self, networks, tables, rel, group) -> dict:
        report = {}
        if networks:
            r = np.abs(rel[group >= len(tables)])
            report["whole_networks"] = {"n": len(networks), "mape_pct": float(100 * r.mean()),
                                        "max_ape_pct": float(100 * r.max())}

        for t, table in enumerate(tables):
            r = np.abs(rel[group == t])
            report[table.name] = {"n": len(table), "mape_pct": float(100 * r.mean()),
                                  "scale": self.table_scale_[table.name]}
        return report

    # ---- prediction -------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            raise UserError("the cost model is not fitted: call fit() or load it with from_dict()")

    def predict_blocks(self, keys: Sequence[BlockKey]) -> np.ndarray:
        """Latency (ms) of each block on its own, without the whole-network overhead."""
        self._check_fitted()
        if len(keys) == 0:
            return np.zeros(0)
        return block_features(keys) @ self.coef_

    @property
    def network_overhead_ms(self) -> float:
        self._check_fitted()
        return float(self.coef_[NETWORK])

    def source_factor(self, measurement: NetworkMeasurement | str) -> float:
        """The fitted speed factor of a measurement's source (or source key); 1 if not fitted."""
        self._check_fitted()
        if not getattr(self, "source_scale", False):
            return 1.0
        key = measurement if isinstance(measurement, str) else source_key(measurement)
        return float(getattr(self, "source_scale_", {}).get(key, 1.0))

    def predict_networks(self, networks, source_scaled: bool = False) -> np.ndarray:
        """Latency (ms) of whole networks: block lists (or measurements) plus the overhead.

        On the reference source's scale; with ``source_scaled`` each measurement is multiplied by
        its source's fitted factor (as that source would have published it).
        """
        self._check_fitted()
        blocks = _as_block_lists(networks)
        pred = np.array([network_features(b) @ self.coef_ for b in blocks])
        if source_scaled:
            pred = pred * np.array([self.source_factor(n) if isinstance(n, NetworkMeasurement) else 1.0
                                    for n in networks])
        return pred

    def breakdown(self, keys: Sequence[BlockKey]) -> dict[str, float]:
        """Milliseconds per feature summed over blocks: where the time goes."""
        self._check_fitted()
        return {n: float(v) for n, v in zip(FEATURE_NAMES, block_features(keys).sum(0) * self.coef_)}

    # ---- plain-data form --------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The fitted model as plain data (a device profile records it)."""
        self._check_fitted()
        return {
            "model": MODEL_NAME,
            "coefficients": {n: float(c) for n, c in zip(FEATURE_NAMES, self.coef_)},
            "units": {n: u for n, u, _ in FEATURES},
            "table_scale": dict(self.table_scale_),
            "source_scale": dict(getattr(self, "source_scale_", {})),
            "reference_source": getattr(self, "reference_source_", ""),
            "params": {"table_scale": self.table_scale, "table_weight": self.table_weight,
                       "huber_delta": self.huber_delta, "n_reweight": self.n_reweight,
                       "source_scale": self.source_scale, "min_source_rows": self.min_source_rows},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "OperatorCostModel":
        if not isinstance(data, dict) or data.get("model") != MODEL_NAME:
            raise UserError(f"not a {MODEL_NAME} cost model: {str(data)[:80]!r}")
        coefs = data.get("coefficients", {})
        missing = [n for n in FEATURE_NAMES if n not in coefs]
        if missing:
            raise UserError(f"cost model lacks coefficient(s) {', '.join(missing)}")
        model = cls(**data.get("params", {}))
        model.coef_ = np.array([float(coefs[n]) for n in FEATURE_NAMES])
        if np.any(model.coef_ < 0):
            raise UserError("cost model coefficients must be non-negative")
        model.table_scale_ = dict(data.get("table_scale", {}))
        model.source_scale_ = {str(k): float(v) for k, v in (data.get("source_scale") or {}).items()}
        model.reference_source_ = str(data.get("reference_source", ""))
        model.fit_report_ = {}
        model.source_report_ = {}
        return model


def _weighted_nnls(A: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """argmin_{c >= 0} sum w (A c - y)^2, with columns normalised for conditioning."""
    sw = np.sqrt(w)[:, None]
    Aw = A * sw
    norms = np.linalg.norm(Aw, axis=0)
    norms[norms == 0] = 1.0
    from scipy.optimize import nnls  # only fitting needs scipy; pricing a profile stays numpy-only

    c, _ = nnls(Aw / norms, y * sw[:, 0], maxiter=50 * A.shape[1])
    return c / norms
