"""hwnas: hardware-aware neural architecture search.

The public API: spaces (``get_space``, ``list_spaces``, ``register_space``), conversion and export,
devices and latency (``describe_devices``, ``latency_predictor``, ``predict_costs``, ``import_table``),
search (``search``, ``get_estimator``, ``get_strategy``) and its ``SearchResult``.
"""

from search_spaces import (Arch, BlockKey, Dim, InvalidArchError, SearchSpace, UserError, get_space,
                           list_spaces, register_space)
from latency_predictors import DeviceProfile, LatencyPredictor, parse_latency_ms

from .api import convert, describe_spaces
from .export import export, load_pt
from .latency import (describe_devices, device_dirs, import_table, latency_predictor, predict_costs,
                      predict_latency_ms)
from .accuracy import get_estimator, list_estimators
from .results import SearchResult
from .search import load_result, resume, search
from .search_config import SearchConfig
from .strategies import get_strategy, list_strategies, register_strategy
from .checkpoints import load_supernet, save_supernet

from .version import __version__  # noqa: E402

__all__ = ["Arch", "BlockKey", "Dim", "InvalidArchError", "SearchSpace", "UserError", "get_space",
           "list_spaces", "register_space", "convert", "describe_spaces", "export", "load_pt",
           "describe_devices", "device_dirs", "import_table", "latency_predictor", "predict_costs",
           "predict_latency_ms", "DeviceProfile", "LatencyPredictor", "parse_latency_ms", "get_estimator",
           "list_estimators", "SearchResult", "load_result", "search", "resume", "SearchConfig", "get_strategy", "list_strategies",
           "register_strategy", "load_supernet", "save_supernet"]
