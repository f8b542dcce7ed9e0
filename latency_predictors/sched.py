"""Does this process's ``nice`` give its timings priority here? A warning when it cannot.

Linux with ``kernel.sched_autogroup_enabled = 1`` (the default of most distributions) first shares
the CPU between *sessions* (one scheduling group per session, weighted by the group's own nice,
``/proc/self/autogroup``), and only then between the processes of a session by their nice. So
``nice -n -15 nas validate-latency ...`` started beside other sessions' jobs does not get ahead of
them: each busy session still takes its share. Measured on a 2-core VM with two other sessions
busy: NASNet-A timed 76-115 ms per round at ``nice -15`` alone and 13.3-15.0 ms with the session's
group at nice -15 too; with 2 intra-op threads a run waits for its slowest thread, so a shared core
slows the whole run (docs/profiling.md, "Priority").
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")
RECIPE = ("setsid sh -c 'echo -15 > /proc/self/autogroup; exec nice -n -15 nas ...' "
          "(docs/profiling.md, \"Priority\")")
_checked = False


class PriorityWarning(UserWarning):
    """A timing process asked for priority with nice, which the kernel's session groups ignore."""


def priority_state(autogroup_switch: Path = AUTOGROUP_SWITCH, autogroup_file: Path = Path("/proc/self/autogroup")
                   ) -> dict:
    """This process's nice and, where the kernel groups processes by session, its group's nice (else None)."""
    nice = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0
    group = None
    try:
        if autogroup_switch.read_text().strip() == "1":
            # "/autogroup-25 nice 0"
            group = int(autogroup_file.read_text().split("nice")[-1])
    except (OSError, ValueError):
        group = None  # not Linux, or no autogroups: nice orders every process directly
    return {"nice": nice, "autogroup_nice": group}


def priority_message(state: dict) -> str | None:
    """The warning for a process whose nice asks for more priority than its session's group has, else None."""
    nice, group = state["nice"], state["autogroup_nice"]
    if group is None or nice >= group:
        return None
    return (f"this process runs at nice {nice}, but the kernel shares the CPU between sessions first "
            f"(kernel.sched_autogroup_enabled = 1) and this session's group is at nice {group}: other sessions' "
            f"jobs keep their share and slow these timings; for priority run: {RECIPE}")


def priority_check() -> dict:
    """Warn once per process when its nice cannot give its timings priority; returns ``priority_state()``."""
    global _checked
    state = priority_state()
    msg = priority_message(state)
    if msg is not None and not _checked:
        warnings.warn(msg, PriorityWarning, stacklevel=3)
    _checked = True
    return state
