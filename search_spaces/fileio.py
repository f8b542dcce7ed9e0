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


def read_user_text(path, what: str) -> str:
    """A user's text file as str; a UserError (one line) when it is missing, unreadable or not UTF-8."""
    from pathlib import Path

    from .errors import UserError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} {str(p)!r} does not exist or is not a file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {str(p)!r} is not UTF-8 text (byte {e.start}: {e.reason}); "
                        f"expected a text file") from None
    except OSError as e:
        raise UserError(f"{what} {str(p)!r} cannot be read ({e.strerror or type(e).__name__})") from None
