"""The accuracy-estimator contract (scikit-learn style) and a helper to accept arch dicts too."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from search_spaces.base import SearchSpace


@runtime_checkable
class AccuracyEstimator(Protocol):
    """Anything with ``predict(X) -> top-1 as a fraction`` over a space's encoded matrix.

    ``name`` and ``source`` (where its numbers come from) are optional; results report them.
    """

    def predict(self, X: np.ndarray) -> np.ndarray: ...


def as_matrix(space: SearchSpace, archs: np.ndarray | Sequence[dict]) -> np.ndarray:
    """The encoded matrix of ``archs``, which may already be one."""
    if isinstance(archs, np.ndarray):
        return archs
    return space.encode(list(archs))


def describe(estimator) -> dict:
    return {"name": getattr(estimator, "name", type(estimator).__name__),
            "source": getattr(estimator, "source", "user-supplied estimator")}
