"""Once-for-All's MobileNetV3 layout: stages, choices, resolutions and widths.

The numbers the space, its net.config reader and its supernet all share; they sit below all three
so that none of them imports another for a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..layers import make_divisible

N_STAGES, MAX_DEPTH = 5, 4
N_SLOTS = N_STAGES * MAX_DEPTH
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
SEARCH_RESOLUTIONS = tuple(range(128, 225, 4))
# Released nets run at 236 and 260, so any multiple of 4 in a sane range builds and prices.
RESOLUTIONS = tuple(range(32, 513, 4))
BLOCKS_PER_RESOLUTION = 2 + N_STAGES * 2 * len(KERNELS) * len(EXPANDS) + 4  # 96, as OFA's tables

# MobileNetV3 stage layout used by Once-for-All (stride, activation, SE per elastic stage).
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)
BASE_WIDTHS = {"stem": 16, "first": 16, "stages": (24, 40, 80, 112, 160), "final": 960, "mix": 1280}
N_CLASSES = 1000


@dataclass(frozen=True)
class Widths:
    stem: int
    stages: tuple[int, ...]
    final_expand: int
    feature_mix: int


def widths_for(mult: float) -> Widths:
    w = lambda c: make_divisible(c * mult, 8)  # noqa: E731
    return Widths(w(BASE_WIDTHS["stem"]), tuple(w(c) for c in BASE_WIDTHS["stages"]),
                  w(BASE_WIDTHS["final"]), w(BASE_WIDTHS["mix"]))
