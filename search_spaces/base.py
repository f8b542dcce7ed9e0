"""The SearchSpace contract every space implements, and the Dim that describes one choice.

An architecture is a plain JSON-serialisable dict whose schema the space owns. Inside hwnas the
working form is an integer matrix ``X`` of shape ``(n_archs, n_dims)`` holding, for every dim, the
index of the chosen value in ``dim.choices``. Strategies, predictors and cost models work on that
matrix, vectorised; dicts exist only at the edges (files, the CLI, the user's code).
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from .blocks import BlockKey
from .errors import InvalidArchError

Arch = dict[str, Any]


@dataclass(frozen=True)
class Dim:
    """One named choice of a space: every value an arch may hold, and the subset searches sample."""

    name: str
    choices: tuple
    search: tuple | None = None  # None: every choice is searched

    @property
    def searched(self) -> tuple:
        return self.choices if self.search is None else self.search

    @cached_property
    def search_index(self) -> np.ndarray:
        """Indices into ``choices`` of the searched values."""
        if self.search is None:
            return np.arange(len(self.choices))
        return np.array([self.choices.index(v) for v in self.search])


def describe_allowed(values: Sequence) -> str:
    """Short text of allowed values: a run with a common step is written as a range."""
    vals = list(values)
    if len(vals) > 6 and all(isinstance(v, int) for v in vals):
        steps = {b - a for a, b in zip(vals, vals[1:])}
        if len(steps) == 1:
            return f"{vals[0]}..{vals[-1]} step {steps.pop()}"
    return ", ".join(map(str, vals))


def require_list(arch: Arch, field: str, n: int, what: str, allowed: str) -> list:
    """``arch[field]`` when it is a list of n items; else InvalidArchError naming the field."""
    value = arch.get(field)
    if not isinstance(value, (list, tuple)) or len(value) != n:
        got = "missing" if value is None else (
            f"{len(value)} values" if isinstance(value, (list, tuple)) else type(value).__name__)
        raise InvalidArchError(f"{field}: expected a list of {n} {what}, got {got}; {allowed}")
    return list(value)


class SearchSpace(ABC):
    """A family of networks: its dims, how to sample and vary archs, price and build them.

    Subclasses implement ``dims``, ``to_values`` / ``from_values`` (the dict schema) and the
    torch and cost hooks they support; the generic array operations here work for any space.
    """

    name: str = "space"
    version: str = "1"

    @property
    def description(self) -> str:
        """One line for listings; defaults to the class docstring's first line."""
        return (type(self).__doc__ or self.name).strip().splitlines()[0]

    # ---- schema ---------------------------------------------------------------------------
    @property
    @abstractmethod
    def dims(self) -> list[Dim]:
        """The named choices, in the column order of the encoded matrix."""

    @abstractmethod
    def to_values(self, arch: Arch) -> list:
        """The arch's value for every dim, in dims order; raises InvalidArchError on bad structure."""

    @abstractmethod
    def from_values(self, values: Sequence) -> Arch:
        """The arch dict holding these per-dim values."""

    def canonical(self, X: np.ndarray) -> np.ndarray:
        """Rewrite choices that do not change the network to one value, so equal nets encode equal."""
        return X

    # ---- space parameters -------------------------------------------------------------------
    def space_params(self) -> dict[str, Any]:
        """What makes this instance differ from the registered space of its name (JSON-safe).

        ``{}`` for the registered instance itself. Arch files record it beside the space name
        (``{"space": NAME, "space_params": {...}, "arch": ...}``), and ``get_space(NAME, params)``
        rebuilds this very space from it. A parametrised space overrides this and ``with_params``.
        """
        return {}

    def with_params(self, params: dict[str, Any]) -> "SearchSpace":
        """This space with ``params`` (as ``space_params()`` returns them); UserError on unknown ones."""
        if params:
            from .errors import UserError

            raise UserError(f"space {self.name!r} takes no parameters, got {', '.join(map(str, params))}")
        return self

    # ---- dict <-> matrix ----------------------------------------------------------------------
    def validate(self, arch: Arch) -> Arch:
        """The canonical form of ``arch``; InvalidArchError names the field and the allowed values."""
        return self.decode(self.encode([arch]))[0]

    def encode(self, archs: Sequence[Arch] | Arch) -> np.ndarray:
        """Choice-index matrix ``(n, n_dims)`` of validated, canonical archs."""
        if isinstance(archs, dict):
            archs = [archs]
        dims = self.dims
        lookup = [{v: i for i, v in enumerate(d.choices)} for d in dims]
        X = np.empty((len(archs), len(dims)), dtype=np.int64)
        for row, arch in enumerate(archs):
            if not isinstance(arch, dict):
                raise InvalidArchError(f"an arch must be a JSON object (dict), got {type(arch).__name__}")
            values = self.to_values(arch)
            for col, (dim, v) in enumerate(zip(dims, values)):
                idx = lookup[col].get(v) if not isinstance(v, bool) else None
                if idx is None:
                    raise InvalidArchError(
                        f"{dim.name}: {v!r} is not allowed; allowed: {describe_allowed(dim.choices)}")
                X[row, col] = idx
        return self.canonical(X)

    def decode(self, X: np.ndarray) -> list[Arch]:
        choices = [d.choices for d in self.dims]
        return [self.from_values([c[i] for c, i in zip(choices, row)]) for row in np.asarray(X)]

    def key(self, arch: Arch) -> str:
        """A stable string for the canonical arch: equal networks have equal keys."""
        return json.dumps(self.validate(arch), sort_keys=True, separators=(",", ":"))

    # ---- vectorised variation -------------------------------------------------------------
    @cached_property
    def _search_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(per-dim number of searched values, (n_dims, max) table of their choice indices)."""
        dims = self.dims
        counts = np.array([len(d.searched) for d in dims])
        table = np.zeros((len(dims), counts.max()), np.int64)
        for j, d in enumerate(dims):
            table[j, :counts[j]] = d.search_index
        return counts, table

    def narrowed(self, keep: Sequence[np.ndarray]) -> "SearchSpace":
        """A shallow copy whose strategies sample only ``keep[j]`` (choice indices) for dim j.

        Used to keep a search where a device's table has numbers (Once-for-All's note10 tables
        cover 5 of the 25 searched resolutions); archs and their encoding are unchanged.
        """
        counts = np.array([len(k) for k in keep])
        if (counts == 0).any():
            raise ValueError("every dim needs at least one searched value")
        table = np.zeros((len(keep), counts.max()), np.int64)
        for j, k in enumerate(keep):
            table[j, :counts[j]] = k
        view = copy.copy(self)
        view.__dict__["_search_table"] = (counts, table)
        return view

    def sample_encoded(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n archs drawn uniformly per dim over the searched values (one vectorised draw)."""
        counts, table = self._search_table
        pick = (rng.random((n, len(counts))) * counts).astype(np.int64)
        return self.canonical(table[np.arange(len(counts)), pick])

    def mutate_encoded(self, X: np.ndarray, rng: np.random.Generator, prob: float) -> np.ndarray:
        """Resample each searched dim of each arch with probability ``prob``."""
        fresh = self.sample_encoded(rng, len(X))
        flip = rng.random(X.shape) < prob
        return self.canonical(np.where(flip, fresh, X))

    def crossover_encoded(self, A: np.ndarray, B: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each dim taken from either parent with equal probability (uniform crossover)."""
        return self.canonical(np.where(rng.random(A.shape) < 0.5, A, B))

    def sample(self, rng: np.random.Generator, n: int = 1) -> list[Arch]:
        return self.decode(self.sample_encoded(rng, n))

    def mutate(self, arch: Arch, rng: np.random.Generator, prob: float = 0.1) -> Arch:
        return self.decode(self.mutate_encoded(self.encode([arch]), rng, prob))[0]

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        return self.decode(self.crossover_encoded(self.encode([a]), self.encode([b]), rng))[0]

    def size(self) -> int:
        """Number of distinct searched networks (override when dims interact, e.g. depth)."""
        out = 1
        for d in self.dims:
            out *= len(d.searched)
        return out

    def features(self, X: np.ndarray) -> np.ndarray:
        """Float features for learned predictors: one-hot of every dim's choice."""
        cols = []
        for j, d in enumerate(self.dims):
            cols.append(np.eye(len(d.choices), dtype=np.float32)[X[:, j]][:, d.search_index])
        return np.concatenate(cols, axis=1)

    # ---- cost and construction hooks (optional per space) ---------------------------------
    def blocks(self, arch: Arch) -> list[BlockKey]:
        """The operators a lookup table prices, in network order."""
        X = self.encode([arch])
        table = self.block_keys()
        return [table[i] for i in self.block_matrix(X)[0] if i >= 0]

    def block_keys(self) -> list[BlockKey]:
        """Every block any arch of the space (at any allowed resolution) can contain."""
        raise NotImplementedError(f"space {self.name!r} has no per-block cost model")

    def block_matrix(self, X: np.ndarray) -> np.ndarray:
        """``(n, max_blocks)`` indices into ``block_keys()``; -1 where a slot is inactive."""
        raise NotImplementedError(f"space {self.name!r} has no per-block cost model")

    def searched_block_ids(self) -> np.ndarray:
        """Indices of the blocks reachable by searched archs (what a profiler must measure)."""
        raise NotImplementedError(f"space {self.name!r} has no per-block cost model")

    def block_costs(self) -> tuple[np.ndarray, np.ndarray]:
        """(MACs, params) of every block in ``block_keys()`` order."""
        raise NotImplementedError(f"space {self.name!r} has no per-block cost model")

    def macs(self, X: np.ndarray) -> np.ndarray:
        """Multiply-accumulates of each arch (convs and linear layers), without building it."""
        return _sum_blocks(self.block_costs()[0], self.block_matrix(X))

    def params(self, X: np.ndarray) -> np.ndarray:
        """Trainable parameters of each arch, without building it."""
        return _sum_blocks(self.block_costs()[1], self.block_matrix(X))

    def build_block(self, key: BlockKey):
        """A torch module computing one block, and its input shape (N excluded)."""
        raise NotImplementedError(f"space {self.name!r} cannot build single blocks")

    @abstractmethod
    def build(self, arch: Arch):
        """A standalone ``nn.Module`` of the arch (freshly initialised weights)."""

    def input_shape(self, arch: Arch) -> tuple[int, int, int]:
        """(C, H, W) of the network's input."""
        raise NotImplementedError

    def resolution(self, X: np.ndarray) -> np.ndarray:
        """Input resolution (pixels) of each arch; spaces with a resolution dim vectorise this."""
        return np.array([self.input_shape(a)[1] for a in self.decode(X)])

    def supernet(self):
        raise NotImplementedError(f"space {self.name!r} has no weight-shared supernet")


def _sum_blocks(per_block: np.ndarray, ids: np.ndarray) -> np.ndarray:
    padded = np.append(per_block, 0)  # index -1 (inactive) lands on the trailing zero
    return padded[ids].sum(axis=1)


@runtime_checkable
class NetConfigReader(Protocol):
    """A space that reads released nets' layer lists (``nas convert``): the arch, and the space
    (with its parameters, e.g. the net's own widths) that arch is priced and built in."""

    def from_net_config(self, net_config: dict, image_size: int) -> Arch: ...

    def net_config_space(self, net_config: dict) -> SearchSpace: ...


@runtime_checkable
class NetConfigWriter(Protocol):
    """A space that writes an arch as a released tool's layer list (``nas convert --space``)."""

    def to_net_config(self, arch: Arch) -> dict: ...


@runtime_checkable
class LayerPriced(Protocol):
    """A space whose archs map to one option per layer, so a per-layer latency table prices it
    (``layer_options`` names the table's columns; ``layer_choices`` maps encoded archs to them)."""

    layer_options: Sequence[str]

    def layer_choices(self, X: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class ResolutionSized(Protocol):
    """A space that also searches the input resolution and reports its size at one resolution."""

    def size_per_resolution(self) -> int: ...
