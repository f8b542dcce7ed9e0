"""One registry of search strategies, by name."""

from __future__ import annotations

from search_spaces.errors import UserError

_STRATEGIES: dict[str, type] = {}


def register_strategy(name: str):
    def deco(cls):
        cls.name = name
        _STRATEGIES[name] = cls
        return cls

    return deco


def list_strategies() -> list[str]:
    return sorted(_STRATEGIES)


def get_strategy(spec, **params):
    """A strategy instance from a name (with parameters) or an instance passed through."""
    if not isinstance(spec, str):
        return spec
    if spec not in _STRATEGIES:
        raise UserError(f"unknown strategy {spec!r}; known: {', '.join(list_strategies())}")
    return _STRATEGIES[spec](**params)  # parameters are validated there (one-line UserError)
