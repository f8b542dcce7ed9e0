"""One registry of search spaces, reachable by name (``get_space("ofa")``)."""

from __future__ import annotations

from typing import Callable

from .base import SearchSpace
from .errors import UserError

_FACTORIES: dict[str, Callable[[], SearchSpace]] = {}
_INSTANCES: dict[str, SearchSpace] = {}


def register_space(name: str):
    """Class or factory decorator: ``@register_space("my-space")``; the class takes no arguments."""

    def deco(factory):
        if name in _FACTORIES:
            raise ValueError(f"search space {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return deco


def list_spaces() -> list[str]:
    return sorted(_FACTORIES)


def get_space(space: str | SearchSpace) -> SearchSpace:
    """The space of that name (one shared instance), or the object itself if it is a space.

    A ``PATH.py:ClassName`` spec loads a user's space from that file (``load_space_module``).
    """
    if isinstance(space, SearchSpace):
        return space
    if space not in _FACTORIES:
        from .loader import is_module_spec, load_space_module

        if is_module_spec(space):
            return load_space_module(space)
        raise UserError(f"unknown search space {space!r}; known: {', '.join(list_spaces())}")
    if space not in _INSTANCES:
        inst = _FACTORIES[space]()
        inst.name = space
        _INSTANCES[space] = inst
    return _INSTANCES[space]
