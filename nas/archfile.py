"""Arch files: one arch or a list of them, with the space (and its parameters) they belong to.

hwnas writes (``nas convert``, ``best_arch.json``, ``nas export --json``)::

    {"space": "proxyless", "space_params": {"widths": {...}}, "arch": {"ops": [...]}}
    {"space": "ofa", "archs": [{...}, {...}]}

``space_params`` is present only when the space has parameters (``SearchSpace.space_params``).
Bare archs (an arch object, or a list of them) are still read; they carry no space, so a command
then needs ``--space``. A command reading a file that names its space defaults to that space and
refuses a conflicting ``--space``: an arch means a different network in another space (an
``ofa-w1.0`` arch priced as ``ofa`` is 44 % off), so guessing would be silently wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from search_spaces import get_space
from search_spaces.base import Arch, SearchSpace
from search_spaces.errors import UserError
from search_spaces.registry import space_spec

from .io import atomic_write_json, read_json

ENVELOPE_KEYS = {"space", "space_params", "space_version", "arch", "archs"}


@dataclass
class ArchFile:
    """What an arch file holds: its archs and, when recorded, their space and its parameters."""

    archs: list[Arch]
    space: str | None = None
    space_params: dict[str, Any] = field(default_factory=dict)
    path: str = ""


def _is_envelope(data: Any) -> bool:
    return isinstance(data, dict) and ("arch" in data or "archs" in data) and set(data) <= ENVELOPE_KEYS


def parse_arch_file(data: Any, where: str) -> ArchFile:
    """An ArchFile from parsed JSON; UserError (one line) on a bad shape."""
    space, params = None, {}
    if _is_envelope(data):
        space, params = data.get("space"), data.get("space_params", {})
        if space is not None and (not isinstance(space, str) or not space):
            raise UserError(f"arch file {where}: field space must be a space name, got {space!r}")
        if not isinstance(params, dict):
            raise UserError(f"arch file {where}: field space_params must be an object, got {type(params).__name__}")
        if "arch" in data and "archs" in data:
            raise UserError(f"arch file {where}: give arch or archs, not both")
        data = data["arch"] if "arch" in data else data["archs"]
    archs = data if isinstance(data, list) else [data]
    if not archs or not all(isinstance(a, dict) for a in archs):
        raise UserError(f"arch file {where} must hold an arch object, a non-empty list of them, or "
                        f'{{"space": NAME, "arch": {{...}}}}')
    return ArchFile(list(archs), space, dict(params), where)


def read_arch_file(path: str | os.PathLike) -> ArchFile:
    """The archs in ``path`` and the space they name, if any."""
    af = parse_arch_file(read_json(path, "arch file"), repr(str(path)))
    af.path = str(path)
    return af


def space_of(af: ArchFile, space: str | SearchSpace | None = None) -> SearchSpace:
    """The space to read ``af``'s archs in: the one the file names, or ``space`` (e.g. ``--space``).

    A file that names a space and a ``space`` that is another one is a UserError; a file naming
    none needs ``space``.
    """
    where = f"arch file {af.path!r}" if af.path else "the arch file"
    if af.space is None:
        if space is None:
            raise UserError(f"{where} does not say its space; pass --space (see nas spaces)")
        return get_space(space)
    if space is not None:
        given = get_space(space)
        if given.name != af.space:
            raise UserError(f"{where} holds archs of space {af.space!r}, not {given.name!r}; drop --space "
                            f"or pass --space {af.space} (an arch is another network in another space)")
        base = given
    else:
        try:
            base = get_space(af.space)
        except UserError:
            raise UserError(f"{where} names space {af.space!r}, which is not registered here; for a custom "
                            f"space pass --space PATH.py:ClassName") from None
    return get_space(base, af.space_params) if af.space_params else base


def arch_payload(space: SearchSpace, archs: Arch | Sequence[Arch]) -> dict:
    """The JSON object an arch file holds for ``archs`` of ``space`` (one arch: ``arch``, else ``archs``)."""
    spec = space_spec(space)
    if isinstance(archs, dict):
        return {**spec, "arch": archs}
    return {**spec, "archs": list(archs)}


def write_arch_file(path: str | os.PathLike, space: SearchSpace, archs: Arch | Sequence[Arch]) -> Path:
    """Write an arch file (atomically) that records ``space`` and its parameters."""
    return atomic_write_json(path, arch_payload(space, archs))
