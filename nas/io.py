"""File edges: atomic writes and reading user files with one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from search_spaces.errors import UserError
from search_spaces.fileio import atomic_write_bytes


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def to_json(obj: Any) -> str:
    """Indented JSON with lists of scalars kept on one line (archs stay readable and diffable)."""

    def enc(o, level):
        pad = "  " * level
        if isinstance(o, dict):
            if not o:
                return "{}"
            items = [f"{pad}  {json.dumps(str(k))}: {enc(v, level + 1)}" for k, v in o.items()]
            return "{\n" + ",\n".join(items) + f"\n{pad}}}"
        if isinstance(o, (list, tuple)):
            if all(not isinstance(v, (dict, list, tuple)) for v in o):
                return json.dumps(list(o))
            items = [f"{pad}  {enc(v, level + 1)}" for v in o]
            return "[\n" + ",\n".join(items) + f"\n{pad}]"
        return json.dumps(o)

    return enc(obj, 0)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj) + "\n")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Parsed JSON, or a UserError naming the file and the problem."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} {str(p)!r} does not exist or is not a file")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {str(p)!r} is not valid JSON ({e})") from None
    except RecursionError:  # nested deeper than the parser's stack
        raise UserError(f"{what} {str(p)!r} is nested too deeply to be an arch or config") from None


def read_archs(path: str | os.PathLike) -> list[dict]:
    """The archs in a JSON file holding one arch object or a list of them."""
    data = read_json(path, "arch file")
    archs = data if isinstance(data, list) else [data]
    if not archs or not all(isinstance(a, dict) for a in archs):
        raise UserError(f"arch file {str(path)!r} must hold an arch object or a non-empty list of them")
    return archs
