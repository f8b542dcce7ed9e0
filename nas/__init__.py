"""hwnas: hardware-aware neural architecture search.

The public API: spaces (``get_space``, ``list_spaces``, ``register_space``), conversion and export.
"""

from search_spaces import (Arch, BlockKey, Dim, InvalidArchError, SearchSpace, UserError, get_space,
                           list_spaces, register_space)

from .api import convert, describe_spaces
from .export import export, load_pt

__version__ = "0.1.0"

__all__ = ["Arch", "BlockKey", "Dim", "InvalidArchError", "SearchSpace", "UserError", "get_space",
           "list_spaces", "register_space", "convert", "describe_spaces", "export", "load_pt"]
