"""Run folders: claimed by one process at a time, never written over, checked before a resume.

A search or sweep writes its results into a run folder (``--out``). ``claim_run_folder`` is the
single gate every writer goes through:

* a new run needs a folder that does not exist or is empty: earlier results are never replaced;
* ``resume=True`` needs the folder to exist;
* the folder is locked (``flock`` on ``RUN_DIR/.hwnas.lock``) while the process writes, so a second
  process on the same folder is refused at once; the kernel drops the lock when its holder exits,
  even by ``kill -9``, so a dead process never blocks a later run;
* leftovers of a killed writer (``.NAME.*.tmp`` files of an interrupted atomic write) are removed
  once the lock is held, since no other writer can own them then;
* a path that cannot be used (a file, a read-only filesystem, no permission) is one UserError line
  before any work starts.

``check_checkpoint`` reads a search run folder's ``checkpoint.npz`` and turns a damaged or foreign
file into one UserError line instead of a traceback mid-run (``SearchConfig.read`` does the same for
its ``config.json``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from pathlib import Path
from typing import Iterator

from search_spaces.errors import UserError

try:  # POSIX; elsewhere run folders are not locked (the emptiness check still holds)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".hwnas.lock"


def _tmp_debris(folder: Path) -> list[Path]:
    """Temp files our atomic writes leave when killed mid-write (``.NAME.RANDOM.tmp``)."""
    return [p for p in folder.glob(".*.tmp") if p.is_file()]


def _describe(folder: Path, limit: int = 4) -> str:
    names = sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME)
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _is_empty(folder: Path) -> bool:
    return not any(p.name != LOCK_NAME for p in folder.iterdir())


class RunFolderLock:
    """An exclusive, non-blocking lock on a run folder, held until ``release()`` or process exit."""

    def __init__(self, folder: Path, what: str):
        self.folder, self.path, self.fd = folder, folder / LOCK_NAME, None
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"{what} {str(folder)!r} is not writable ({e.strerror or type(e).__name__}); "
                            "choose another --out") from None
        if fcntl is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = f" (process {int(os.pread(self.fd, 32, 0).split()[0])})"
            os.close(self.fd)
            self.fd = None
            raise UserError(f"{what} {str(folder)!r} is in use by another hwnas process{holder}; wait for it "
                            "to finish or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the file stays, empty locks are harmless
            self.fd = None


def _check_writable_path(folder: Path, what: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what} {str(folder)!r} is a file, not a folder; choose another --out")
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{what} {str(folder)!r} cannot be created: {str(parent)!r} is a file")
            break


@contextlib.contextmanager
def claim_run_folder(out: str | os.PathLike, *, resume: bool, what: str = "run folder",
                     marker: str = "config.json", resume_hint: str = "--resume") -> Iterator[Path]:
    """The run folder, created if new, locked for this process while the ``with`` block runs.

    A new run (``resume=False``) refuses a folder that holds anything; ``resume=True`` accepts an
    existing folder or an empty one (a sweep trial's first start). When the block raises and the
    folder was created here and is still empty, it is removed again: bad input leaves no trace.
    """
    folder = Path(out)
    _check_writable_path(folder, what)
    if folder.is_dir() and not resume and not _is_empty(folder):
        how = (f"pass {resume_hint} {folder} to continue the run there, or choose another --out"
               if (folder / marker).is_file() else "choose another --out (or empty the folder)")
        raise UserError(f"{what} {str(folder)!r} is not empty (it holds {_describe(folder)}); refusing to "
                        f"write over earlier results: {how}")
    try:
        folder.mkdir(parents=True)
        created = True
    except FileExistsError:
        created = False
    except OSError as e:
        raise UserError(f"{what} {str(folder)!r} cannot be created ({e.strerror or type(e).__name__}); "
                        "choose another --out") from None
    lock = None
    try:
        lock = RunFolderLock(folder, what)
        # checked again under the lock: a process that claimed the folder a moment ago has written by now
        if not resume and not _is_empty(folder):
            raise UserError(f"{what} {str(folder)!r} is not empty (it holds {_describe(folder)}); choose "
                            "another --out")
        for p in _tmp_debris(folder):
            p.unlink(missing_ok=True)
        yield folder
    except BaseException:
        if lock is not None:
            lock.release()
            lock = None
        if created and folder.is_dir() and _is_empty(folder):
            with contextlib.suppress(OSError):
                (folder / LOCK_NAME).unlink(missing_ok=True)
                folder.rmdir()
        raise
    finally:
        if lock is not None:
            lock.release()


def holds_run_folder(fn):
    """Decorate a function taking ``out=`` and ``resume=`` so it runs inside ``claim_run_folder``."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind_partial(*args, **kwargs)
        out = bound.arguments.get("out")
        if out is None:
            return fn(*args, **kwargs)
        resume = bool(bound.arguments.get("resume", False))
        with claim_run_folder(out, resume=resume):
            if resume:
                check_checkpoint(Path(out) / "checkpoint.npz")
            return fn(*args, **kwargs)

    return wrapper


# ---- what --resume reads (config.json: nas.search_config.SearchConfig.read) -------------------
def check_checkpoint(path: Path) -> None:
    """Refuse a damaged checkpoint (truncated, empty, bit-flipped, not an npz) with one line."""
    import numpy as np

    if not path.exists():
        return
    hint = "delete it to start the search over, or choose another --out"
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            for name in names:  # reading every array runs the zip CRC checks
                z[name]
    except Exception as e:  # noqa: BLE001 - zip, EOF, CRC, pickle and format errors mean the same here
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"checkpoint {str(path)!r} is damaged ({type(e).__name__}: {first}); {hint}") from None
    if "fingerprint" not in names:
        raise UserError(f"checkpoint {str(path)!r} is not an hwnas search checkpoint; {hint}")
