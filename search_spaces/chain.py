"""ChainSpace: a space whose network is a fixed chain of slots, each picking one block from a list.

Most mobile search spaces (ProxylessNAS, Single-Path NAS, FBNet, a user's own) are such chains:
a fixed stem, N slots that each run one of a few candidate blocks (or nothing: skip), a fixed head.
Declaring the slots is enough; everything else the ``SearchSpace`` contract asks for follows:

- the arch is ``{"ops": [one option name per slot]}`` (``arch_field`` renames the list);
- ``dims`` are the slots, ``block_keys`` every candidate block, and ``block_matrix`` a gather
  from a (slot, option) -> block table, vectorised over archs;
- ``build(arch)`` chains ``build_block(key)`` over the arch's blocks (a ``ChainNet``);
- ``block_costs`` are counted once on each block's module (override for analytic costs).

A subclass implements ``slots()``, ``build_block(key)`` and, if its stem or head are fixed
blocks, ``fixed_blocks()``; see ``experiments/custom_space.py`` for a complete small space.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .base import Arch, Dim, SearchSpace
from .blocks import BlockKey
from .errors import InvalidArchError


@dataclass(frozen=True)
class Slot:
    """One position of the chain: the option names an arch may pick and the block each one runs.

    ``blocks[i]`` is the block of ``options[i]``; None runs nothing (the input passes through,
    so only a slot whose block keeps the shape may offer it). ``search`` is the subset searches
    sample (None: all options).
    """

    name: str
    options: tuple[str, ...]
    blocks: tuple[BlockKey | None, ...]
    search: tuple[str, ...] | None = None

    def __post_init__(self):
        if len(self.options) != len(self.blocks) or not self.options:
            raise ValueError(f"slot {self.name!r}: one block (or None) per option, at least one option")


class ChainNet(nn.Module):
    """A network that is a chain of block modules (what every chain space's ``build`` returns).

    ``blocks`` runs them in order (state-dict names ``blocks.<i>.``); ``keys`` are their BlockKeys
    when known.
    """

    def __init__(self, blocks: Sequence[nn.Module], keys: Sequence[BlockKey] | None = None):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.keys = list(keys) if keys is not None else None

    @classmethod
    def of_keys(cls, keys: Sequence[BlockKey],
                build_block: Callable[[BlockKey], tuple[nn.Module, tuple[int, ...]]]) -> "ChainNet":
        """The chain of ``build_block(key)``'s modules over ``keys``."""
        return cls([build_block(k)[0] for k in keys], keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class ChainSpace(SearchSpace):
    """A chain of slots between a fixed stem and head; subclasses declare ``slots`` and ``build_block``."""

    arch_field = "ops"
    image_size = 224  # input resolution (pixels, square)
    in_channels = 3

    # ---- what a subclass declares ----------------------------------------------------------
    @abstractmethod
    def slots(self) -> Sequence[Slot]:
        """The chain's slots, in network order."""

    def fixed_blocks(self) -> tuple[Sequence[BlockKey], Sequence[BlockKey]]:
        """Blocks every arch runs before the first slot and after the last one."""
        return (), ()

    @abstractmethod
    def build_block(self, key: BlockKey) -> tuple[nn.Module, tuple[int, ...]]:
        """A module computing one block, and its (C, H, W) input shape."""

    # ---- derived layout ---------------------------------------------------------------------
    @cached_property
    def _layout(self):
        slots = list(self.slots())
        head, tail = (list(b) for b in self.fixed_blocks())
        index: dict[str, int] = {}
        keys: list[BlockKey] = []

        def idx(key: BlockKey | None) -> int:
            if key is None:
                return -1
            s = str(key)
            if s not in index:
                index[s] = len(keys)
                keys.append(key)
            return index[s]

        head_ids = [idx(k) for k in head]
        width = max(len(s.options) for s in slots)
        table = np.full((len(slots), width), -1, dtype=np.int64)
        for j, s in enumerate(slots):
            table[j, :len(s.options)] = [idx(k) for k in s.blocks]
        tail_ids = [idx(k) for k in tail]
        return slots, keys, np.array(head_ids, np.int64), table, np.array(tail_ids, np.int64)

    @property
    def n_slots(self) -> int:
        return len(self._layout[0])

    @cached_property
    def dims(self) -> list[Dim]:
        return [Dim(f"{self.arch_field}[{j}]", s.options, s.search) for j, s in enumerate(self._layout[0])]

    def to_values(self, arch: Arch) -> list:
        f, n = self.arch_field, self.n_slots
        unknown = set(arch) - {f}
        if unknown:
            raise InvalidArchError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; expected {f}")
        if f not in arch:
            raise InvalidArchError(f"{f}: missing; expected a list of {n} option names")
        v = arch[f]
        if not isinstance(v, (list, tuple)) or len(v) != n:
            got = f"{len(v)} values" if isinstance(v, (list, tuple)) else type(v).__name__
            raise InvalidArchError(f"{f}: expected a list of {n} option names, got {got}")
        for j, x in enumerate(v):
            if not isinstance(x, (str, int)) or isinstance(x, bool):
                raise InvalidArchError(f"{f}[{j}]: {x!r} is not an option name; "
                                       f"allowed: {', '.join(map(str, self.dims[j].choices))}")
        return list(v)

    def from_values(self, values: Sequence) -> Arch:
        return {self.arch_field: [str(v) for v in values]}

    # ---- blocks and costs -------------------------------------------------------------------
    def block_keys(self) -> list[BlockKey]:
        return self._layout[1]

    def block_matrix(self, X: np.ndarray) -> np.ndarray:
        _, _, head, table, tail = self._layout
        X = np.asarray(X)
        n = len(X)
        mid = table[np.arange(table.shape[0])[None, :], X]
        return np.concatenate([np.broadcast_to(head, (n, len(head))), mid,
                               np.broadcast_to(tail, (n, len(tail)))], axis=1)

    def searched_block_ids(self) -> np.ndarray:
        _, _, head, table, tail = self._layout
        ids = [head, tail]
        for j, d in enumerate(self.dims):
            ids.append(table[j, d.search_index])
        ids = np.unique(np.concatenate(ids))
        return ids[ids >= 0]

    def block_costs(self) -> tuple[np.ndarray, np.ndarray]:
        return self._block_costs

    @cached_property
    def _block_costs(self) -> tuple[np.ndarray, np.ndarray]:
        from .counting import count_macs_params

        costs = np.array([count_macs_params(*self.build_block(k)) for k in self.block_keys()], np.float64)
        return costs[:, 0], costs[:, 1]

    # ---- networks ---------------------------------------------------------------------------
    def build(self, arch: Arch) -> ChainNet:
        return ChainNet.of_keys(self.blocks(arch), self.build_block)

    def input_shape(self, arch: Arch) -> tuple[int, int, int]:
        self.validate(arch)
        return (self.in_channels, self.image_size, self.image_size)

    def resolution(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.image_size, dtype=np.int64)
