"""Search spaces: the SearchSpace contract, its registry and the built-in spaces."""

from .base import Arch, Dim, SearchSpace
from .blocks import BlockKey
from .errors import InvalidArchError, UserError
from .registry import get_space, list_spaces, load_space_module, register_space
from . import fbnet, mnasnet, nasnet, ofa, proxyless, single_path  # noqa: F401  (registers the built-in spaces)

__all__ = ["Arch", "Dim", "SearchSpace", "BlockKey", "InvalidArchError", "UserError",
           "get_space", "list_spaces", "load_space_module", "register_space"]
