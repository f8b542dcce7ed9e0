"""What CPU this is: model, family, the ISA features that change which kernels ONNX Runtime picks, cores.

Read from Linux's ``/proc/cpuinfo`` (x86 and ARM write it in different shapes), else from ``lscpu``,
else from ``platform``. Parsing is separate from reading, so recorded texts from other machines
(``tests/fixtures/cpuinfo``) exercise every path on any host.

Only the features that decide kernel choice are kept (MLAS and the int8/bf16 paths dispatch on
them); the dozens of other flags (``rdrand``, ``sha_ni``, mitigations) change nothing about a
network's speed and would make two hosts of the same kind look different.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass, field

# x86: /proc/cpuinfo "flags" names, in the order a reader expects them.
X86_KERNEL_FLAGS = ("avx", "fma", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                    "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")
# ARM: /proc/cpuinfo "Features" names -> the name people use for them.
ARM_KERNEL_FLAGS = {"neon": "neon", "asimd": "neon", "asimdhp": "fp16", "fphp": "fp16", "asimddp": "dotprod",
                    "i8mm": "i8mm", "bf16": "bf16", "sve": "sve", "sve2": "sve2", "sme": "sme"}
ARM_ORDER = ("neon", "fp16", "dotprod", "i8mm", "bf16", "sve", "sve2", "sme")

# ARM's own cores (implementer 0x41) by part number: /proc/cpuinfo on ARM names no model.
ARM_PARTS = {0xd03: "Cortex-A53", 0xd04: "Cortex-A35", 0xd05: "Cortex-A55", 0xd07: "Cortex-A57",
             0xd08: "Cortex-A72", 0xd09: "Cortex-A73", 0xd0a: "Cortex-A75", 0xd0b: "Cortex-A76",
             0xd0c: "Neoverse-N1", 0xd0d: "Cortex-A77", 0xd40: "Neoverse-V1", 0xd41: "Cortex-A78",
             0xd44: "Cortex-X1", 0xd46: "Cortex-A510", 0xd47: "Cortex-A710", 0xd48: "Cortex-X2",
             0xd49: "Neoverse-N2", 0xd4f: "Neoverse-V2", 0xd4b: "Cortex-A78C", 0xc07: "Cortex-A7",
             0xc0f: "Cortex-A15"}
ARM_IMPLEMENTERS = {0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "Fujitsu", 0x48: "HiSilicon",
                    0x4e: "NVIDIA", 0x51: "Qualcomm", 0x61: "Apple", 0xc0: "Ampere"}


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as far as latency is concerned."""

    arch: str  # x86_64, aarch64, armv7l, ...
    vendor: str | None = None  # GenuineIntel, AuthenticAMD, ARM, ...
    model: str = "unknown"  # e.g. "Intel(R) Xeon(R) Processor", "Neoverse-N1"
    family: str | None = None  # x86: "family 6 model 167"; ARM: "implementer 0x41 part 0xd0c"
    isa: tuple[str, ...] = field(default_factory=tuple)  # kernel-relevant features only
    logical_cpus: int | None = None  # what the OS schedules on
    cores: int | None = None  # physical cores
    threads_per_core: int | None = None


def _kv_blocks(text: str) -> list[dict[str, str]]:
    """``/proc/cpuinfo`` as one dict per blank-line separated block (keys lower case)."""
    blocks, cur = [], {}
    for line in text.splitlines():
        if not line.strip():
            if cur:
                blocks.append(cur)
                cur = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            cur[key.strip().lower()] = value.strip()
    if cur:
        blocks.append(cur)
    return blocks


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 0)  # ARM writes parts in hex (0xd0c)
    except ValueError:
        m = re.match(r"\s*(\d+)", text)
        return int(m.group(1)) if m else None


def kernel_isa(flags, arch: str) -> tuple[str, ...]:
    """The kernel-relevant features among ``flags`` (x86 flags or ARM Features), in a fixed order."""
    names = {f.strip().lower() for f in flags}
    if _is_arm(arch):
        found = {ARM_KERNEL_FLAGS[f] for f in names if f in ARM_KERNEL_FLAGS}
        if arch == "aarch64" or arch.startswith("arm64"):
            found.add("neon")  # Advanced SIMD is mandatory on ARMv8-A
        return tuple(f for f in ARM_ORDER if f in found)
    return tuple(f for f in X86_KERNEL_FLAGS if f in names)


def _is_arm(arch: str) -> bool:
    return arch.startswith(("arm", "aarch"))


def _arm_model(implementer: int | None, part: int | None) -> tuple[str, str | None]:
    vendor = ARM_IMPLEMENTERS.get(implementer) if implementer is not None else None
    if implementer == 0x41 and part in ARM_PARTS:
        return ARM_PARTS[part], vendor
    if part is not None:
        return f"{vendor or 'implementer ' + hex(implementer or 0)} part {hex(part)}", vendor
    return "unknown", vendor


