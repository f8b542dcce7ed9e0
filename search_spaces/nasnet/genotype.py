"""NASNet cells as integer arrays: the op list, the canonical form and graph-respecting variation.

A cell of B = 5 blocks is, per block, ``(in_a, op_a, in_b, op_b)``: two inputs, each through one op,
added. Input 0 is the older cell input (h_{i-2}), 1 the newer one (h_{i-1}), ``2 + j`` the output of
block j (j < the block's own index), so every encoding is a valid DAG by construction. An encoded
cell is an ``(n, B, 4)`` int array of input numbers and op indices into ``OPS``.

Two encodings are the same graph when one block lists its two (input, op) pairs the other way
round (add is commutative) or when blocks are renumbered without breaking the order of
dependencies. ``canonical_cells`` rewrites every encoding to the lexicographically smallest among
all those rewritings (the 120 orders of 5 blocks, each with its pairs sorted), so equal graphs have
equal codes; it is vectorised over cells, with one pass per block order.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import permutations

import numpy as np

# NASNet's op list (Zoph et al., CVPR 2018, Sec. 3), in a fixed order: the encoding indexes it.
OPS: tuple[str, ...] = (
    "identity", "conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3",
    "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7")
SHORT: dict[str, str] = {
    "identity": "id", "conv_1x3_3x1": "c13", "conv_1x7_7x1": "c17", "dil_conv_3x3": "dil3",
    "avg_pool_3x3": "avg3", "max_pool_3x3": "max3", "max_pool_5x5": "max5", "max_pool_7x7": "max7",
    "conv_1x1": "c1", "conv_3x3": "c3", "sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "sep_conv_7x7": "sep7"}
N_BLOCKS = 5
N_INPUTS = 2  # the two previous cells' outputs


def n_input_choices(block: int) -> int:
    """Block ``block`` may read the two cell inputs and every earlier block."""
    return N_INPUTS + block


@lru_cache(maxsize=None)
def _orders(n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Every block order (perm[j] = old block placed at j) and its inverse (pos[old] = new index)."""
    perm = np.array(list(permutations(range(n_blocks))), dtype=np.int64)
    pos = np.argsort(perm, axis=1)
    return perm, pos


def _sort_pairs(C: np.ndarray) -> np.ndarray:
    """Each block's two (input, op) pairs in ascending order (add is commutative)."""
    a, b = C[..., 0:2], C[..., 2:4]
    a_first = (a[..., 0] < b[..., 0]) | ((a[..., 0] == b[..., 0]) & (a[..., 1] <= b[..., 1]))
    lo = np.where(a_first[..., None], a, b)
    hi = np.where(a_first[..., None], b, a)
    return np.concatenate([lo, hi], axis=-1)


def canonical_cells(C: np.ndarray, extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The canonical form of ``(n, B, 4)`` cells and their extra concatenated state (``extra``, -1: none).

    The smallest code over every valid block order, each block's pairs sorted; ``extra`` (a state
    number: 0, 1 the inputs, 2 + j block j) is renumbered with the blocks and reset to -1 where it
    names a block that is concatenated anyway (unused).
    """
    C = np.asarray(C, dtype=np.int64)
    n, B, _ = C.shape
    extra = np.full(n, -1, np.int64) if extra is None else np.asarray(extra, dtype=np.int64)
    perm, pos = _orders(B)
    best = best_extra = None
    inputs = C[..., [0, 2]]  # (n, B, 2)
    rows = np.arange(n)
    for p, q in zip(perm, pos):
        moved = C[:, p]  # block j of the candidate is old block p[j]
        ins = inputs[:, p]
        is_blk = ins >= N_INPUTS
        new_in = np.where(is_blk, N_INPUTS + q[np.where(is_blk, ins - N_INPUTS, 0)], ins)
        # A renumbering is valid when every block still reads only earlier blocks.
        valid = (new_in < N_INPUTS + np.arange(B)[None, :, None]).all(axis=(1, 2))
        cand = moved.copy()
        cand[..., 0], cand[..., 2] = new_in[..., 0], new_in[..., 1]
        cand = _sort_pairs(cand).reshape(n, -1)
        ext = np.where(extra >= N_INPUTS, N_INPUTS + q[np.maximum(extra - N_INPUTS, 0)], extra)
        if best is None:  # the identity order comes first and is always valid
            best, best_extra = cand, ext
            continue
        diff = cand != best
        first = np.argmax(diff, axis=1)
        less = valid & diff.any(axis=1) & (cand[rows, first] < best[rows, first])
        best[less] = cand[less]
        best_extra[less] = ext[less]
    best = best.reshape(n, B, 4)
    used = used_blocks(best)
    blk = best_extra - N_INPUTS
    unused_extra = (blk >= 0) & ~used[rows, np.maximum(blk, 0)]
    return best, np.where(unused_extra, -1, best_extra)


def concat_states(C: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """(n, N_INPUTS + B) bool: the states a cell concatenates (unused blocks, plus the extra one)."""
    C = np.asarray(C)
    n, B, _ = C.shape
    out = np.zeros((n, N_INPUTS + B), dtype=bool)
    out[:, N_INPUTS:] = ~used_blocks(C)
    has = np.asarray(extra) >= 0
    out[np.flatnonzero(has), np.asarray(extra)[has]] = True
    return out


def used_blocks(C: np.ndarray) -> np.ndarray:
    """(n, B) bool: whether some block reads block j's output (unused ones form the cell output)."""
    C = np.asarray(C)
    n, B, _ = C.shape
    used = np.zeros((n, B), dtype=bool)
    for col in (0, 2):
        src = C[..., col] - N_INPUTS
        r, b = np.nonzero(src >= 0)
        used[r, src[r, b]] = True
    return used


def mutate_cells(C: np.ndarray, rng: np.random.Generator, n_ops: int = len(OPS)) -> np.ndarray:
    """One edit per cell: one input or one op of one block changes to another allowed value.

    The new input of block b is drawn among its other b + 1 choices, so the DAG stays valid; the
    new op among the other n_ops - 1.
    """
    C = np.array(C, dtype=np.int64, copy=True)
    n, B, _ = C.shape
    rows = np.arange(n)
    block = rng.integers(0, B, size=n)
    slot = rng.integers(0, 4, size=n)
    is_input = slot % 2 == 0
    n_choices = np.where(is_input, N_INPUTS + block, n_ops)
    old = C[rows, block, slot]
    # Uniform over the other values: draw in [0, k-1) and skip over the current one.
    draw = (rng.random(n) * (n_choices - 1)).astype(np.int64)
    C[rows, block, slot] = np.where(draw >= old, draw + 1, draw)
    return C


EXTRA_NAMES: tuple[str, ...] = ("none", "h0", "h1") + tuple(f"b{j}" for j in range(N_BLOCKS))


def cell_code(cell: np.ndarray, extra: int = -1) -> str:
    """A readable, stable text of one canonical cell: ``1sep5+0sep3,...`` (input number then op)."""
    parts = []
    for ia, oa, ib, ob in np.asarray(cell).tolist():
        parts.append(f"{ia}{SHORT[OPS[oa]]}+{ib}{SHORT[OPS[ob]]}")
    return ",".join(parts) + (f"|{EXTRA_NAMES[extra + 1]}" if extra >= 0 else "")
