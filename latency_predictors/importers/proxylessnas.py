"""ProxylessNAS's mobile lookup table (``mobile_trim.yaml``) and its net configs (layer lists).

The table prices the blocks of ProxylessNAS's MobileNetV2-style mobile search space on a Pixel 1:
a 3x3 stem to 32 channels, a fixed first block to 16, then six stages of up to (4, 4, 4, 4, 4, 1)
inverted-residual layers of widths (24, 40, 80, 96, 192, 320) with strides (2, 2, 2, 1, 2, 1),
each layer picking kernel {3, 5, 7} and expand ratio {3, 6} or being skipped (a zero layer), and a
head (1x1 conv to 1280, classifier). Unlike Once-for-All's tables, ``expand`` is the ratio.

There is no ``proxyless`` search space yet: the table is stored under that name as
resolution-free entries, and ``config_block_keys`` turns a ProxylessNAS ``.config`` layer list into
block keys so a net can be priced through it. Searched nets were widened after the search
(proxyless_mobile's second stage is 32 wide, mobile_14 is x1.4, the gpu and cpu nets have their
own widths), so by default a net is priced as its layer choices in the searched space, which is
how ProxylessNAS's latency loss saw it during the search.
"""

from __future__ import annotations

from pathlib import Path

from search_spaces.blocks import BlockKey
from search_spaces.errors import UserError

from ..profile import Runtime, SpaceTable
from .common import ImportedTables, read_mean_table, source_file

SPACE = "proxyless"
CITATION = ("Cai, Zhu, Han. ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware. "
            "ICLR 2019. Table from mit-han-lab/proxylessnas (han-cai/files).")

# The searched mobile space the table was measured for (its shapes, read off the table's keys).
IMAGE_SIZE = 224
STEM_CHANNELS = 32
FIRST_BLOCK_CHANNELS = 16
STAGE_WIDTHS = (24, 40, 80, 96, 192, 320)
STAGE_CELLS = (4, 4, 4, 4, 4, 1)
STAGE_STRIDES = (2, 2, 2, 1, 2, 1)
FEATURE_MIX = 1280
N_CLASSES = 1000


def read_mobile_trim(paths: list[Path]) -> ImportedTables:
    if len(paths) != 1:
        raise UserError(f"--format proxylessnas takes one lookup-table YAML (mobile_trim.yaml), got {len(paths)}")
    path = paths[0]
    # ProxylessNAS's plain convs are ReLU6; the key grammar reads a Conv without ``hs`` as h-swish
    # (Once-for-All's convention), so their keys state hs:0, as the proxyless space's keys do.
    entries = {str(relu6_key(BlockKey.parse(k))): v
               for k, v in read_mean_table(path, "ProxylessNAS lookup table").items()}
    return ImportedTables(
        tables={SPACE: SpaceTable(entries=entries)}, citations=[CITATION],
        provenance=("ProxylessNAS mobile lookup table (mean of each block's runs, TFLite, 224x224 input), "
                    "imported by `nas import-table --format proxylessnas`"),
        files=[source_file(path)], runtime=Runtime(engine="tflite", batch=1),
        device="Google Pixel 1" if "mobile" in path.name else None)


def relu6_key(key: BlockKey) -> BlockKey:
    """A ProxylessNAS ``Conv``/``Conv_1``/``Conv_2`` key with ``hs:0`` stated (its convs are ReLU6)."""
    if key.op in ("Conv", "Conv_1", "Conv_2") and "hs" not in {k for k, _ in key.params}:
        return BlockKey(key.op, key.input, key.output, key.params + (("hs", 0),))
    return key


def _mbconv_key(size: int, cin: int, cout: int, expand: int, kernel: int, stride: int, idskip: int) -> BlockKey:
    out = (size - 1) // stride + 1
    return BlockKey("expanded_conv", (size, size, cin), (out, out, cout),
                    (("expand", expand), ("kernel", kernel), ("stride", stride), ("idskip", idskip)))


