"""FBNet's 22-layer space: ``fbnet``."""

from .published import PUBLISHED_ARCHS
from .space import CANDIDATES, FBNetSpace

__all__ = ["FBNetSpace", "CANDIDATES", "PUBLISHED_ARCHS"]
