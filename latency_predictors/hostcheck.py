"""Is this the machine a measured profile was taken on? Fingerprint differences and the speed-probe ratio.

Two checks, one cheap and one a second long. The fingerprint (``profile.HostFingerprint``) compares
what a host *is*: CPU model and family, the ISA features that change kernel choice, CPU and core
counts, ONNX Runtime's version and execution providers. The probe (``probe.py``) compares how fast
it *runs*: a profile measured with a probe on record is compared with this host's probe, and a
ratio outside ``1 +- PROBE_TOLERANCE`` counts as another host even when the fingerprints agree.

When the fingerprints agree and only the probe differs, the host is probed again (``REPROBES``
times, each shape's fastest time kept) before deciding: the same VM, quiet, once measured 0.80x
its own probe of a minute before, and one probe must not turn it into another machine.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache

from .profile import DeviceProfile, HostFingerprint, host_fingerprint

# What decides the speed of a run; Python or numpy versions do not, so they never count.
HARDWARE_FIELDS = ("machine", "processor", "cpu_family", "cpu_count", "cores", "threads_per_core")
PROBE_TOLERANCE = 0.15  # |ratio - 1| above this: another host, whatever the fingerprint says
REPROBES = 2  # fresh probes before a host of this very fingerprint counts as another one
_warned: set[tuple[str, str]] = set()
LEGACY = ("the profile records no ISA features or speed probe (written before hwnas recorded them), so this "
          "host cannot be confirmed as the one it was measured on")


class HostMismatchWarning(UserWarning):
    """A measured profile is used on a machine other than the one it was measured on."""


@lru_cache(maxsize=1)
def this_host() -> HostFingerprint:
    return host_fingerprint()


def _isa_difference(a: list[str] | None, b: list[str] | None) -> str | None:
    if a is None or b is None or set(a) == set(b):
        return None  # a profile from before the ISA was recorded: nothing to compare
    lost, gained = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    parts = ([f"lacks {', '.join(lost)}"] if lost else []) + ([f"adds {', '.join(gained)}"] if gained else [])
    return f"isa: this host {' and '.join(parts)}"


def host_differences(recorded: HostFingerprint, current: HostFingerprint | None = None) -> list[str]:
    """``field: recorded -> current`` for each hardware field, ISA feature set and ONNX Runtime detail that differs.

    A field either side leaves empty (a profile written before it was recorded) is not compared.
    """
    current = current or this_host()
    diffs = []
    for f in HARDWARE_FIELDS:
        a, b = getattr(recorded, f), getattr(current, f)
        if a is not None and b is not None and a != b:
            diffs.append(f"{f}: {a!r} -> {b!r}")
    isa = _isa_difference(recorded.isa, current.isa)
    if isa:
        diffs.append(isa)
    a, b = recorded.packages.get("onnxruntime"), current.packages.get("onnxruntime")
    if a and b and a != b:
        diffs.append(f"onnxruntime: {a} -> {b}")
    a, b = recorded.execution_providers, current.execution_providers
    if a is not None and b is not None and set(a) != set(b):
        diffs.append(f"execution providers: {', '.join(sorted(a))} -> {', '.join(sorted(b))}")
    return diffs


@dataclass
class HostCheck:
    """The outcome of comparing a measured profile's host with this one."""

    same: bool
    differences: list[str] = field(default_factory=list)
    probe_ratio: float | None = None  # this host's probe time / the recorded one (> 1: this host is slower)
    measured_on: str = ""
    here: str = ""
    probes: int = 0  # probes of this host the ratio is the fastest of (more than 1: re-probed)
    probe_repeat_pct: float | None = None  # this host's probe: even- vs odd-round disagreement

    def probe_off(self) -> bool:
        return self.probe_ratio is not None and abs(self.probe_ratio - 1) > PROBE_TOLERANCE

    def reason(self) -> str:
        """Why this host counts as another one, in a phrase (empty when it is the same)."""
        parts = list(self.differences)
        if self.probe_off():
            how = [f"tolerance +-{100 * PROBE_TOLERANCE:.0f} %"]
            if self.probes > 1:
                how.append(f"fastest of {self.probes} probes here")
            if self.probe_repeat_pct is not None:
                how.append(f"a probe repeats within {self.probe_repeat_pct:.1f} %")
            parts.insert(0, f"the speed probe takes {self.probe_ratio:.2f}x the recorded time here ({'; '.join(how)})")
        elif self.probe_ratio is not None:
            parts.append(f"speed probe {self.probe_ratio:.2f}x")
        elif parts and LEGACY not in parts:
            parts.append("no speed probe on record")
        return "; ".join(parts)

    def describe(self) -> str:
        """The host difference in one clause: "was measured on X, this host is Y: why"; says so when only the probe differs."""
        if not self.differences and self.probe_off():
            return (f"has the same CPU model and runtime as the host it was measured on ({self.measured_on}), "
                    f"but {self.reason()}")
        if self.measured_on == self.here:
            return f"was measured on a host that reads like this one ({self.here}) but differs: {self.reason()}"
        return f"was measured on {self.measured_on}, this host is {self.here}: {self.reason()}"


