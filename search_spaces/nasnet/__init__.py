"""NASNet's cell space: ``nasnet`` (architectures that are graphs)."""

from .genotype import OPS, canonical_cells
from .published import PUBLISHED_ARCHS
from .space import NASNetSpace

__all__ = ["NASNetSpace", "OPS", "PUBLISHED_ARCHS", "canonical_cells"]
