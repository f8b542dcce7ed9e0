"""ProxylessNAS ``.config`` layer lists (``ProxylessNASNets``) read as archs and widths of the space."""

from __future__ import annotations

from ..base import Arch
from ..errors import InvalidArchError
from .layout import EXPANDS, KERNELS, N_SLOTS, SKIP, STAGE_CELLS, STAGE_STRIDES, ProxylessWidths, slot_layout


def _int(d: dict, name: str, where: str) -> int:
    v = d.get(name) if isinstance(d, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise InvalidArchError(f"net config: {where}: field {name!r} must be an int, got {v!r}")
    return int(v)


def _blocks(cfg: dict) -> list[dict]:
    if not isinstance(cfg, dict) or "blocks" not in cfg or "first_conv" not in cfg:
        raise InvalidArchError("net config: expected ProxylessNAS's layer list with first_conv and blocks")
    if cfg.get("name", "ProxylessNASNets") != "ProxylessNASNets":
        raise InvalidArchError(f"net config: {cfg.get('name')!r} is not a ProxylessNASNets layer list")
    blocks = cfg["blocks"]
    if not isinstance(blocks, list) or len(blocks) != 1 + N_SLOTS:
        n = len(blocks) if isinstance(blocks, list) else type(blocks).__name__
        raise InvalidArchError(f"net config: the proxyless space's nets have {1 + N_SLOTS} blocks "
                               f"(a fixed first block and {N_SLOTS} layers in stages {STAGE_CELLS}), got {n}")
    return blocks


def _conv(block: dict, where: str) -> dict:
    conv = block.get("mobile_inverted_conv") if isinstance(block, dict) else None
    if not isinstance(conv, dict):
        raise InvalidArchError(f"net config: {where}: no mobile_inverted_conv")
    return conv


def net_config_to_arch(space, cfg: dict, image_size: int | None = None) -> Arch:
    """The layer choices of a released net as an arch of ``space`` (raises InvalidArchError)."""
    if image_size is not None and int(image_size) != space.image_size:
        raise InvalidArchError(f"net config: resolution {image_size} is not the proxyless space's {space.image_size}")
    blocks = _blocks(cfg)
    first = _conv(blocks[0], "block 0")
    if first.get("name") != "MBInvertedConvLayer" or _int(first, "expand_ratio", "block 0") != 1 \
            or _int(first, "kernel_size", "block 0") != 3:
        raise InvalidArchError("net config: block 0 must be the fixed MBConv k3 e1 first block")
    ops = []
    for i, ((stage, is_first), block) in enumerate(zip(slot_layout(), blocks[1:]), start=1):
        where = f"block {i}"
        conv = _conv(block, where)
        if conv.get("name") == "ZeroLayer":
            if is_first:
                raise InvalidArchError(f"net config: {where} is the first layer of stage {stage} and cannot be skipped")
            ops.append(SKIP)
            continue
        if conv.get("name") != "MBInvertedConvLayer":
            raise InvalidArchError(f"net config: {where}: layer type {conv.get('name')!r}; "
                                   "expected MBInvertedConvLayer or ZeroLayer")
        k, e = _int(conv, "kernel_size", where), _int(conv, "expand_ratio", where)
        stride = _int(conv, "stride", where)
        want = STAGE_STRIDES[stage] if is_first else 1
        if k not in KERNELS or e not in EXPANDS:
            raise InvalidArchError(f"net config: {where}: kernel {k} / expand {e}; allowed kernels "
                                   f"{', '.join(map(str, KERNELS))} and expands {', '.join(map(str, EXPANDS))}")
        if stride != want:
            raise InvalidArchError(f"net config: {where}: stride {stride}; stage {stage} expects {want}")
        ops.append(f"k{k}e{e}")
    return space.validate({"ops": ops})


def net_config_widths(cfg: dict) -> ProxylessWidths:
    """Stem, first-block, per-stage and head channel counts of a released net."""
    blocks = _blocks(cfg)
    stem = _int(cfg["first_conv"], "out_channels", "first_conv")
    first = _int(_conv(blocks[0], "block 0"), "out_channels", "block 0")
    stages = []
    for i, ((stage, is_first), block) in enumerate(zip(slot_layout(), blocks[1:]), start=1):
        if is_first:
            stages.append(_int(_conv(block, f"block {i}"), "out_channels", f"block {i}"))
    head = _int(cfg.get("feature_mix_layer") or {}, "out_channels", "feature_mix_layer")
    return ProxylessWidths(stem, first, tuple(stages), head)