def parse_proc_cpuinfo(text: str, arch: str | None = None) -> CpuInfo:
    """A CpuInfo from ``/proc/cpuinfo`` text, x86 or ARM (32- or 64-bit)."""
    blocks = _kv_blocks(text)
    procs = [b for b in blocks if "processor" in b and _int(b["processor"]) is not None]
    first = procs[0] if procs else (blocks[0] if blocks else {})
    every = {k: v for b in blocks for k, v in b.items()}  # ARM puts Hardware/Model in a trailing block
    if arch is None:  # a recorded text: ARM names an implementer, a 32-bit ARM kernel says architecture 7
        arch = "x86_64" if "cpu implementer" not in first else \
            "armv7l" if first.get("cpu architecture", "").strip() == "7" else "aarch64"
    n_logical = len(procs) or None
    if not _is_arm(arch):
        flags = first.get("flags", "").split()
        family = None
        if "cpu family" in first:
            family = f"family {first['cpu family']} model {first.get('model', '?')}"
        sockets = len({b.get("physical id") for b in procs}) or 1
        cores_per = _int(first.get("cpu cores"))
        siblings = _int(first.get("siblings"))
        cores = cores_per * sockets if cores_per else None
        tpc = siblings // cores_per if siblings and cores_per else None
        return CpuInfo(arch=arch, vendor=first.get("vendor_id"), model=first.get("model name", "unknown"),
                       family=family, isa=kernel_isa(flags, arch), logical_cpus=n_logical, cores=cores,
                       threads_per_core=tpc)
    impl, part = _int(first.get("cpu implementer")), _int(first.get("cpu part"))
    core, vendor = _arm_model(impl, part)
    if core == "unknown" and "model name" in first:  # 32-bit kernels: "ARMv7 Processor rev 4 (v7l)"
        core = first["model name"]
    # The same shape lscpu gives ("ARM Neoverse-N1 r3p1"), so either source names a host alike.
    variant, revision = _int(first.get("cpu variant")), _int(first.get("cpu revision"))
    family = f"{vendor or 'ARM'} {core}" + (f" r{variant}p{revision}" if variant is not None and revision is not None
                                           else "")
    board = every.get("model")  # Raspberry Pi: "Raspberry Pi 4 Model B Rev 1.4" (a board, not a CPU)
    model = f"{core} ({board})" if board and not board.isdigit() else core
    feats = first.get("features", "").split()
    return CpuInfo(arch=arch, vendor=vendor, model=model, family=family, isa=kernel_isa(feats, arch),
                   logical_cpus=n_logical, cores=n_logical, threads_per_core=1 if n_logical else None)


def parse_lscpu(text: str) -> CpuInfo:
    """A CpuInfo from ``lscpu`` text (the same key names on x86 and ARM)."""
    kv = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            kv.setdefault(key.strip().lower(), value.strip())
    arch = kv.get("architecture", platform.machine() or "unknown")
    vendor = kv.get("vendor id")
    model = kv.get("model name", "unknown")
    logical = _int(kv.get("cpu(s)"))
    tpc = _int(kv.get("thread(s) per core"))
    per = _int(kv.get("core(s) per socket") or kv.get("core(s) per cluster"))
    sockets = _int(kv.get("socket(s)") or kv.get("cluster(s)")) or 1
    cores = per * sockets if per else (logical // tpc if logical and tpc else None)
    if _is_arm(arch):
        # lscpu names ARM cores from its own part table ("Neoverse-N1") and the stepping as r3p1.
        step = kv.get("stepping")
        family = f"{vendor or 'ARM'} {model}" + (f" {step}" if step and step.startswith("r") else "")
    else:
        family = f"family {kv['cpu family']} model {kv.get('model', '?')}" if "cpu family" in kv else None
    flags = kv.get("flags", "").split()
    return CpuInfo(arch=arch, vendor=vendor, model=model, family=family, isa=kernel_isa(flags, arch),
                   logical_cpus=logical, cores=cores, threads_per_core=tpc)


def read_cpu_info() -> CpuInfo:
    """This machine's CpuInfo: /proc/cpuinfo, else lscpu, else what ``platform`` knows."""
    arch = platform.machine() or "unknown"
    info = None
    try:
        with open("/proc/cpuinfo") as f:
            info = parse_proc_cpuinfo(f.read(), arch)
    except OSError:
        pass
    if info is None or info.model == "unknown":
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5,
                                 env={**os.environ, "LC_ALL": "C"}).stdout
            if out.strip():
                info = parse_lscpu(out)
        except (OSError, subprocess.SubprocessError):
            pass
    if info is None:
        info = CpuInfo(arch=arch, model=platform.processor() or "unknown", logical_cpus=os.cpu_count())
    return info
