"""``nasnet``: NASNet's cell space (Zoph et al., CVPR 2018) — architectures that are graphs.

An arch is a normal and a reduction cell of B = 5 blocks; the network is a stem conv, two
reduction cells (the ImageNet stem), then three stages of N normal cells with a reduction cell
between stages; filters double at every reduction. N, the first stage's filters and the input
size are space parameters (``NASNetSpace(n_normal=4, filters=44)`` is NASNet-A Mobile's frame).

Arch: ``{"normal": [5 x [in_a, op_a, in_b, op_b]], "reduce": [...], "normal_concat_extra": "none",
"reduce_concat_extra": "none"}``. A cell's output concatenates its unused block outputs; the
released NASNet-A also concatenates one more state per cell (its normal cell the older input
``h0``, its reduction cell block ``b1``), which ``*_concat_extra`` expresses; searches sample
``none`` (the paper's rule). Encoded as 42 columns: per cell its 20 block values, then its extra.

Two pricings of a network, both vectorised over archs:
- *blocks* (``block_keys`` / ``block_matrix``): every op, cell-input projection, add and concat as
  its own key; a lookup table or an operator cost model sums them (the additive model);
- *cells* (``cell_matrix``, the ``CellPriced`` capability): every cell as one key, its canonical
  graph plus input shapes and widths, measured whole (``latency_predictors.cells``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from ..base import Arch, Dim, SearchSpace
from ..blocks import BlockKey
from ..mobile_blocks import BlockIndex
from ..errors import InvalidArchError, UserError
from ..registry import register_space
from .genotype import (EXTRA_NAMES, N_BLOCKS, OPS, canonical_cells, cell_code, concat_states, mutate_cells,
                       n_input_choices)
from .published import PUBLISHED_ARCHS

CELL_COLS = 4 * N_BLOCKS  # (in_a, op_a, in_b, op_b) per block
N_COLS = 2 * (CELL_COLS + 1)
RED0 = CELL_COLS + 1  # first column of the reduction cell
EXTRA_COLS = (CELL_COLS, 2 * CELL_COLS + 1)  # each cell's extra concatenated state
STEM_FILTERS = 32
N_CLASSES = 1000
IDENTITY = OPS.index("identity")
CELL_OP = "nasnet_cell"


@dataclass(frozen=True)
class Position:
    """One cell of the network: its kind, width and where its inputs come from."""

    reduction: bool
    filters: int
    cur_from: int  # index of the position feeding the newer input (-1: the stem)
    prev_from: int | None  # older input (-1: the stem, None: no older input, the first stem cell)


def _down(size: int) -> int:
    return (size - 1) // 2 + 1


@register_space("nasnet")
class NASNetSpace(SearchSpace):
    """NASNet cells (Zoph et al. 2018): a normal and a reduction cell of 5 blocks; NASNet-A Mobile's frame."""

    def __init__(self, n_normal: int = 4, filters: int = 44, image_size: int = 224):
        for name, v, lo in (("n_normal", n_normal, 1), ("filters", filters, 4), ("image_size", image_size, 32)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise UserError(f"nasnet: {name} must be an int >= {lo}, got {v!r}")
        self.n_normal, self.filters, self.image_size = n_normal, filters, image_size

    @property
    def parameters(self) -> dict:
        return {"n_normal": self.n_normal, "filters": self.filters, "image_size": self.image_size}

    # ---- schema -----------------------------------------------------------------------------
    @cached_property
    def dims(self) -> list[Dim]:
        dims = []
        for cell in ("normal", "reduce"):
            for b in range(N_BLOCKS):
                ins = tuple(range(n_input_choices(b)))
                dims += [Dim(f"{cell}[{b}].in_a", ins), Dim(f"{cell}[{b}].op_a", OPS),
                         Dim(f"{cell}[{b}].in_b", ins), Dim(f"{cell}[{b}].op_b", OPS)]
            # The released NASNet-A concatenates one state more than the paper's rule (unused block
            # outputs only); searches sample the rule.
            dims.append(Dim(f"{cell}_concat_extra", EXTRA_NAMES, search=("none",)))
        return dims

    def to_values(self, arch: Arch) -> list:
        fields = {"normal", "reduce", "normal_concat_extra", "reduce_concat_extra"}
        unknown = set(arch) - fields
        if unknown:
            raise InvalidArchError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                                   f"expected {', '.join(sorted(fields))}")
        values = []
        for cell in ("normal", "reduce"):
            allowed = f"allowed: a list of {N_BLOCKS} blocks [in_a, op_a, in_b, op_b], ops: {', '.join(OPS)}"
            if cell not in arch:
                raise InvalidArchError(f"{cell}: missing; {allowed}")
            blocks = arch[cell]
            if not isinstance(blocks, (list, tuple)) or len(blocks) != N_BLOCKS:
                got = f"{len(blocks)} items" if isinstance(blocks, (list, tuple)) else type(blocks).__name__
                raise InvalidArchError(f"{cell}: expected {N_BLOCKS} blocks, got {got}; {allowed}")
            for b, blk in enumerate(blocks):
                if not isinstance(blk, (list, tuple)) or len(blk) != 4:
                    raise InvalidArchError(f"{cell}[{b}]: expected [in_a, op_a, in_b, op_b], got {blk!r}; {allowed}")
                values += list(blk)
            extra = arch.get(f"{cell}_concat_extra", "none")
            if cell == "reduce" and extra in ("h0", "h1"):
                # A reduction cell's inputs are twice its output size: they cannot join its concat.
                raise InvalidArchError(f"reduce_concat_extra: {extra!r} is not allowed; allowed: none, "
                                       f"{', '.join(EXTRA_NAMES[3:])}")
            values.append(extra)
        return values

    def from_values(self, values: Sequence) -> Arch:
        v = list(values)
        out = {}
        for cell, start in (("normal", 0), ("reduce", RED0)):
            out[cell] = [[int(v[start + 4 * b]), str(v[start + 4 * b + 1]), int(v[start + 4 * b + 2]),
                          str(v[start + 4 * b + 3])] for b in range(N_BLOCKS)]
        out["normal_concat_extra"], out["reduce_concat_extra"] = str(v[EXTRA_COLS[0]]), str(v[EXTRA_COLS[1]])
        return out

    # ---- graphs: canonical form and variation ------------------------------------------------
    @staticmethod
    def split(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(normal cells (n, B, 4), reduction cells (n, B, 4), their extra concatenated states (n,) each).

        An extra state is -1 (none), 0 / 1 (the cell inputs) or 2 + j (block j).
        """
        X = np.asarray(X, dtype=np.int64)
        n = len(X)
        return (X[:, :CELL_COLS].reshape(n, N_BLOCKS, 4), X[:, RED0:RED0 + CELL_COLS].reshape(n, N_BLOCKS, 4),
                X[:, EXTRA_COLS[0]] - 1, X[:, EXTRA_COLS[1]] - 1)

    @staticmethod
    def join(normal: np.ndarray, reduce: np.ndarray, ext_n: np.ndarray, ext_r: np.ndarray) -> np.ndarray:
        n = len(normal)
        return np.concatenate([normal.reshape(n, -1), np.asarray(ext_n).reshape(n, 1) + 1,
                               reduce.reshape(n, -1), np.asarray(ext_r).reshape(n, 1) + 1], axis=1).astype(np.int64)

    def canonical(self, X: np.ndarray) -> np.ndarray:
        """Each cell as its canonical graph: pairs sorted within blocks, blocks in the smallest valid order."""
        X = np.asarray(X, dtype=np.int64)
        if len(X) == 0:
            return X.reshape(0, N_COLS)
        normal, reduce, en, er = self.split(X)
        cn, en = canonical_cells(normal, en)
        cr, er = canonical_cells(reduce, er)
        return self.join(cn, cr, en, er)

    def mutate_encoded(self, X: np.ndarray, rng: np.random.Generator, prob: float) -> np.ndarray:
        """Binomial(40, prob) single edits per arch; each changes one input or op of one cell (always valid)."""
        X = np.asarray(X, dtype=np.int64)
        normal, reduce, en, er = (a.copy() for a in self.split(X))
        n_edits = rng.binomial(2 * CELL_COLS, prob, size=len(X))
        for e in range(int(n_edits.max(initial=0))):
            rows = np.flatnonzero(n_edits > e)
            in_normal = rng.random(len(rows)) < 0.5
            for cells, pick in ((normal, rows[in_normal]), (reduce, rows[~in_normal])):
                if len(pick):
                    cells[pick] = mutate_cells(cells[pick], rng)
        return self.canonical(self.join(normal, reduce, en, er))

    def crossover_encoded(self, A: np.ndarray, B: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """By cell (each cell from either parent) for half the children, by block for the others."""
        na, ra, ena, era = self.split(A)
        nb, rb, enb, erb = self.split(B)
        n = len(na)
        by_cell = rng.random(n) < 0.5
        take_a = np.where(by_cell[:, None, None], rng.random((n, 2, 1)) < 0.5, rng.random((n, 2, N_BLOCKS)) < 0.5)
        take_a = np.broadcast_to(take_a, (n, 2, N_BLOCKS))
        normal = np.where(take_a[:, 0, :, None], na, nb)
        reduce = np.where(take_a[:, 1, :, None], ra, rb)
        # The extra state belongs to the cell's graph: it follows the parent of the cell's first block.
        en = np.where(take_a[:, 0, 0], ena, enb)
        er = np.where(take_a[:, 1, 0], era, erb)
        return self.canonical(self.join(normal, reduce, en, er))

    def mutate_once(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Exactly one edit per arch (one input or one op of one of its cells), canonicalised."""
        normal, reduce, en, er = (a.copy() for a in self.split(X))
        in_normal = rng.random(len(normal)) < 0.5
        normal[in_normal] = mutate_cells(normal[in_normal], rng)
        reduce[~in_normal] = mutate_cells(reduce[~in_normal], rng)
        return self.canonical(self.join(normal, reduce, en, er))

    def n_concat(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tensors concatenated at the output of the normal and of the reduction cell, per arch."""
        normal, reduce, en, er = self.split(X)
        return concat_states(normal, en).sum(1), concat_states(reduce, er).sum(1)

    def published(self, name: str) -> Arch:
        if name not in PUBLISHED_ARCHS:
            raise UserError(f"unknown published nasnet arch {name!r}; known: {', '.join(PUBLISHED_ARCHS)}")
        return self.validate(PUBLISHED_ARCHS[name])

    # ---- the network's frame ------------------------------------------------------------------
    @cached_property
    def positions(self) -> list[Position]:
        F = self.filters
        kinds = [(True, F // 4), (True, F // 2)]
        for stage in range(3):
            if stage:
                kinds.append((True, F * 2 ** stage))
            kinds += [(False, F * 2 ** stage)] * self.n_normal
        out = []
        for p, (red, f) in enumerate(kinds):
            out.append(Position(red, f, p - 1, None if p == 0 else p - 2))
        return out

    @cached_property
    def _sizes(self) -> tuple[int, list[int]]:
        """(stem output size, output size of every position)."""
        s = (self.image_size - 3) // 2 + 1
        stem, sizes = s, []
        for pos in self.positions:
            s = _down(s) if pos.reduction else s
            sizes.append(s)
        return stem, sizes

    def _frame(self, k_normal: int, k_reduce: int) -> list[dict]:
        """Shapes of every position for archs whose cells concatenate k tensors: (C, size) of inputs/output."""
        stem, sizes = self._sizes
        outs = []
        frame = []
        for p, pos in enumerate(self.positions):
            def shape(i):
                return (STEM_FILTERS, stem) if i == -1 else outs[i]
            cur = shape(pos.cur_from)
            prev = None if pos.prev_from is None else shape(pos.prev_from)
            k = k_reduce if pos.reduction else k_normal
            out = (k * pos.filters, sizes[p])
            frame.append({"cur": cur, "prev": prev, "out": out, "pos": pos})
            outs.append(out)
        return frame

    def head_channels(self, k_normal: int) -> int:
        return k_normal * self.positions[-1].filters

    # ---- per-op blocks (the additive model) --------------------------------------------------
    @cached_property
    def _blocks(self):
        """Block keys, per-(k_n, k_r) frame block ids, and per-(position, source, op) op block ids."""
        numbering = BlockIndex()

        def idx(key: BlockKey | None) -> int:
            return -1 if key is None else numbering(key)

        stem_size, _ = self._sizes
        r = self.image_size
        stem_id = idx(BlockKey("nasnet_stem", (r, r, 3), (stem_size, stem_size, STEM_FILTERS)))
        n_pos = len(self.positions)
        k_max = N_BLOCKS + 1
        # frame[k_n, k_r] = ids of: per position pre_cur, pre_prev, concat; then the head.
        frame = np.full((k_max + 1, N_BLOCKS + 1, 3 * n_pos + 1), -1, dtype=np.int64)
        # ops[p, src, op]: src 0 = the older input, 1 = the newer, 2 = a block output.
        ops = np.full((n_pos, 3, len(OPS)), -1, dtype=np.int64)
        adds = np.full(n_pos, -1, dtype=np.int64)
        for kn in range(1, k_max + 1):
            for kr in range(1, N_BLOCKS + 1):
                fr = self._frame(kn, kr)
                for p, f in enumerate(fr):
                    pos = f["pos"]
                    (cc, cs), (oc, osz), F = f["cur"], f["out"], pos.filters
                    frame[kn, kr, 3 * p] = idx(BlockKey("nasnet_pre", (cs, cs, cc), (cs, cs, F)))
                    if f["prev"] is not None:
                        pc, ps = f["prev"]
                        if ps != cs:
                            pre = BlockKey("nasnet_reduce", (ps, ps, pc), (cs, cs, F))
                        elif pc != F:
                            pre = BlockKey("nasnet_pre", (ps, ps, pc), (cs, cs, F))
                        else:
                            pre = None
                        frame[kn, kr, 3 * p + 1] = idx(pre)
                    k = oc // F
                    frame[kn, kr, 3 * p + 2] = idx(BlockKey("nasnet_concat", (osz, osz, F), (osz, osz, oc), (("n", k),)))
                c_last, s_last = fr[-1]["out"]
                frame[kn, kr, -1] = idx(BlockKey("nasnet_head", (s_last, s_last, c_last), (N_CLASSES,)))
        fr = self._frame(1, 1)  # op shapes do not depend on the concat widths
        for p, f in enumerate(fr):
            pos = f["pos"]
            cs, osz, F = f["cur"][1], f["out"][1], pos.filters
            c0 = f["cur"][0] if f["prev"] is None else F
            stride = 2 if pos.reduction else 1
            for src, (cin, s_in, st) in enumerate(((c0, cs, stride), (F, cs, stride), (F, osz, 1))):
                for o, name in enumerate(OPS):
                    if name == "identity" and st == 1 and cin == F:
                        continue  # a plain identity runs nothing
                    ops[p, src, o] = idx(BlockKey(f"nasnet_{name}", (s_in, s_in, cin), (osz, osz, F), (("stride", st),)))
            adds[p] = idx(BlockKey("nasnet_add", (osz, osz, F), (osz, osz, F)))
        return numbering.keys, stem_id, frame, ops, adds

    def block_keys(self) -> list[BlockKey]:
        return self._blocks[0]

    def block_matrix(self, X: np.ndarray) -> np.ndarray:
        """(n, 1 + 3 P + 1 + 15 P): stem, per-position projections and concats, head, ops, adds."""
        keys, stem_id, frame, ops, adds = self._blocks
        X = np.asarray(X, dtype=np.int64)
        n = len(X)
        kn, kr = self.n_concat(X)
        normal, reduce, _, _ = self.split(X)
        parts = [np.full((n, 1), stem_id), frame[kn, kr]]
        for p, pos in enumerate(self.positions):
            cells = reduce if pos.reduction else normal
            ins = cells[..., [0, 2]]  # (n, B, 2)
            op = cells[..., [1, 3]]
            src = np.minimum(ins, 2)
            parts.append(ops[p][src, op].reshape(n, -1))
            parts.append(np.full((n, N_BLOCKS), adds[p]))
        return np.concatenate(parts, axis=1)

    def searched_block_ids(self) -> np.ndarray:
        keys, stem_id, frame, ops, adds = self._blocks
        ids = np.concatenate([[stem_id], frame[1:N_BLOCKS + 1, 1:].ravel(), ops.ravel(), adds])
        ids = np.unique(ids)
        return ids[ids >= 0]

    def build_block(self, key: BlockKey):
        from .modules import Add, Concat, FactorizedReduce, Head, ReLUConvBN, Stem, make_op

        (h, _, cin), out = key.input, key.output
        if key.op == "nasnet_stem":
            return Stem(cin, out[-1]), (cin, h, h)
        if key.op == "nasnet_pre":
            return ReLUConvBN(cin, out[-1], 1), (cin, h, h)
        if key.op == "nasnet_reduce":
            return FactorizedReduce(cin, out[-1]), (cin, h, h)
        if key.op == "nasnet_head":
            return Head(cin, out[-1]), (cin, h, h)
        if key.op == "nasnet_add":
            return Add(), (cin, h, h)
        if key.op == "nasnet_concat":
            return Concat(key.param("n")), (cin, h, h)
        if key.op.startswith("nasnet_") and key.op[len("nasnet_"):] in OPS:
            return make_op(key.op[len("nasnet_"):], cin, out[-1], key.param("stride")), (cin, h, h)
        raise UserError(f"space nasnet has no block {key}")

    def block_costs(self) -> tuple[np.ndarray, np.ndarray]:
        return self._block_costs

    @cached_property
    def _block_costs(self) -> tuple[np.ndarray, np.ndarray]:
        # Analytic (building ~200 modules to count them takes seconds); the tests check the sums
        # against the built networks.
        costs = np.array([block_macs_params(k) for k in self.block_keys()], np.float64)
        return costs[:, 0], costs[:, 1]

    # ---- whole cells (the CellPriced capability) ---------------------------------------------
    def cell_units(self, arch_row: np.ndarray) -> list[BlockKey]:
        """The units a whole-cell pricing times for one encoded arch: stem, every cell, head."""
        row = np.asarray(arch_row, dtype=np.int64)[None, :]
        normal, reduce, en, er = self.split(row)
        kn, kr = (int(v[0]) for v in self.n_concat(row))
        codes = {False: f"normal:{cell_code(normal[0], int(en[0]))}", True: f"reduce:{cell_code(reduce[0], int(er[0]))}"}
        keys, stem_id, frame, _, _ = self._blocks
        out = [keys[stem_id]]
        for f in self._frame(kn, kr):
            pos = f["pos"]
            (cc, cs), (oc, osz) = f["cur"], f["out"]
            pc, ps = f["prev"] if f["prev"] is not None else (0, 0)
            out.append(BlockKey(f"{CELL_OP}[{codes[pos.reduction]}]", (cs, cs, cc), (osz, osz, oc),
                                (("prev_c", pc), ("prev_hw", ps), ("filters", pos.filters))))
        out.append(keys[frame[kn, kr, -1]])
        return out

    def cell_matrix(self, X: np.ndarray, index: dict[str, int], keys: list[BlockKey]) -> np.ndarray:
        """(n, units) ids of every arch's units in ``keys`` (grown in place; ``index`` maps key text to id).

        Python runs once per distinct arch of the batch, not per row.
        """
        X = np.asarray(X, dtype=np.int64)
        uniq, inverse = np.unique(X, axis=0, return_inverse=True)
        rows = []
        for row in uniq:
            ids = []
            for k in self.cell_units(row):
                s = str(k)
                if s not in index:
                    index[s] = len(keys)
                    keys.append(k)
                ids.append(index[s])
            rows.append(ids)
        return np.asarray(rows, dtype=np.int64)[np.asarray(inverse).reshape(-1)]

    def build_unit(self, key: BlockKey):
        """A unit's module and its input shapes: a cell takes (newer, older), stem and head one input."""
        from .modules import Cell, CellUnit

        if not key.op.startswith(CELL_OP + "["):
            module, shape = self.build_block(key)
            return module, [shape]
        kind, _, code = key.op[len(CELL_OP) + 1:-1].partition(":")
        blocks, extra = _parse_code(code)
        (cs, _, cc) = key.input
        pc, ps, F = key.param("prev_c"), key.param("prev_hw"), key.param("filters")
        prev = None if ps == 0 else (pc, ps)
        cell = Cell(blocks, kind == "reduce", (cc, cs), prev, F, extra)
        shapes = [(cc, cs, cs)] + ([] if prev is None else [(pc, ps, ps)])
        return CellUnit(cell), shapes

    # ---- networks ---------------------------------------------------------------------------
    def build(self, arch: Arch):
        from .modules import NASNet, Cell, Head, Stem

        X = self.encode([arch])
        normal, reduce, en, er = self.split(X)
        kn, kr = (int(v[0]) for v in self.n_concat(X))
        cells = []
        for f in self._frame(kn, kr):
            pos = f["pos"]
            blocks, extra = (reduce[0], int(er[0])) if pos.reduction else (normal[0], int(en[0]))
            cells.append(Cell(blocks, pos.reduction, f["cur"], f["prev"], pos.filters, extra))
        return NASNet(Stem(3, STEM_FILTERS), cells, Head(self.head_channels(kn), N_CLASSES))

    def input_shape(self, arch: Arch) -> tuple[int, int, int]:
        self.validate(arch)
        return (3, self.image_size, self.image_size)

    def resolution(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.image_size, dtype=np.int64)


_SHORT_TO_OP = {}


def _parse_code(code: str) -> tuple[list[list[int]], bool]:
    """Blocks and the extra concatenated state back from ``cell_code``'s text."""
    from .genotype import SHORT

    if not _SHORT_TO_OP:
        _SHORT_TO_OP.update({v: OPS.index(k) for k, v in SHORT.items()})
    body, _, flag = code.partition("|")
    blocks = []
    for part in body.split(","):
        row = []
        for side in part.split("+"):
            i = 0
            while i < len(side) and side[i].isdigit():
                i += 1
            row += [int(side[:i]), _SHORT_TO_OP[side[i:]]]
        blocks.append(row)
    if len(blocks) != N_BLOCKS:
        raise UserError(f"cell code {code!r} is malformed")
    return blocks, EXTRA_NAMES.index(flag) - 1 if flag else -1


def block_macs_params(key: BlockKey) -> tuple[int, int]:
    """(MACs, params) of one per-op block, as ``search_spaces.counting`` counts them on its module."""
    (h, _, cin), out = key.input, key.output
    if key.op == "nasnet_head":
        return cin * out[-1], cin * out[-1] + out[-1]
    ho, cout = out[0], out[-1]
    bn = 2 * cout

    def conv(k2: int, ci: int, co: int, size: int, groups: int = 1) -> tuple[int, int]:
        return size * size * k2 * (ci // groups) * co, k2 * (ci // groups) * co

    if key.op in ("nasnet_add", "nasnet_concat"):
        return 0, 0
    if key.op == "nasnet_stem":
        m, p = conv(9, cin, cout, ho)
        return m, p + bn
    name = key.op[len("nasnet_"):]
    if name in ("pre", "reduce", "identity", "conv_1x1"):
        m, p = conv(1, cin, cout, ho)
        return m, p + bn
    if name in ("conv_3x3", "dil_conv_3x3"):
        m, p = conv(9, cin, cout, ho)
        return m, p + bn
    if name in ("conv_1x3_3x1", "conv_1x7_7x1"):
        k = 3 if name == "conv_1x3_3x1" else 7
        # 1xk with the horizontal stride (h rows), then kx1 with the vertical one.
        return h * ho * k * cin * cout + ho * ho * k * cout * cout, k * cin * cout + k * cout * cout + bn
    if "pool" in name:
        if cin == cout:
            return 0, 0
        m, p = conv(1, cin, cout, ho)
        return m, p + bn
    if name.startswith("sep_conv_"):
        k2 = int(name[-1]) ** 2
        parts = [conv(k2, cin, cin, ho, cin), conv(1, cin, cout, ho), conv(k2, cout, cout, ho, cout), conv(1, cout, cout, ho)]
        return sum(m for m, _ in parts), sum(p for _, p in parts) + 2 * bn
    raise UserError(f"space nasnet has no block {key}")
