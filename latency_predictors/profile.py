"""DeviceProfile: one device's latency tables per search space, with how the numbers were obtained.

A profile is a YAML file (``device_profiles/<name>.yaml`` shipped, or in the user directory). It is
read and checked here, at the edge; the predictor compiles its tables into arrays and never sees
the model again. See docs/latency.md for the format.

Tables are keyed by block key strings (``search_spaces.blocks.BlockKey``). A measured table needs
nothing more: the key names the op and its shapes. Imported Once-for-All tables are not
consistent across resolutions (the same head key has a different mean in each per-resolution
file), so a table may also hold sections per network input resolution, which take precedence
over the resolution-free ``entries`` for the blocks of a network at that resolution.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import re
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .units import OffsetMs

SCHEMA_VERSION = 1
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
SourceKind = Literal["measured", "modelled", "imported"]


class _Model(BaseModel):
    # A typo in a hand-edited profile is an error naming the field, not a silently ignored key.
    model_config = ConfigDict(extra="forbid")


class SourceFile(_Model):
    """A file the numbers came from, by name and content hash (never by absolute path)."""

    name: str
    sha256: str


class Source(_Model):
    """How a table's numbers were obtained."""

    kind: SourceKind
    provenance: str = ""  # the tool, command or procedure, in a sentence
    citations: list[str] = Field(default_factory=list)
    files: list[SourceFile] = Field(default_factory=list)
    created: str | None = None  # ISO 8601, UTC


class Hardware(_Model):
    device: str | None = None  # product name, e.g. "Google Pixel 1"
    cpu: str | None = None
    gpu: str | None = None
    cores: int | None = None  # cores the runtime used
    isa: str | None = None  # e.g. arm64-v8a, x86_64-avx2


class Runtime(_Model):
    engine: str | None = None  # onnxruntime, tflite, ...
    version: str | None = None
    execution_provider: str | None = None
    threads: int | None = None
    batch: int = 1
    precision: str | None = None  # fp32, fp16, int8


class SpeedProbe(_Model):
    """About a second of fixed conv and GEMM shapes through the runtime: how fast this host runs them.

    Two hosts of the same fingerprint can still differ in speed (another VM generation, a slower
    memory system, a throttled clock); the ratio of two probes says by how much (``probe.py``).
    """

    version: int = 2  # the shape set and protocol (probe.PROBE_VERSION); different versions are not compared
    engine: str = "onnxruntime"
    threads: int | None = None
    ms: dict[str, float] = Field(default_factory=dict)  # shape name -> fastest run of all rounds
    repeat_pct: float | None = None  # even- vs odd-round probe disagreement: how far a re-probe may move it
    rounds: int | None = None
    created: str | None = None


class HostFingerprint(_Model):
    """The machine a measured profile was taken on; ``digest`` changes when any field does.

    The hardware fields that change kernel choice (``cpu_family``, ``isa``) and the cores were added
    later: a profile written before has them empty, and a comparison uses what both sides record.
    """

    machine: str
    processor: str
    cpu_count: int
    system: str
    python: str
    packages: dict[str, str] = Field(default_factory=dict)
    cpu_vendor: str | None = None
    cpu_family: str | None = None  # x86: "family 6 model 167"; ARM: "ARM Neoverse-N1 r3p1"
    isa: list[str] | None = None  # kernel-relevant ISA features (cpuinfo.py), e.g. avx2, avx512f, neon
    cores: int | None = None  # physical cores
    threads_per_core: int | None = None
    execution_providers: list[str] | None = None  # what ONNX Runtime offers here
    probe: SpeedProbe | None = None  # measured with the profile (not part of the digest)
    digest: str = ""

    @model_validator(mode="after")
    def _fill_digest(self):
        if not self.digest:
            self.digest = self.compute_digest()
        return self

    def compute_digest(self) -> str:
        fields = self.model_dump(exclude={"digest", "probe"})
        return hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()[:16]

    def identity(self) -> str:
        """A key for "the same kind of host": the hardware and ONNX Runtime, not Python or the OS."""
        fields = {k: getattr(self, k) for k in HOST_IDENTITY_FIELDS}
        fields["onnxruntime"] = self.packages.get("onnxruntime")
        return hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()[:16]

    def label(self) -> str:
        """A short human name: "Intel(R) Xeon(R) Processor (2 CPUs, avx512f)"."""
        top = None
        if self.isa:
            order = ("amx_int8", "avx512_vnni", "avx512f", "avx2", "avx", "sve2", "sve", "i8mm", "dotprod", "neon")
            top = next((f for f in order if f in self.isa), None)
        return f"{self.processor} ({self.cpu_count} CPUs" + (f", {top}" if top else "") + ")"


