"""Import a user's Python file named by a ``my_space.py:MySpace`` spec (``--space-module``).

``search_spaces.registry.load_space_module`` builds the space from what this returns.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

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


def load_module_object(spec: str):
    """(the object a ``PATH.py:NAME`` spec names, the file's path); importing the file runs its code.

    ``registry.load_space_module`` turns the object into a space (the registry's instance when the
    file registered it): this file only reads specs and imports files, below the registry.
    """
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
    return obj, path
