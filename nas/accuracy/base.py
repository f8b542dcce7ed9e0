"""The accuracy-estimator contract (scikit-learn style) and a helper to accept arch dicts too."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from search_spaces.base import SearchSpace
from search_spaces.errors import UserError

USER_METRIC = "accuracy as a fraction, as the user's estimator defines it (it declares no metric)"


@runtime_checkable
class AccuracyEstimator(Protocol):
    """Anything with ``predict(X) -> top-1 as a fraction`` over a space's encoded matrix.

    ``name``, ``source`` (where its numbers come from), ``metric`` (what the fraction is, e.g.
    "ImageNet top-1") and ``ranking`` (what it can and cannot rank) are optional; results report them.
    """

    def predict(self, X: np.ndarray) -> np.ndarray: ...


def as_matrix(space: SearchSpace, archs: np.ndarray | Sequence[dict]) -> np.ndarray:
    """The encoded matrix of ``archs``, which may already be one."""
    if isinstance(archs, np.ndarray):
        return archs
    return space.encode(list(archs))


def describe(estimator) -> dict:
    if isinstance(estimator, UnitChecked):
        estimator = estimator.inner
    d = {"name": getattr(estimator, "name", type(estimator).__name__),
         "source": getattr(estimator, "source", "user-supplied estimator"),
         "metric": getattr(estimator, "metric", USER_METRIC)}
    ranking = getattr(estimator, "ranking", None)
    if ranking:
        d["ranking"] = ranking
    return {k: str(v) for k, v in d.items()}


def check_fraction(values: np.ndarray, estimator) -> np.ndarray:
    """``values`` if they are fractions in [0, 1]; a one-line UserError naming the fix otherwise."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    name = getattr(estimator, "name", type(estimator).__name__)
    if finite.size and finite.max() > 1.0:
        hint = " (it looks like a percent: divide by 100)" if finite.max() <= 100.0 else ""
        raise UserError(f"accuracy estimator {name!r} returned {finite.max():.4g}, above 1{hint}; "
                        f"predict(X) must return accuracy as a fraction in [0, 1]")
    if finite.size and finite.min() < 0.0:
        raise UserError(f"accuracy estimator {name!r} returned {finite.min():.4g}, below 0; "
                        f"predict(X) must return accuracy as a fraction in [0, 1]")
    return v


class UnitChecked:
    """A user's estimator whose outputs are checked to be fractions (a percent is caught, not searched on).

    Every other attribute (name, source, metric, counters a test keeps) is the wrapped object's.
    """

    def __init__(self, inner):
        self.inner = inner

    def predict(self, X: np.ndarray) -> np.ndarray:
        return check_fraction(self.inner.predict(X), self.inner)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)
