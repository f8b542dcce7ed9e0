"""One registry of search spaces, reachable by name (``get_space("ofa")``)."""

from __future__ import annotations

import inspect
import json
from typing import Callable

from .base import SearchSpace
from .errors import UserError
from .loader import is_module_spec, load_module_object

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


def load_space_module(spec: str) -> SearchSpace:
    """The space a ``PATH.py:NAME`` spec names: a SearchSpace subclass (built with no arguments),
    a factory returning a space, or a space instance. A class registered with ``@register_space``
    is returned as the registry's instance, under its registered name.
    """
    obj, path = load_module_object(spec)
    name = str(spec).rpartition(":")[2]
    registered = [n for n, f in _FACTORIES.items() if f is obj]
    if registered:
        space = get_space(registered[0])
    elif isinstance(obj, SearchSpace):
        space = obj
    elif callable(obj):
        try:
            space = obj()
        except TypeError as e:
            raise UserError(f"--space-module {spec!r}: {name} must take no arguments ({e})") from None
        if not isinstance(space, SearchSpace):
            raise UserError(f"--space-module {spec!r}: {name} is not a SearchSpace "
                            f"(got {type(space).__name__}); subclass search_spaces.SearchSpace")
        if inspect.isclass(obj) and space.name == SearchSpace.name:
            space.name = name
    else:
        raise UserError(f"--space-module {spec!r}: {name} is not a SearchSpace class or factory")
    space.module_spec = f"{path}:{name}"  # what a run's config.json records, so --resume finds it
    return space


def space_spec(space: SearchSpace) -> dict:
    """``{"space": name}`` plus ``"space_params"`` when the space has any: what arch files record."""
    params = space.space_params()
    return {"space": space.name, **({"space_params": params} if params else {})}
