"""What a killed sweep driver leaves behind on this machine, and clearing it at the next start.

A local Ray for one command lives in its own temp folder (``/tmp/hwnas-ray-*``), which also holds
the trials' scratch folders. The driver records itself in that folder (pid and process start
time) and puts the folder's path in the environment every Ray process inherits. When a driver
is killed (``kill -9``), the next ``nas sweep`` (new or ``--resume``) finds folders whose driver
is gone, stops the processes that carry the marker (GCS, raylet, agents, workers; Ray renames
worker processes, so the marker is looked up in their environment, not their command line) and
removes the folder. Folders of a live driver, of another user, or without an owner record are
left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

RAY_TEMP_PREFIX = "hwnas-ray-"
OWNER_FILE = "hwnas-driver.json"
SESSION_ENV = "HWNAS_RAY_SESSION"  # inherited by every process of the local Ray
SCRATCH_ENV = "HWNAS_SCRATCH_DIR"  # where trials and the driver make their temp folders


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart), if known."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def mark_owner(temp_dir: str | os.PathLike) -> None:
    pid = os.getpid()
    Path(temp_dir, OWNER_FILE).write_text(json.dumps({"pid": pid, "start": _start_time(pid)}))


def _owner_alive(folder: Path) -> bool | None:
    """True/False for a recorded owner; None when the folder has no readable owner record."""
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
        pid, start = int(owner["pid"]), owner.get("start")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return start is None or _start_time(pid) in (None, start)


def _marked(environ: bytes, folder: Path) -> bool:
    # Ray passes its agents only part of the driver's environment (seen: the scratch variable
    # without the session one), so any HWNAS_* variable pointing into the folder marks a process
    inside = str(folder).encode()
    for entry in environ.split(b"\0"):
        name, _, value = entry.partition(b"=")
        if name.startswith(b"HWNAS_") and (value == inside or value.startswith(inside + b"/")):
            return True
    return False


def _marked_pids(folder: Path) -> list[int]:
    """Our processes whose environment points into ``folder`` (the Ray session's temp folder)."""
    me, uid, pids = os.getpid(), os.getuid(), []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == me:
            continue
        try:
            if p.stat().st_uid != uid:
                continue
            if _marked((p / "environ").read_bytes(), folder):
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


def reap_stale_ray_sessions(base: str | os.PathLike | None = None, grace_s: float = 3.0) -> list[Path]:
    """Stop the processes and remove the folders of local Rays whose sweep driver has died."""
    base = Path(base or tempfile.gettempdir())
    reaped = []
    for folder in sorted(base.glob(RAY_TEMP_PREFIX + "*")):
        try:
            if not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        if _owner_alive(folder) is not False:
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = _marked_pids(folder)
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + grace_s
            while pids and time.monotonic() < deadline and _marked_pids(folder):
                time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)
        reaped.append(folder)
    return reaped


def scratch_dir() -> str | None:
    """The current local Ray's scratch folder (removed with it), or None for the system temp dir."""
    d = os.environ.get(SCRATCH_ENV)
    return d if d and os.path.isdir(d) else None


def remove_write_debris(run_dir: Path) -> None:
    """``.NAME.*.tmp`` files of atomic writes a killed driver left in the run folder's trial folders."""
    for p in run_dir.glob("trials/*/.*.tmp"):
        p.unlink(missing_ok=True)
