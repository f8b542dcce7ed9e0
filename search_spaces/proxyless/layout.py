"""ProxylessNAS's mobile layout: stages, choices and widths, shared by the space and its .config reader."""

from __future__ import annotations

from dataclasses import dataclass

KERNELS = (3, 5, 7)
EXPANDS = (3, 6)
OPTIONS = {f"k{k}e{e}": (k, e) for k in KERNELS for e in EXPANDS}
SKIP = "skip"
STAGE_CELLS = (4, 4, 4, 4, 4, 1)
STAGE_STRIDES = (2, 2, 2, 1, 2, 1)
N_SLOTS = sum(STAGE_CELLS)
IMAGE_SIZE = 224
N_CLASSES = 1000
ACT = "relu6"
RELU6 = (("hs", 0),)  # the stem's and head's key parameter: not h-swish


@dataclass(frozen=True)
class ProxylessWidths:
    """Channel counts: stem, first block, the six stages, the head's 1x1 conv."""

    stem: int = 32
    first: int = 16
    stages: tuple[int, ...] = (24, 40, 80, 96, 192, 320)
    head: int = 1280


SEARCHED = ProxylessWidths()


def slot_layout() -> list[tuple[int, bool]]:
    """(stage, is the stage's first layer) of each of the 21 slots."""
    return [(s, j == 0) for s, n in enumerate(STAGE_CELLS) for j in range(n)]
