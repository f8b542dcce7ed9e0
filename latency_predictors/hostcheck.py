"""Is this the machine a measured profile was taken on? A warning when it is not."""

from __future__ import annotations

import warnings
from functools import lru_cache

from .profile import DeviceProfile, HostFingerprint, host_fingerprint

# What decides the speed of a run; Python or numpy versions do not, so they never warn.
HARDWARE_FIELDS = ("machine", "processor", "cpu_count")
_warned: set[tuple[str, str]] = set()


class HostMismatchWarning(UserWarning):
    """A measured profile is used on a machine other than the one it was measured on."""


@lru_cache(maxsize=1)
def this_host() -> HostFingerprint:
    return host_fingerprint()


def host_differences(recorded: HostFingerprint, current: HostFingerprint | None = None) -> list[str]:
    """``field: recorded -> current`` for each hardware field (and the ONNX Runtime version) that differs."""
    current = current or this_host()
    diffs = [f"{f}: {getattr(recorded, f)!r} -> {getattr(current, f)!r}" for f in HARDWARE_FIELDS
             if getattr(recorded, f) != getattr(current, f)]
    a, b = recorded.packages.get("onnxruntime"), current.packages.get("onnxruntime")
    if a and b and a != b:
        diffs.append(f"onnxruntime: {a} -> {b}")
    return diffs


def warn_if_other_host(profile: DeviceProfile) -> list[str]:
    """Warn (once per profile and process) when a measured profile was taken on another host."""
    if profile.host is None or profile.source.kind != "measured":
        return []
    diffs = host_differences(profile.host)
    if diffs and (profile.name, profile.host.digest) not in _warned:
        _warned.add((profile.name, profile.host.digest))
        warnings.warn(f"device profile {profile.name!r} was measured on another host ({'; '.join(diffs)}); "
                      f"its latencies may not hold here (re-measure with: nas profile --device NAME --space SPACE)",
                      HostMismatchWarning, stacklevel=3)
    return diffs
