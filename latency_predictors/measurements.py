"""Readers of published latency figures: whole networks with their block lists, and block tables.

Three formats, each read into block keys (``search_spaces.blocks.BlockKey``) and milliseconds:

- whole networks: a CSV ``arch,device,runtime,precision,threads,batch,resolution,latency_ms,top1,
  source`` plus a JSON of block lists keyed by arch (``arch_configs.json`` format);
- per-block tables in YAML, ``KEY: {mean: ms, ...}`` (ProxylessNAS' ``mobile_trim.yaml`` and
  Once-for-All's lookup tables). An ``expanded_conv`` key without ``se``/``hs`` parameters is
  ProxylessNAS' format, whose ``expand`` is a ratio; it is rewritten with the middle width;
- Single-Path NAS' per-layer runtime JSON, ``{layer: {option: ms}}`` with options 0..3 =
  k3e3, k3e6, k5e3, k5e6, priced on that paper's supernet skeleton (``SINGLE_PATH_SKELETON``).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search_spaces.blocks import BlockKey
from search_spaces.errors import UserError
from search_spaces.fileio import read_json_file, read_text_file, read_yaml_file

from .operators import network_blocks, scale_config

WHOLE_COLUMNS = ("arch", "resolution", "latency_ms")

# Single-Path NAS' supernet (Stamoulis et al. 2019, the released search code's block strings
# r1_k3_s11_e1_i32_o16_noskip, r4_k5_s22_e6_i16_o24, r4_k5_s22_e6_i24_o40, r4_k5_s22_e6_i40_o80,
# r4_k5_s11_e6_i80_o96, r4_k5_s22_e6_i96_o192, r1_k3_s11_e6_i192_o320_noskip) at 224x224 after a
# 32-channel stride-2 stem: (repeat, stride, cin, cout, residual allowed) per stage. Layer 0 is
# the fixed depthwise-separable block (its four entries in the table are equal within noise), so
# it is priced as k3 e1 for every option; the last layer has no shortcut.
SINGLE_PATH_SKELETON = ((1, 1, 32, 16, False), (4, 2, 16, 24, True), (4, 2, 24, 40, True),
                        (4, 2, 40, 80, True), (4, 1, 80, 96, True), (4, 2, 96, 192, True),
                        (1, 1, 192, 320, False))
SINGLE_PATH_OPTIONS = {"0": (3, 3), "1": (3, 6), "2": (5, 3), "3": (5, 6)}  # option: (kernel, expand)


@dataclass
class NetworkMeasurement:
    """One published whole-network latency and the block list it was built from."""

    arch: str
    family: str
    resolution: int
    latency_ms: float
    blocks: list[BlockKey]
    source: str = ""


@dataclass
class BlockTable:
    """Latencies of single blocks (or layers) measured on one device, with the keys they price."""

    name: str
    path: str
    keys: list[BlockKey]
    latency_ms: np.ndarray
    labels: list[str] = field(default_factory=list)  # each entry's key as the file wrote it

    def __len__(self) -> int:
        return len(self.keys)


def family_of(arch: str) -> str:
    """The family an arch name belongs to: the name less its width suffix (``mobilenet_v2``)."""
    return re.sub(r"_\d+(\.\d+)?$", "", arch)


_TABLE_CITED = re.compile(r"^(.*?\btable\b(?:\s+\d+)?)", re.IGNORECASE)


def source_key(measurement: "NetworkMeasurement | str") -> str:
    """The document and table a whole-network figure comes from: one measurement campaign.

    The ``source`` text up to and including its first mention of a table (``... Table 4``,
    ``... 'Mobilenet V3 Imagenet Checkpoints' table``), so rows of one table that differ only in
    their row-level notes share a key; the whole text (stripped) when it names no table.
    """
    text = measurement if isinstance(measurement, str) else measurement.source
    text = " ".join(str(text or "").split())
    m = _TABLE_CITED.match(text)
    return m.group(1) if m else text


def _config_for(arch: str, configs: dict) -> dict:
    cfg = configs.get(arch)
    if cfg is None:
        raise UserError(f"arch {arch!r} has no block list in the arch-configs file")
    if cfg.get("blocks"):
        return cfg
    # Width variants published without a block list: derive them from the width-1.0 entry.
    base = configs.get(f"{family_of(arch)}_1.0")
    mult = cfg.get("width_mult")
    if not base or not base.get("blocks") or mult is None:
        raise UserError(f"arch {arch!r} has no block list and no width-1.0 entry to derive it from")
    return scale_config(base, float(mult))


def read_arch_configs(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"arch-configs file {str(p)!r} does not exist")
    data = read_json_file(p, "arch-configs file")
    if not isinstance(data, dict):
        raise UserError(f"arch-configs file {str(p)!r} must map arch names to block lists")
    configs = {k: v for k, v in data.items() if not k.startswith("_")}
    bad = [k for k, v in configs.items() if not isinstance(v, dict)]
    if bad:
        raise UserError(f"arch-configs file {str(p)!r}: entry {bad[0]!r} must be an object with a block list "
                        "(or width_mult), e.g. {\"blocks\": [...]}")
    return configs


def family_names(configs: dict) -> dict[str, str]:
    """Readable family names (``MobileNetV2``) from the configs, keyed by ``family_of(arch)``."""
    names = {}
    for arch, cfg in configs.items():
        fam = family_of(arch)
        if cfg.get("blocks") and cfg.get("family") and fam not in names:
            names[fam] = str(cfg["family"])
    return names


def load_whole_networks(csv_path: str | Path, arch_configs_path: str | Path) -> list[NetworkMeasurement]:
    """Every row of a published-latency CSV, built into its block list at its resolution."""
    p = Path(csv_path)
    if not p.is_file():
        raise UserError(f"whole-network CSV {str(p)!r} does not exist")
    configs = read_arch_configs(arch_configs_path)
    names = family_names(configs)
    text = read_text_file(p, "whole-network CSV")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in WHOLE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"whole-network CSV {str(p)!r} lacks column(s) {', '.join(missing)}")
        rows = list(reader)
    except csv.Error as e:
        raise UserError(f"whole-network CSV {str(p)!r} is not a readable CSV ({e})") from None
    out = []
    for i, row in enumerate(rows, start=2):
        arch = (row["arch"] or "").strip()
        try:
            res, ms = int(row["resolution"]), float(row["latency_ms"])
        except (TypeError, ValueError):
            raise UserError(f"{p.name} line {i}: resolution and latency_ms must be numbers") from None
        if ms <= 0:
            raise UserError(f"{p.name} line {i}: latency_ms must be positive")
        cfg = _config_for(arch, configs)
        fam = family_of(arch)
        out.append(NetworkMeasurement(arch, names.get(fam, fam), res, ms,
                                      network_blocks(cfg, res, arch), row.get("source", "")))
    if not out:
        raise UserError(f"whole-network CSV {str(p)!r} has no rows")
    return out


def _proxyless_key(key: BlockKey) -> BlockKey:
    """ProxylessNAS' keys: ``expand`` is a ratio and every activation is ReLU6 (fused)."""
    names = {k for k, _ in key.params}
    if key.op == "expanded_conv" and not names & {"se", "hs"}:
        mid = int(round(key.input[2] * key.param("expand")))
        params = tuple((k, mid if k == "expand" else v) for k, v in key.params)
        return BlockKey(key.op, key.input, key.output, params + (("se", 0), ("hs", 0)))
    if key.op in ("Conv", "Conv_1", "Conv_2") and "hs" not in names:
        return BlockKey(key.op, key.input, key.output, key.params + (("hs", 0),))
    return key


