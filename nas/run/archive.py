"""What a search has scored: the cache of every evaluated arch (never pay twice) and the top-k / front archive."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_HASH_MULT = np.random.default_rng(20190101).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)


def row_hash(X: np.ndarray) -> np.ndarray:
    """A 64-bit key per row (random odd multipliers, wrapping): de-duplication without a row sort."""
    with np.errstate(over="ignore"):
        return np.asarray(X).astype(np.uint64) @ _HASH_MULT[: X.shape[1]]


class EvalCache:
    """Every scored arch of a run, keyed by its row: (X, accuracy, latency) in the order scored.

    Lookups are vectorised (a sorted copy of the keys and ``searchsorted``). The arrays are part of
    the checkpoint, so an arch is scored once per run, also across ``--resume``.
    """

    def __init__(self, n_dims: int, n_targets: int):
        self.X = np.empty((0, n_dims), np.int64)
        self.acc = np.empty(0)
        self.lat = np.empty((0, n_targets))
        self._reindex()

    def _reindex(self):
        self.keys = row_hash(self.X) if len(self.X) else np.empty(0, np.uint64)
        self._order = np.argsort(self.keys, kind="stable")
        self._sorted = self.keys[self._order]

    def __len__(self) -> int:
        return len(self.X)

    def find(self, X: np.ndarray) -> np.ndarray:
        """Index into the cache of each row of X, -1 where unseen."""
        if len(X) == 0 or len(self._sorted) == 0:
            return np.full(len(X), -1, np.int64)
        return self.find_keys(row_hash(X))

    def find_keys(self, k: np.ndarray) -> np.ndarray:
        """``find`` for rows already hashed with ``row_hash``."""
        if len(k) == 0 or len(self._sorted) == 0:
            return np.full(len(k), -1, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, k), len(self._sorted) - 1)
        hit = self._sorted[pos] == k
        return np.where(hit, self._order[pos], -1)

    def add(self, X: np.ndarray, acc: np.ndarray, lat: np.ndarray) -> None:
        self.X = np.concatenate([self.X, X])
        self.acc = np.concatenate([self.acc, acc])
        self.lat = np.concatenate([self.lat, lat])
        # only the new rows are hashed: re-hashing the whole cache each generation cost more than
        # the search's accuracy evaluations on a 20,000-arch run
        self.keys = np.concatenate([self.keys, row_hash(np.asarray(X)) if len(X) else np.empty(0, np.uint64)])
        self._order = np.argsort(self.keys, kind="stable")
        self._sorted = self.keys[self._order]

    def arrays(self) -> dict:
        return {"X": self.X, "acc": self.acc, "lat": self.lat}

    def load(self, arrays: dict) -> None:
        self.X, self.acc, self.lat = arrays["X"].astype(np.int64), arrays["acc"], arrays["lat"]
        self._reindex()


def first_occurrence(X: np.ndarray) -> np.ndarray:
    """Mask of the rows that appear for the first time in X (stable)."""
    if len(X) == 0:
        return np.zeros(0, bool)
    return first_occurrence_keys(row_hash(X))


def first_occurrence_keys(keys: np.ndarray) -> np.ndarray:
    """``first_occurrence`` for rows already hashed with ``row_hash``."""
    if len(keys) == 0:
        return np.zeros(0, bool)
    _, first = np.unique(keys, return_index=True)
    mask = np.zeros(len(keys), bool)
    mask[first] = True
    return mask


@dataclass
class Archive:
    """Top-k by score and the accuracy/latency Pareto front over everything evaluated."""

    k: int
    n_dims: int
    n_targets: int
    arrays: dict = field(default_factory=dict)
    # With MnasNet's hard reward an arch over budget can still out-score every arch within it;
    # the reported best is then the best one within budget (when there is one).
    limits_ms: np.ndarray | None = None

    def __post_init__(self):
        if not self.arrays:
            for part in ("top", "front"):
                self.arrays[f"{part}_X"] = np.empty((0, self.n_dims), np.int64)
                self.arrays[f"{part}_acc"] = np.empty(0)
                self.arrays[f"{part}_lat"] = np.empty((0, self.n_targets))
                self.arrays[f"{part}_score"] = np.empty(0)

    def add(self, X, acc, lat, score):
        a = self.arrays
        for part, select in (("top", self._top), ("front", self._front)):
            X2 = np.concatenate([a[f"{part}_X"], X])
            acc2 = np.concatenate([a[f"{part}_acc"], acc])
            lat2 = np.concatenate([a[f"{part}_lat"], lat])
            score2 = np.concatenate([a[f"{part}_score"], score])
            _, first = np.unique(row_hash(X2), return_index=True)
            keep = select(acc2[first], lat2[first], score2[first])
            idx = first[keep]
            a[f"{part}_X"], a[f"{part}_acc"], a[f"{part}_lat"], a[f"{part}_score"] = (
                X2[idx], acc2[idx], lat2[idx], score2[idx])

    def best(self) -> tuple[float, float, float]:
        """(top-1, first target's latency, score) of the best arch so far (NaN before any)."""
        a = self.arrays
        if not len(a["top_acc"]):
            return np.nan, np.nan, np.nan
        return float(a["top_acc"][0]), float(a["top_lat"][0, 0]), float(a["top_score"][0])

    def _top(self, acc, lat, score):
        keys = [lat[:, 0], -score]  # best score first; ties: faster first
        if self.limits_ms is not None:
            keys.append(~(lat <= self.limits_ms[None, :]).all(axis=1))
        order = np.lexsort(keys)
        return order[np.isfinite(score[order])][: self.k]

    @staticmethod
    def _front(acc, lat, score):
        """Non-dominated in (accuracy up, first target's latency down), among scored archs."""
        ok = np.flatnonzero(np.isfinite(score) & np.isfinite(lat[:, 0]))
        order = ok[np.lexsort((-acc[ok], lat[ok, 0]))]
        best_before = np.maximum.accumulate(np.concatenate([[-np.inf], acc[order]]))[:-1]
        return order[acc[order] > best_before]