def _field(block: dict, name: str, where: str):
    v = block.get(name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise UserError(f"{where}: field {name!r} must be an int, got {v!r}")
    return v


def config_block_keys(config: dict, widths: str = "space") -> list[BlockKey]:
    """The block keys of a ProxylessNAS net config, in network order (zero layers left out).

    ``widths="space"`` keeps the net's layer choices (kernel, expand ratio, skip) and uses the
    searched space's widths, the shapes the table holds; ``widths="config"`` uses the config's
    own channel counts, which only the nets that kept the searched widths find in the table.
    """
    if widths not in ("space", "config"):
        raise UserError(f"widths must be 'space' or 'config', got {widths!r}")
    try:
        blocks = config["blocks"]
        stem_out = config["first_conv"]["out_channels"]
        mix_in = config["feature_mix_layer"]["in_channels"]
        mix_out = config["feature_mix_layer"]["out_channels"]
        n_classes = config["classifier"]["out_features"]
    except (KeyError, TypeError) as e:
        raise UserError(f"not a ProxylessNAS net config (missing {e})") from None
    if widths == "space":
        if len(blocks) != 1 + sum(STAGE_CELLS):
            raise UserError(f"a ProxylessNAS mobile-space net has {1 + sum(STAGE_CELLS)} blocks, this one {len(blocks)}")
        stem_out, mix_in, mix_out, n_classes = STEM_CHANNELS, STAGE_WIDTHS[-1], FEATURE_MIX, N_CLASSES
    size = (IMAGE_SIZE - 1) // 2 + 1
    keys = [BlockKey("Conv", (IMAGE_SIZE, IMAGE_SIZE, 3), (size, size, stem_out), (("hs", 0),))]
    # Slot layout of the searched space: (stage, first-of-stage) for every block after the first.
    layout = [(s, j == 0) for s, n in enumerate(STAGE_CELLS) for j in range(n)]
    for i, block in enumerate(blocks):
        where = f"block {i}"
        conv = (block or {}).get("mobile_inverted_conv") or {}
        if conv.get("name") == "ZeroLayer":
            continue  # a skipped layer: the shortcut alone, 0 ms
        shortcut = block.get("shortcut")
        idskip = int(shortcut is not None and shortcut.get("name") != "ZeroLayer")
        kernel, stride = _field(conv, "kernel_size", where), _field(conv, "stride", where)
        expand = _field(conv, "expand_ratio", where)
        if widths == "config":
            c_in, c_out = _field(conv, "in_channels", where), _field(conv, "out_channels", where)
        elif i == 0:
            c_in, c_out = STEM_CHANNELS, FIRST_BLOCK_CHANNELS
        else:
            s, first = layout[i - 1]
            c_out = STAGE_WIDTHS[s]
            c_in = (STAGE_WIDTHS[s - 1] if s else FIRST_BLOCK_CHANNELS) if first else c_out
            want = STAGE_STRIDES[s] if first else 1
            if stride != want:
                raise UserError(f"{where}: stride {stride} does not fit the ProxylessNAS mobile space "
                                f"(stage {s} expects {want})")
        key = _mbconv_key(size, c_in, c_out, expand, kernel, stride, idskip)
        keys.append(key)
        size = key.output[0]
    keys.append(BlockKey("Conv_1", (size, size, mix_in), (size, size, mix_out), (("hs", 0),)))
    keys.append(BlockKey("Logits", (size, size, mix_out), (n_classes,)))
    return keys


def price_block_keys(table: SpaceTable, keys: list[BlockKey]) -> float:
    """Sum of the table over ``keys``; a UserError lists the keys it lacks."""
    missing = [str(k) for k in keys if table.lookup_ms(k) is None]
    if missing:
        more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"the table has no latency for block {missing[0]}{more}")
    return float(sum(table.lookup_ms(k) for k in keys))
