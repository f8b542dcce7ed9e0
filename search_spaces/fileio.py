"""Atomic file writes, shared by every hwnas package (this is the bottom of the dependency graph)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write via a temp file in the same folder and rename, so readers never see half a file.

    The temp file is created private (0600); the result gets the usual umask-based mode.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # a file where a folder should be, a read-only folder or filesystem, ...
        raise _cannot_write(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _cannot_write(path, e) from None
        raise
    return path


def _cannot_write(path: Path, e: OSError):
    from .errors import UserError

    where = f" ({e.filename})" if getattr(e, "filename", None) and str(e.filename) != str(path) else ""
    return UserError(f"cannot write {str(path)!r}: {e.strerror or type(e).__name__}{where}")


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Render a matplotlib figure to PNG, close it, and write the PNG atomically to ``path``."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


# ---- reading user files -----------------------------------------------------------------------
# Every reader below turns what can go wrong with a file a user hands us (missing, a folder,
# unreadable, binary garbage, syntax errors, nesting deep enough to overflow the parser) into one
# UserError line naming the file, so no command shows a traceback for a bad file.
MAX_READ_BYTES = 256 * 1024 * 1024  # larger "JSON/YAML" is not a config file: refuse before reading


def read_text_file(path: str | os.PathLike, what: str = "file") -> str:
    """The file's text (UTF-8), or a UserError saying why it cannot be read."""
    from .errors import UserError

    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} {str(p)!r} does not exist")
    if not p.is_file():
        raise UserError(f"{what} {str(p)!r} is not a file")
    try:
        if p.stat().st_size > MAX_READ_BYTES:
            raise UserError(f"{what} {str(p)!r} is larger than {MAX_READ_BYTES >> 20} MiB; not a config file")
        data = p.read_bytes()
    except OSError as e:
        raise UserError(f"{what} {str(p)!r} cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {str(p)!r} is not UTF-8 text (byte {e.start}); is it a binary file?") from None


def parse_json_text(text: str, where: str) -> object:
    """Parsed JSON, or a UserError naming ``where`` (syntax errors, absurd nesting)."""
    import json

    from .errors import UserError

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{where} is not valid JSON ({e})") from None
    except RecursionError:
        raise UserError(f"{where} is nested too deeply to be an hwnas file") from None
    if _json_depth(data) > MAX_NESTING:  # later recursive code (validation, printing) would overflow
        raise UserError(f"{where} nests more than {MAX_NESTING} levels deep; not an hwnas file")
    return data


MAX_NESTING = 200  # hwnas files nest a few levels; thousands is an attack or an accident


def _json_depth(obj) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (list, dict)):
            deepest = max(deepest, d)
            if d > MAX_NESTING:
                break
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return deepest


def yaml_too_deep(text: str, loader) -> bool:
    """Whether collections nest deeper than MAX_NESTING, from the event stream.

    Older libyaml-backed loaders recurse in C: with the PyYAML of Debian's python3, 100000 nested
    brackets crash the interpreter (segfault) instead of raising; the pure-Python loader raises
    RecursionError. So depth is checked on the (iterative) event stream first.
    """
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_NESTING:
                return True
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
    return False


def parse_yaml_text(text: str, where: str, loader=None) -> object:
    """Parsed YAML (safe loader unless a stricter subclass is given), or a UserError naming ``where``."""
    import yaml

    from .errors import UserError

    loader = loader or yaml.SafeLoader
    try:
        if yaml_too_deep(text, loader):
            raise UserError(f"{where} nests more than {MAX_NESTING} levels deep; not an hwnas file")
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{where} is not valid YAML ({first})") from None
    except RecursionError:
        raise UserError(f"{where} is nested too deeply to be an hwnas file") from None


def read_json_file(path: str | os.PathLike, what: str = "file") -> object:
    """Parsed JSON from a user's file; every failure is one UserError line."""
    return parse_json_text(read_text_file(path, what), f"{what} {str(path)!r}")


def read_yaml_file(path: str | os.PathLike, what: str = "file", loader=None) -> object:
    """Parsed YAML from a user's file; every failure is one UserError line."""
    return parse_yaml_text(read_text_file(path, what), f"{what} {str(path)!r}", loader)


def check_writable_dir(directory) -> None:
    """UserError now, not after minutes of measuring, when ``directory`` cannot take a new file.

    The folder need not exist yet (its nearest existing parent must then be a writable folder);
    a probe file is created and removed, which also catches read-only filesystems (and root,
    for whom permission bits say nothing).
    """
    from .errors import UserError  # as in the readers above

    d = Path(directory)
    probe_in = d
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise UserError(f"--out {str(d)!r}: {str(probe_in)!r} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=probe_in, prefix=".hwnas-probe-"):
            pass
    except OSError as e:
        raise UserError(f"--out {str(d)!r}: cannot write there ({e.strerror or type(e).__name__}); "
                        f"choose a writable folder") from None
