"""Load a user's search space from a Python file: ``my_space.py:MySpace`` (the ``--space-module`` spec)."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path

from .base import SearchSpace
from .errors import UserError


def is_module_spec(text: str) -> bool:
    """True for ``PATH.py:NAME`` (what ``--space-module`` and ``get_space`` accept as a file spec)."""
    path, sep, name = str(text).rpartition(":")
    return bool(sep) and path.endswith(".py") and name.isidentifier()


def _load_module(path: Path):
    # One module per file (keyed by its absolute path): a second load returns the first, so the
    # file's @register_space runs once however often a run or a test names it.
    mod_name = "hwnas_user_space_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"--space-module {str(path)!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: report its first line, not our traceback
        del sys.modules[mod_name]
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"--space-module {str(path)!r} failed to import: {type(e).__name__}: {first}") from None
    return module


def load_space_module(spec: str) -> SearchSpace:
    """The space a ``PATH.py:NAME`` spec names: a SearchSpace subclass (built with no arguments),
    a factory returning a space, or a space instance. A class registered with ``@register_space``
    is returned as the registry's instance, under its registered name.
    """
    from .registry import _FACTORIES, get_space

    path_text, sep, name = str(spec).rpartition(":")
    if not sep or not path_text.endswith(".py") or not name.isidentifier():
        raise UserError(f"--space-module {spec!r}: expected PATH.py:ClassName, e.g. my_space.py:MySpace")
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"--space-module {spec!r}: file {str(path)!r} does not exist")
    module = _load_module(path)
    obj = getattr(module, name, None)
    if obj is None:
        raise UserError(f"--space-module {spec!r}: {path.name} defines no {name!r}")
    registered = [n for n, f in _FACTORIES.items() if f is obj]
    if registered:
        space = get_space(registered[0])
    elif isinstance(obj, SearchSpace):
        space = obj
    elif callable(obj):
        try:
            space = obj()
        except TypeError as e:
            raise UserError(f"--space-module {spec!r}: {name} must take no arguments ({e})") from None
        if not isinstance(space, SearchSpace):
            raise UserError(f"--space-module {spec!r}: {name} is not a SearchSpace "
                            f"(got {type(space).__name__}); subclass search_spaces.SearchSpace")
        if inspect.isclass(obj) and space.name == SearchSpace.name:
            space.name = name
    else:
        raise UserError(f"--space-module {spec!r}: {name} is not a SearchSpace class or factory")
    space.module_spec = f"{path}:{name}"  # what a run's config.json records, so --resume finds it
    return space