def load_yaml_table(path: str | Path, name: str | None = None) -> BlockTable:
    p = Path(path)
    data = read_yaml_file(p, "block table")
    if not isinstance(data, dict) or not data:
        raise UserError(f"block table {str(p)!r} must map block keys to {{mean: ms}}")
    proxyless = not any("-se:" in str(k) for k in data)
    keys, ms, labels = [], [], []
    for label, entry in data.items():
        value = entry.get("mean") if isinstance(entry, dict) else entry
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise UserError(f"block table {str(p)!r}: entry {label!r} has no numeric mean") from None
        key = BlockKey.parse(str(label))
        if proxyless:
            key = _proxyless_key(key)
        keys.append(key)
        ms.append(value)
        labels.append(str(label))
    return BlockTable(name or p.stem, str(p), keys, np.asarray(ms, dtype=np.float64), labels)


def single_path_layer_keys(resolution: int = 224) -> list[list[BlockKey]]:
    """For each of Single-Path NAS' 22 layers, its keys for options 0..3 (k3e3, k3e6, k5e3, k5e6)."""
    size = (resolution - 1) // 2 + 1
    layers = []
    for repeat, stride, cin, cout, residual in SINGLE_PATH_SKELETON:
        for r in range(repeat):
            s = stride if r == 0 else 1
            c_in = cin if r == 0 else cout
            so = (size - 1) // s + 1
            skip = int(residual and s == 1 and c_in == cout)
            options = []
            for opt in sorted(SINGLE_PATH_OPTIONS):
                k, e = SINGLE_PATH_OPTIONS[opt]
                if c_in == 32:  # the fixed first block: k3, no expansion
                    k, e = 3, 1
                options.append(BlockKey("expanded_conv", (size, size, c_in), (so, so, cout),
                                        (("expand", c_in * e), ("kernel", k), ("stride", s),
                                         ("idskip", skip), ("se", 0), ("hs", 0))))
            layers.append(options)
            size = so
    return layers


def load_single_path_table(path: str | Path, name: str | None = None) -> BlockTable:
    p = Path(path)
    data = read_json_file(p, "runtime model")
    layers = single_path_layer_keys()
    if not isinstance(data, dict) or len(data) != len(layers):
        raise UserError(f"runtime model {str(p)!r} must hold {len(layers)} layers of 4 options")
    keys, ms, labels = [], [], []
    try:
        for layer in sorted(data, key=int):
            for opt in sorted(data[layer]):
                if opt not in SINGLE_PATH_OPTIONS:
                    raise UserError(f"runtime model {str(p)!r}: layer {layer} option {opt!r} is not 0..3")
                keys.append(layers[int(layer)][int(opt)])
                ms.append(float(data[layer][opt]))
                labels.append(f"layer{layer}-option{opt}")
    except UserError:
        raise
    except (ValueError, TypeError, IndexError, AttributeError):
        raise UserError(f"runtime model {str(p)!r} must map layer numbers 0..{len(layers) - 1} to "
                        f"{{option 0..3: ms}}") from None
    return BlockTable(name or p.stem, str(p), keys, np.asarray(ms, dtype=np.float64), labels)


def load_block_table(path: str | Path, name: str | None = None) -> BlockTable:
    """A per-block table in any supported format, recognised by its content."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"block table {str(p)!r} does not exist")
    if p.suffix == ".json":
        return load_single_path_table(p, name)
    return load_yaml_table(p, name)
