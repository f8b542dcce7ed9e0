"""Search strategies, registered by name (``get_strategy("evolution")``)."""

from .base import Strategy, fill_feasible
from .registry import get_strategy, list_strategies, register_strategy
from . import evolution, optuna_samplers, random_search, rl  # noqa: F401  (registers the built-ins)

__all__ = ["Strategy", "fill_feasible", "get_strategy", "list_strategies", "register_strategy"]
