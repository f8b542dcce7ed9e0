"""What a search has scored: the cache of every evaluated arch (never pay twice) and the top-k / front archive."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_HASH_MULT = np.random.default_rng(20190101).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)


def row_hash(X: np.ndarray) -> np.ndarray:
    """A 64-bit key per row (random odd multipliers, wrapping): de-duplication without a row sort.

    Integer array arithmetic wraps silently (numpy warns on overflow only for scalars), so no
    ``errstate`` guard: entering one costs more than hashing a small batch."""
    return np.asarray(X).astype(np.uint64) @ _HASH_MULT[: X.shape[1]]


class EvalCache:
    """Every scored arch of a run, keyed by its row: (X, accuracy, latency) in the order scored.

    Lookups are vectorised (a sorted copy of the keys and ``searchsorted``). The arrays are part of
    the checkpoint, so an arch is scored once per run, also across ``--resume``.
    """

    def __init__(self, n_dims: int, n_targets: int, capacity: int = 64):
        # Rows go into buffers that double when full, and new keys are merged into the sorted index:
        # a 20,000-arch search adds 200 batches, and copying the whole cache per batch was O(n^2).
        # ``capacity`` (the search budget, when known) sizes them once: each doubling is a fresh
        # block from the OS whose pages fault in again, 10-20% of a fast search's time.
        cap = max(int(capacity), 1)
        self._X = np.empty((cap, n_dims), np.int64)
        self._acc = np.empty(cap)
        self._lat = np.empty((cap, n_targets))
        self._keys = np.empty(cap, np.uint64)
        self._n = 0
        self._order = np.empty(0, np.int64)
        self._sorted = np.empty(0, np.uint64)

    X = property(lambda self: self._X[: self._n])
    acc = property(lambda self: self._acc[: self._n])
    lat = property(lambda self: self._lat[: self._n])
    keys = property(lambda self: self._keys[: self._n])

    def _reserve(self, n: int) -> None:
        if n <= len(self._X):
            return
        cap = max(n, 2 * len(self._X))
        for name in ("_X", "_acc", "_lat", "_keys"):
            old = getattr(self, name)
            new = np.empty((cap,) + old.shape[1:], old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def __len__(self) -> int:
        return self._n

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

    def add(self, X: np.ndarray, acc: np.ndarray, lat: np.ndarray, keys: np.ndarray | None = None) -> None:
        """Append rows (``keys``: their ``row_hash``, when the caller has it already)."""
        X = np.asarray(X)
        m = len(X)
        if m == 0:
            return
        self._reserve(self._n + m)
        lo, hi = self._n, self._n + m
        self._X[lo:hi], self._acc[lo:hi], self._lat[lo:hi] = X, acc, lat
        k = row_hash(X) if keys is None else keys  # only the new rows are hashed
        self._keys[lo:hi] = k
        self._n = hi
        order = np.argsort(k, kind="stable")
        # after equal keys already there, as a stable sort of the whole would place them
        at = np.searchsorted(self._sorted, k[order], side="right")
        # merge by position (what np.insert does, without its per-call overhead): new key i lands
        # at at[i] + i, the old keys fill the other slots in order
        dest = at + np.arange(m)
        is_new = np.zeros(len(self._sorted) + m, bool)
        is_new[dest] = True
        merged_keys = np.empty(len(is_new), np.uint64)
        merged_order = np.empty(len(is_new), np.int64)
        merged_keys[dest], merged_order[dest] = k[order], lo + order
        merged_keys[~is_new], merged_order[~is_new] = self._sorted, self._order
        self._sorted, self._order = merged_keys, merged_order

    def arrays(self) -> dict:
        return {"X": self.X, "acc": self.acc, "lat": self.lat}

    def load(self, arrays: dict) -> None:
        n_dims, n_targets = self._X.shape[1], self._lat.shape[1]
        self.__init__(n_dims, n_targets, len(self._X))
        X = np.asarray(arrays["X"]).astype(np.int64).reshape(-1, n_dims)
        self.add(X, np.asarray(arrays["acc"]), np.asarray(arrays["lat"]).reshape(len(X), n_targets))


def key_in(keys: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``np.isin(keys, other)`` for row keys by binary search in sorted ``other`` (isin's
    element-wise path for a short ``other`` cost 3x more per row in the search loop)."""
    if len(keys) == 0 or len(other) == 0:
        return np.zeros(len(keys), bool)
    s = np.sort(other)
    return s[np.minimum(np.searchsorted(s, keys), len(s) - 1)] == keys


def first_occurrence(X: np.ndarray) -> np.ndarray:
    """Mask of the rows that appear for the first time in X (stable)."""
    if len(X) == 0:
        return np.zeros(0, bool)
    return first_occurrence_keys(row_hash(X))


def first_occurrence_keys(keys: np.ndarray) -> np.ndarray:
    """``first_occurrence`` for rows already hashed with ``row_hash``."""
    if len(keys) == 0:
        return np.zeros(0, bool)
    # np.unique(keys, return_index=True) without its per-call overhead: a stable sort puts each
    # key's first occurrence at the head of its run
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    head = np.empty(len(keys), bool)
    head[0] = True
    np.not_equal(sk[1:], sk[:-1], out=head[1:])
    mask = np.zeros(len(keys), bool)
    mask[order[head]] = True
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
