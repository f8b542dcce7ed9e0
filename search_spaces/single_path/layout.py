"""Single-Path NAS's layout: the options, stages and per-layer plan the space and its supernet share."""

from __future__ import annotations

from ..mobile_blocks import down

OPTIONS = {"k3e3": (3, 3), "k3e6": (3, 6), "k5e3": (5, 3), "k5e6": (5, 6)}
LAYER_OPTIONS = tuple(OPTIONS)  # the per-layer runtime table's column order
SKIP = "skip"
FIRST = "k3e1"
IMAGE_SIZE = 224
STEM, FIRST_WIDTH, HEAD, N_CLASSES = 32, 16, 1280, 1000
# (repeats, stride of the first, output width, has identity shortcuts) after layer 0
STAGES = ((4, 2, 24, True), (4, 2, 40, True), (4, 2, 80, True), (4, 1, 96, True), (4, 2, 192, True),
          (1, 1, 320, False))
N_LAYERS = 22
ACT = "relu"


def layer_plan(image_size: int = IMAGE_SIZE) -> list[tuple[int, int, int, int, bool]]:
    """(input size, cin, cout, stride, identity shortcut) of layers 0..21."""
    size = down(image_size, 2)
    plan = [(size, STEM, FIRST_WIDTH, 1, False)]
    cin = FIRST_WIDTH
    for repeats, stride, cout, shortcut in STAGES:
        for r in range(repeats):
            s = stride if r == 0 else 1
            plan.append((size, cin, cout, s, shortcut and s == 1 and cin == cout))
            size, cin = down(size, s), cout
    return plan
