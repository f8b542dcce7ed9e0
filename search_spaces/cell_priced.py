"""The ``CellPriced`` capability: a space whose networks are priced as whole cells (graphs), not per op.

A chain of blocks costs the sum of its blocks; a cell is a small graph whose ops run as parallel
branches into adds and a concat, so its cost is not the sum of its ops. A space that can list, per
arch, the units a latency table should time whole (its stem, every cell with its input shapes and
widths, its head) and build each unit on its own implements this Protocol; the latency predictor
then prices it through ``latency_predictors.cells`` (measuring units on demand on a measured device).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .blocks import BlockKey


@runtime_checkable
class CellPriced(Protocol):
    def cell_matrix(self, X: np.ndarray, index: dict[str, int], keys: list[BlockKey]) -> np.ndarray:
        """(n, units) ids into ``keys`` of each encoded arch's units; new keys are appended (``index``: text -> id)."""

    def build_unit(self, key: BlockKey):
        """(module, [input shape (C, H, W) per input]) of one unit; a cell takes (newer, older) inputs."""
