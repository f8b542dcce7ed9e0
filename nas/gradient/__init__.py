"""Strategies that train a weight-sharing supernet with the latency table as a differentiable term.

``dnas`` (FBNet), ``proxyless`` (ProxylessNAS), ``single-path`` (Single-Path NAS): registered
strategies that ``nas.search`` dispatches to ``runner.train_search`` (see ``contract``).
"""

from .contract import TrainingStrategy

__all__ = ["TrainingStrategy"]
