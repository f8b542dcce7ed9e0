"""The search runner: the grid strategies search, the archive, the evaluation cache, checkpoints and the loop.

The runner alone prices, filters feasibility, de-duplicates, evaluates and checkpoints; strategies
only ask for candidates and are told what they scored (see ``nas.strategies.base``).
"""

from .archive import Archive, EvalCache, row_hash
from .context import SearchContext
from .grid import SearchGrid
from .loop import Progress, run_search

__all__ = ["Archive", "EvalCache", "Progress", "SearchContext", "SearchGrid", "row_hash", "run_search"]