# What makes two hosts the same kind for latency (HostFingerprint.identity).
HOST_IDENTITY_FIELDS = ("machine", "processor", "cpu_family", "isa", "cpu_count", "cores", "threads_per_core",
                        "execution_providers")


class Calibration(_Model):
    """Whole-network effects a sum of blocks misses: ``latency = scale * sum + offset_ms``."""

    scale: float = 1.0
    offset_ms: OffsetMs = 0.0
    note: str = ""

    @field_validator("scale")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"scale must be a finite number above zero, got {v}")
        return v

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.offset_ms == 0.0


class ValidationFigures(BaseModel):
    """How a space's predictions compared with whole-network references (written by later tools).

    Extra figures are kept (not refused), so validation tools can record more than these fields.
    """

    model_config = ConfigDict(extra="allow")

    reference: str  # what the predictions were compared to, e.g. "onnxruntime whole-model, 50 archs"
    n_archs: int
    mape_pct: float | None = None
    mae_ms: float | None = None
    max_abs_err_ms: float | None = None
    rmse_ms: float | None = None
    kendall_tau: float | None = None
    created: str | None = None


class FitReport(BaseModel):
    """How a modelled profile was fitted (a cost model's method, its points and its error).

    ``model`` holds the fitted model's state as plain data (e.g. ``OperatorCostModel.to_dict()``),
    so the profile can rebuild it; extra figures are kept.
    """

    model_config = ConfigDict(extra="allow")

    method: str
    n_points: int
    reference: str = ""
    mape_pct: float | None = None
    mae_ms: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    created: str | None = None


class LayerTable(_Model):
    """Latency per (layer position, op option), for spaces priced per layer (Single-Path NAS).

    ``ms[i][j]`` is the latency of option ``options[j]`` at searchable layer ``i``. Choosing to
    skip a layer costs ``skip_ms``. Stem and head are not included (put them in a calibration offset).
    """

    options: list[str]
    ms: list[list[float]]
    skip_ms: float = 0.0

    @model_validator(mode="after")
    def _rectangular(self):
        for i, row in enumerate(self.ms):
            if len(row) != len(self.options):
                raise ValueError(f"layer {i} has {len(row)} values, expected {len(self.options)} "
                                 f"(one per option: {', '.join(self.options)})")
            if not all(math.isfinite(v) and v >= 0 for v in row):
                raise ValueError(f"layer {i}: latencies must be finite and not negative")
        return self


def _check_entries(entries: dict[str, float], where: str) -> dict[str, float]:
    from search_spaces.blocks import BlockKey
    from search_spaces.errors import UserError

    for key, ms in entries.items():
        try:
            BlockKey.parse(key)
        except UserError as e:
            raise ValueError(f"{where}: {e}") from None
        if not (math.isfinite(ms) and ms >= 0):
            raise ValueError(f"{where}: {key}: latency {ms} must be finite and not negative")
    return entries


