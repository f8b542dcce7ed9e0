"""One registry of search spaces, reachable by name (``get_space("ofa")``)."""

from __future__ import annotations

import json
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


def get_space(space: str | SearchSpace, params: dict | None = None) -> SearchSpace:
    """The space of that name (one shared instance), or the object itself if it is a space.

    A ``PATH.py:ClassName`` spec loads a user's space from that file (``load_space_module``).
    ``params`` (what an arch file records as ``space_params``) give that space with those
    parameters (``SearchSpace.with_params``), one shared instance per distinct set.
    """
    if isinstance(space, SearchSpace):
        base = space
    elif space not in _FACTORIES:
        from .loader import is_module_spec, load_space_module

        if not isinstance(space, str) or not is_module_spec(space):
            raise UserError(f"unknown search space {space!r}; known: {', '.join(list_spaces())}")
        base = load_space_module(space)
    else:
        if space not in _INSTANCES:
            inst = _FACTORIES[space]()
            inst.name = space
            _INSTANCES[space] = inst
        base = _INSTANCES[space]
    if not params:
        return base
    if not isinstance(params, dict):
        raise UserError(f"space_params must be a JSON object, got {type(params).__name__}")
    key = (base.name, id(base), json.dumps(params, sort_keys=True, default=str))
    if key not in _WITH_PARAMS:
        _WITH_PARAMS[key] = base.with_params(params)
    return _WITH_PARAMS[key]


_WITH_PARAMS: dict[tuple, SearchSpace] = {}


def space_spec(space: SearchSpace) -> dict:
    """``{"space": name}`` plus ``"space_params"`` when the space has any: what arch files record."""
    params = space.space_params()
    return {"space": space.name, **({"space_params": params} if params else {})}
