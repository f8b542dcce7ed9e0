"""Search strategies, registered by name (``get_strategy("evolution")``)."""

from .base import Param, Strategy
from .budget import budget_defaults
from .registry import get_strategy, list_strategies, register_strategy
from . import evolution, optuna_samplers, predictor_evolution, random_search, rl  # noqa: F401  (registers the built-ins)

from ..gradient import dnas as _dnas, proxyless as _proxyless, single_path as _single_path  # noqa: E402,F401

__all__ = ["Param", "Strategy", "budget_defaults", "get_strategy", "list_strategies", "register_strategy"]