class SpaceTable(_Model):
    """One space's latencies on the device, in milliseconds."""

    unit: Literal["ms"] = "ms"
    source: Source | None = None  # when it differs from the profile's source
    calibration: Calibration | None = None  # overrides the profile's calibration for this space
    entries: dict[str, float] = Field(default_factory=dict)  # block key -> ms, at any resolution
    by_resolution: dict[int, dict[str, float]] = Field(default_factory=dict)  # input res -> key -> ms
    layers: LayerTable | None = None

    @field_validator("entries")
    @classmethod
    def _keys(cls, v):
        return _check_entries(v, "entries")

    @field_validator("by_resolution")
    @classmethod
    def _res_keys(cls, v):
        for r, section in v.items():
            if r <= 0:
                raise ValueError(f"resolution {r} must be a positive int")
            _check_entries(section, f"resolution {r}")
        return v

    def n_entries(self) -> int:
        n = len(self.entries) + sum(len(s) for s in self.by_resolution.values())
        return n + (len(self.layers.ms) * len(self.layers.options) if self.layers else 0)

    def lookup_ms(self, key, resolution: int | None = None) -> float | None:
        """One block's latency (the resolution's section first), or None when the table lacks it."""
        key = str(key)
        if resolution is not None and key in self.by_resolution.get(resolution, {}):
            return self.by_resolution[resolution][key]
        return self.entries.get(key)


class DeviceProfile(_Model):
    """A device: what it is, how it runs networks, and its latency tables per search space."""

    schema_version: int = SCHEMA_VERSION
    name: str
    aliases: list[str] = Field(default_factory=list)
    description: str = ""
    hardware: Hardware = Field(default_factory=Hardware)
    runtime: Runtime = Field(default_factory=Runtime)
    source: Source
    host: HostFingerprint | None = None  # where a measured profile was measured
    calibration: Calibration = Field(default_factory=Calibration)
    tables: dict[str, SpaceTable] = Field(default_factory=dict)
    validation: dict[str, ValidationFigures] = Field(default_factory=dict)  # per space
    fit: FitReport | None = None

    @field_validator("name")
    @classmethod
    def _device_name(cls, v: str) -> str:
        if not re.match(NAME_PATTERN, v):
            raise ValueError(f"device name {v!r} must be lower case letters, digits, '.', '_' or '-'")
        return v

    @field_validator("aliases")
    @classmethod
    def _alias_names(cls, v: list[str]) -> list[str]:
        for a in v:
            if not re.match(NAME_PATTERN, a):
                raise ValueError(f"alias {a!r} must be lower case letters, digits, '.', '_' or '-'")
        return v

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"schema_version {v} is not supported (this hwnas reads {SCHEMA_VERSION})")
        return v

    def table(self, space: str) -> SpaceTable | None:
        return self.tables.get(space)

    def source_of(self, space: str) -> Source:
        """The source of a space's numbers: the table's own, else the profile's."""
        t = self.tables.get(space)
        return t.source if t is not None and t.source is not None else self.source

    def calibration_of(self, space: str) -> Calibration:
        t = self.tables.get(space)
        return t.calibration if t is not None and t.calibration is not None else self.calibration


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def host_fingerprint(packages: tuple[str, ...] = ("onnxruntime", "numpy", "torch"), cpu=None) -> HostFingerprint:
    """The fingerprint of this machine, for profiles measured here (``cpu``: a ``CpuInfo`` to use instead)."""
    from importlib import metadata

    from .cpuinfo import read_cpu_info

    versions = {}
    for p in packages:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    cpu = cpu or read_cpu_info()
    return HostFingerprint(machine=cpu.arch or platform.machine(), processor=cpu.model,
                           cpu_count=cpu.logical_cpus or os.cpu_count() or 0,
                           system=f"{platform.system()} {platform.release()}", python=platform.python_version(),
                           packages=versions, cpu_vendor=cpu.vendor, cpu_family=cpu.family, isa=list(cpu.isa),
                           cores=cpu.cores, threads_per_core=cpu.threads_per_core,
                           execution_providers=_ort_providers())


def _ort_providers() -> list[str] | None:
    try:
        from .ort_telemetry import import_onnxruntime

        return sorted(import_onnxruntime().get_available_providers())
    except ImportError:
        return None