def check_host(profile: DeviceProfile, probe: bool = True, measure_probe=None) -> HostCheck | None:
    """Compare a measured profile's host with this one; None for profiles not measured on a host.

    ``probe``: when the profile carries a speed probe, time this host's (cached a day in the user
    folder); ``measure_probe(threads) -> SpeedProbe`` replaces the measurement (tests).
    """
    if profile.host is None or profile.source.kind != "measured":
        return None
    here = this_host()
    diffs = host_differences(profile.host, here)
    if profile.host.isa is None and profile.host.probe is None:
        # Written before hwnas recorded ISA features and a probe: "AMD EPYC, 2 CPUs" matched an AVX2-only
        # VM 2.5x slower than the AVX-512 one the table came from. Such a host cannot be confirmed.
        diffs.append(LEGACY)
    ratio, probes, repeat = None, 0, None
    from .probe import PROBE_VERSION, probe_ratio, this_host_probe

    recorded = profile.host.probe
    if probe and recorded is not None and recorded.version == PROBE_VERSION:
        threads = recorded.threads or 1
        current = this_host_probe(here, threads, measure=measure_probe)
        probes, ratio = 1, probe_ratio(recorded, current)
        while not diffs and ratio is not None and abs(ratio - 1) > PROBE_TOLERANCE and probes <= REPROBES:
            # The same kind of host, and only the probe disagrees: probe again before calling it another
            # machine (a burst of interference slows a probe; the fastest of several is this host's speed).
            current = this_host_probe(here, threads, measure=measure_probe, fresh=True, keep=current)
            probes, ratio = probes + 1, probe_ratio(recorded, current)
        repeat = current.repeat_pct
    off = ratio is not None and abs(ratio - 1) > PROBE_TOLERANCE
    return HostCheck(same=not diffs and not off, differences=diffs, probe_ratio=ratio,
                     measured_on=profile.host.label(), here=here.label(), probes=probes, probe_repeat_pct=repeat)


def warn_if_other_host(profile: DeviceProfile) -> list[str]:
    """Warn (once per profile and process) when a measured profile was taken on another host.

    The fingerprint only: a predictor built directly has no time for the probe. ``nas predict``,
    ``nas search`` and the API resolve the profile for this host first (``host_calibration.py``).
    """
    if profile.host is None or profile.source.kind != "measured":
        return []
    diffs = host_differences(profile.host)
    if diffs and (profile.name, profile.host.digest) not in _warned:
        _warned.add((profile.name, profile.host.digest))
        warnings.warn(f"device profile {profile.name!r} was measured on another host ({'; '.join(diffs)}); "
                      f"its latencies may not hold here (calibrate it here: nas calibrate --device {profile.name} "
                      f"--space SPACE)", HostMismatchWarning, stacklevel=3)
    return diffs
