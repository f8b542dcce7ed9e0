"""Which subnets a phase trains: largest, smallest and random ones within the phase's choices.

One ``SubnetSampler`` per supernet family turns a phase's levels (kernel / depth / expand /
resolution: ``largest``, ``topN``, ``all``) into archs of that space. Random draws use only the
``torch.Generator`` passed in, so they repeat exactly after a resume.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from search_spaces.base import Arch
from search_spaces.errors import UserError

from .plans import Phase, choices_at


@runtime_checkable
class Supernet(Protocol):
    """What the trainer needs from a weight-shared supernet."""

    def set_active(self, arch: Arch): ...

    def extract(self, arch: Arch | None = None) -> torch.nn.Module: ...


@runtime_checkable
class SortsChannels(Protocol):
    """Supernets whose expanded channels can be re-ordered by importance (progressive shrinking)."""

    def sort_channels(self, keep_expands=()) -> None: ...


def _pick(gen: torch.Generator, values: tuple[int, ...], n: int) -> list[int]:
    idx = torch.randint(len(values), (n,), generator=gen).tolist()
    return [values[i] for i in idx]


class OFASampler:
    """Archs of an ``ofa`` space (any width / resolution parameters)."""

    def __init__(self, space):
        from search_spaces.ofa.space import DEPTHS, EXPANDS, KERNELS, MAX_DEPTH, N_STAGES

        self.space = space
        self.kernels, self.expands, self.depths = KERNELS, EXPANDS, DEPTHS
        self.n_slots, self.n_stages = N_STAGES * MAX_DEPTH, N_STAGES
        self.resolutions = tuple(sorted(space.search_resolutions))

    def _allowed(self, phase: Phase):
        return (choices_at(phase.kernel, self.kernels), choices_at(phase.depth, self.depths),
                choices_at(phase.expand, self.expands), choices_at(phase.resolution, self.resolutions))

    def expands_at(self, level: str) -> tuple[int, ...]:
        return choices_at(level, self.expands)

    def _arch(self, k, d, e, r) -> Arch:
        return self.space.validate({"ks": k, "e": e, "d": d, "r": [r]})

    def largest(self, phase: Phase) -> Arch:
        k, d, e, r = self._allowed(phase)
        return self._arch([k[-1]] * self.n_slots, [d[-1]] * self.n_stages, [e[-1]] * self.n_slots, r[-1])

    def smallest(self, phase: Phase) -> Arch:
        k, d, e, r = self._allowed(phase)
        return self._arch([k[0]] * self.n_slots, [d[0]] * self.n_stages, [e[0]] * self.n_slots, r[0])

    def random(self, phase: Phase, gen: torch.Generator) -> Arch:
        k, d, e, r = self._allowed(phase)
        return self._arch(_pick(gen, k, self.n_slots), _pick(gen, d, self.n_stages), _pick(gen, e, self.n_slots),
                          _pick(gen, r, 1)[0])

    def resolution(self, arch: Arch) -> int:
        return int(arch["r"][0])

    @property
    def max_resolution(self) -> int:
        return self.resolutions[-1]


class SinglePathSampler:
    """Paths of the ``single_path`` superkernel: kernel {3, 5}, expand {3, 6}, skip as the depth choice."""

    def __init__(self, space, resolution: int):
        from search_spaces.single_path.space import FIRST, OPTIONS, SKIP

        self.space, self.options, self.first, self.skip = space, OPTIONS, FIRST, SKIP
        self.kernels = tuple(sorted({k for k, _ in OPTIONS.values()}))
        self.expands = tuple(sorted({e for _, e in OPTIONS.values()}))
        self.skippable = [SKIP in d.choices for d in space.dims][1:]
        self._res = resolution

    def expands_at(self, level: str) -> tuple[int, ...]:
        return choices_at(level, self.expands)

    def _names(self, phase: Phase) -> list[str]:
        ks, es = choices_at(phase.kernel, self.kernels), choices_at(phase.expand, self.expands)
        return [n for n, (k, e) in self.options.items() if k in ks and e in es]

    def _depth_free(self, phase: Phase) -> bool:
        return phase.depth != "largest"

    def largest(self, phase: Phase) -> Arch:
        best = max(self._names(phase), key=lambda n: self.options[n])
        return {"ops": [self.first] + [best] * len(self.skippable)}

    def smallest(self, phase: Phase) -> Arch:
        low = min(self._names(phase), key=lambda n: self.options[n])
        skip = self._depth_free(phase)
        return {"ops": [self.first] + [self.skip if (s and skip) else low for s in self.skippable]}

    def random(self, phase: Phase, gen: torch.Generator) -> Arch:
        names = self._names(phase)
        with_skip = names + [self.skip]
        ops = [self.first]
        for s in self.skippable:
            pool = with_skip if (s and self._depth_free(phase)) else names
            ops.append(pool[int(torch.randint(len(pool), (1,), generator=gen))])
        return {"ops": ops}

    def resolution(self, arch: Arch) -> int:
        return self._res

    @property
    def max_resolution(self) -> int:
        return self._res


def sampler_for(space, resolution: int | None = None):
    """The sampler of a space's supernet family; UserError for spaces without a trainable supernet."""
    from search_spaces.ofa.space import OFASpace
    from search_spaces.single_path.space import SinglePathSpace

    if isinstance(space, OFASpace):
        return OFASampler(space)
    if isinstance(space, SinglePathSpace):
        return SinglePathSampler(space, resolution or 32)
    raise UserError(f"space {space.name!r} has no trainable supernet; accepted: ofa-family spaces "
                    "(ofa, ofa-w1.0, ofa-small) and single_path")
