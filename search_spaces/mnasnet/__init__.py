"""MnasNet's factorized hierarchical space: ``mbconv``."""

from .published import PUBLISHED_ARCHS
from .space import MnasNetSpace

__all__ = ["MnasNetSpace", "PUBLISHED_ARCHS"]
