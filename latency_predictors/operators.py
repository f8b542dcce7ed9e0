"""Primitive operators of a block: what a phone's runtime actually executes, with its work.

A lookup-table key (``BlockKey``) names a block; a cost model needs the kernels the runtime runs
for it. ``block_ops(key)`` decomposes a key into ``Op`` records (kind, MACs, bytes of activations
and weights moved) following how TFLite executes a float MobileNet-style graph: batch norm is
folded into the conv, ReLU/ReLU6 are fused into it, while h-swish, sigmoid gates, SE scaling and
residual adds are separate element-wise kernels, and SE's squeeze is a global mean.

Keys follow Once-for-All's format. ``expanded_conv`` reads ``expand`` as the middle channel count;
a key with neither ``se`` nor ``hs`` is ProxylessNAS's (the ``proxyless`` space, ``mobile_trim.yaml``),
whose ``expand`` is the ratio; ``se`` and ``hs`` default to 0; ``groups`` (grouped 1x1 convs, FBNet) defaults to 1. ``Conv``,
``Conv_1`` and ``Conv_2`` without an ``hs`` parameter follow Once-for-All's MobileNetV3 convention
(h-swish); keys from other sources should state ``hs:0``. Ops ``skip``, ``zero`` and ``Identity``
cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from search_spaces.blocks import BlockKey
from search_spaces.errors import UserError
from search_spaces.layers import make_divisible, se_channels
from search_spaces.mobile_blocks import down, hwc, parse

BYTES_PER_VALUE = 4  # fp32 tensors

# Kinds of kernels; the cost model gives each compute kind its own MAC rate.
CONV, DWCONV, PWCONV, FC, ELEMENTWISE, POOL = "conv", "dwconv", "pwconv", "fc", "elementwise", "pool"
COMPUTE_KINDS = (CONV, DWCONV, PWCONV, FC)
FUSED_ACTS = ("relu", "relu6", "none")


@dataclass(frozen=True)
class Op:
    """One runtime kernel: its kind, multiply-accumulates and bytes moved (fp32)."""

    kind: str
    macs: float = 0.0
    act_bytes: float = 0.0  # input and output activations read and written
    weight_bytes: float = 0.0


def elementwise(n_out: int, n_in_values: int) -> Op:
    """An element-wise kernel writing ``n_out`` values after reading ``n_in_values``."""
    return Op(ELEMENTWISE, act_bytes=BYTES_PER_VALUE * (n_out + n_in_values))


def activation(n: int, act: str) -> list[Op]:
    """Nothing for activations the runtime fuses into the conv; one kernel for the others."""
    return [] if act in FUSED_ACTS else [elementwise(n, n)]


def conv(h: int, w: int, cin: int, ho: int, wo: int, cout: int, kernel: int,
         groups: int = 1, act: str = "relu") -> list[Op]:
    """A convolution (bias from folded BN) and its activation."""
    k2 = kernel * kernel
    macs = ho * wo * k2 * (cin // groups) * cout
    weights = k2 * (cin // groups) * cout + cout
    if groups > 1 and groups == cin == cout:
        kind = DWCONV
    elif kernel == 1 and ho * wo == 1:
        kind = FC  # a 1x1 conv on a 1x1 map is a matrix-vector product, bound by its weights
    elif kernel == 1:
        kind = PWCONV
    else:
        kind = CONV
    op = Op(kind, macs, BYTES_PER_VALUE * (h * w * cin + ho * wo * cout), BYTES_PER_VALUE * weights)
    return [op] + activation(ho * wo * cout, act)


def fully_connected(cin: int, cout: int, act: str = "none") -> list[Op]:
    return conv(1, 1, cin, 1, 1, cout, 1, act=act)


def global_pool(h: int, w: int, c: int) -> list[Op]:
    """Global average pooling (TFLite MEAN / AVERAGE_POOL_2D): reads the whole map."""
    return [Op(POOL, act_bytes=BYTES_PER_VALUE * (h * w * c + c))]


def squeeze_excite(h: int, w: int, mid: int, squeeze: int, gate: str) -> list[Op]:
    """SE: global mean, reduce FC (ReLU), expand FC, gate activation, channel-wise scaling."""
    gate_ops = [elementwise(mid, mid)] if gate not in FUSED_ACTS else []
    return (global_pool(h, w, mid) + fully_connected(mid, squeeze, "relu")
            + fully_connected(squeeze, mid) + gate_ops + [elementwise(h * w * mid, h * w * mid + mid)])


def inverted_residual(h: int, w: int, cin: int, cout: int, mid: int, kernel: int, stride: int,
                      act: str, se_squeeze: int = 0, se_gate: str = "hard_sigmoid",
                      residual: bool = False, groups: int = 1) -> list[Op]:
    """MBConv: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 linear projection [+ residual add]."""
    ho, wo = down(h, stride), down(w, stride)
    ops: list[Op] = []
    if mid != cin or groups > 1:  # FBNet's e1_g2 blocks keep their grouped 1x1 expansion
        ops += conv(h, w, cin, h, w, mid, 1, groups, act)
        if groups > 1:  # channel shuffle between grouped 1x1 convs
            ops.append(elementwise(h * w * mid, h * w * mid))
    ops += conv(h, w, mid, ho, wo, mid, kernel, mid, act)
    if se_squeeze:
        ops += squeeze_excite(ho, wo, mid, se_squeeze, se_gate)
    ops += conv(ho, wo, mid, ho, wo, cout, 1, groups, "none")
    if residual:
        ops.append(elementwise(ho * wo * cout, 2 * ho * wo * cout))
    return ops


# ---- BlockKey decomposition -------------------------------------------------------------------

_DECOMPOSERS: dict[str, Callable[[BlockKey], list[Op]]] = {}


def register_op(*names: str):
    """Decorator: ``fn(key) -> list[Op]`` prices keys whose op is one of ``names``."""

    def deco(fn):
        for n in names:
            _DECOMPOSERS[n] = fn
        return fn

    return deco


def known_ops() -> list[str]:
    return sorted(_DECOMPOSERS)


def block_ops(key: BlockKey) -> list[Op]:
    """The runtime kernels of one block; UserError for an op no decomposer knows."""
    fn = _DECOMPOSERS.get(key.op)
    if fn is None:
        raise UserError(f"block {key}: the cost model does not know op {key.op!r}; "
                        f"known: {', '.join(known_ops())}")
    try:
        return fn(key)
    except (ValueError, KeyError, IndexError) as e:
        if isinstance(e, UserError):
            raise
        raise UserError(f"block {key}: cannot decompose it into operators ({e})") from None


def _param(key: BlockKey, name: str, default: int) -> int:
    return dict(key.params).get(name, default)


@register_op("expanded_conv")
def _expanded_conv(key: BlockKey) -> list[Op]:
    b = parse(key)  # the middle width and SE squeeze read once, for the costs and build_block too
    hs = _param(key, "hs", 0)
    act = "h_swish" if hs else "relu"
    return inverted_residual(b.h, b.w, b.cin, b.cout, b.mid, b.kernel, b.stride, act, b.squeeze,
                             "hard_sigmoid" if hs else "sigmoid", b.residual, b.groups)


@register_op("Conv", "Conv_1")
def _plain_conv(key: BlockKey) -> list[Op]:
    b = parse(key)
    act = "h_swish" if _param(key, "hs", 1) else "relu"
    ops = conv(b.h, b.w, b.cin, b.ho, b.wo, b.cout, b.kernel, 1, act)
    if b.residual:
        ops.append(elementwise(b.ho * b.wo * b.cout, 2 * b.ho * b.wo * b.cout))
    return ops


@register_op("regular_conv")
def _regular_conv(key: BlockKey) -> list[Op]:
    """MnasNet's regular conv op: kxk conv (ReLU) [-> SE on its output] [+ identity]."""
    b = parse(key)
    ops = conv(b.h, b.w, b.cin, b.ho, b.wo, b.cout, b.kernel, 1, "relu")
    if b.squeeze:
        ops += squeeze_excite(b.ho, b.wo, b.cout, b.squeeze, "sigmoid")
    if b.residual:
        ops.append(elementwise(b.ho * b.wo * b.cout, 2 * b.ho * b.wo * b.cout))
    return ops


@register_op("AvgPool2D")
def _avg_pool(key: BlockKey) -> list[Op]:
    return global_pool(*hwc(key.input))


@register_op("Conv_2")
def _feature_mix(key: BlockKey) -> list[Op]:
    h, w, cin = hwc(key.input)
    _, _, cout = hwc(key.output)
    act = "h_swish" if _param(key, "hs", 1) else "relu"
    pool = global_pool(h, w, cin) if h * w > 1 else []
    return pool + fully_connected(cin, cout, act)


@register_op("Logits")
def _logits(key: BlockKey) -> list[Op]:
    h, w, cin = hwc(key.input)
    pool = global_pool(h, w, cin) if h * w > 1 else []  # ProxylessNAS' Logits include the pool
    return pool + fully_connected(cin, key.output[-1])


@register_op("skip", "zero", "Identity")
def _nothing(key: BlockKey) -> list[Op]:
    return []


# ---- published networks as block lists ---------------------------------------------------------

def _act_is_hswish(act: str | None) -> bool:
    return bool(act) and act.replace("-", "_").replace(" ", "").lower().startswith(("hswish", "h_swish"))


def scale_config(base: dict, width_mult: float) -> dict:
    """A width-multiplier variant of a block list that gives explicit middle widths (MobileNetV3).

    As in the reference code, output widths are scaled and made divisible by 8, and each middle
    width is the block's expansion ratio (mid / input at width 1.0) times its scaled input, made
    divisible by 8; the post-pool 1x1 conv (1280 / 1024) stays fixed. This reproduces the
    published MACs of MobileNetV3-Large 0.75 (155M) and -Small 0.75 (44M).
    """
    w = lambda c: make_divisible(c * width_mult, 8)  # noqa: E731
    cin_base, cin = base["stem"]["out"], w(base["stem"]["out"])
    blocks = []
    for b in base["blocks"]:
        b = dict(b)
        if "mid" in b:
            b["mid"] = make_divisible(cin * b["mid"] / cin_base, 8)
        cin_base, b["out"] = b["out"], w(b["out"])
        cin = b["out"]
        blocks.append(b)
    head = dict(base["head"])
    if head.get("final_conv"):
        head["final_conv"] = dict(head["final_conv"], out=w(head["final_conv"]["out"]))
    stem = dict(base["stem"], out=w(base["stem"]["out"]))
    return dict(base, width_mult=width_mult, stem=stem, blocks=blocks, head=head,
                source=f"derived here from the width-1.0 block list with multiplier {width_mult}")


def network_blocks(config: dict, resolution: int, name: str = "network") -> list[BlockKey]:
    """The block keys of a published network (``arch_configs.json`` format) at a resolution.

    ``mbconv`` and ``dsconv*`` blocks become ``expanded_conv`` keys (a depthwise-separable conv is
    one with no expansion); ``conv`` a ``Conv``/``Conv_1`` key; ``skip`` nothing. An SE ratio (the
    MnasNet convention, on the block's input channels) becomes an explicit squeeze width.
    """
    if not config.get("blocks") or not config.get("stem"):
        raise UserError(f"{name}: its config has no block list")
    stem = config["stem"]
    size = down(resolution, stem.get("stride", 2))
    cin = stem["out"]
    keys = [BlockKey("Conv", (resolution, resolution, 3), (size, size, cin),
                     (("kernel", stem.get("kernel", 3)), ("hs", int(_act_is_hswish(stem.get("act"))))))]
    mobilenet_v1 = "mobilenetv1" in str(config.get("family", "")).replace(" ", "").lower()
    for i, b in enumerate(config["blocks"]):
        btype = str(b.get("type", ""))
        for r in range(int(b.get("repeat", 1))):
            stride = int(b.get("stride", 1)) if r == 0 else 1
            cout = int(b["out"])
            so = down(size, stride)
            hs = int(_act_is_hswish(b.get("act")))
            if btype == "skip":
                continue
            if btype == "conv":
                k = int(b.get("kernel", 1))
                keys.append(BlockKey("Conv" if k > 1 else "Conv_1", (size, size, cin), (so, so, cout),
                                     (("kernel", k), ("hs", hs))))
            elif btype == "mbconv" or btype.startswith("dsconv"):
                if btype.startswith("dsconv"):
                    mid = cin
                elif "mid" in b:
                    mid = int(b["mid"])
                else:
                    mid = int(round(cin * float(b.get("expand", 1))))
                se = b.get("se", False)
                if se is True:
                    squeeze = se_channels(mid)
                elif se:
                    squeeze = max(1, int(cin * float(se)))
                else:
                    squeeze = 0
                if "residual" in b:
                    skip = bool(b["residual"])
                elif b.get("skip_connection") is False or mobilenet_v1:
                    skip = False
                else:
                    skip = stride == 1 and cin == cout
                params = [("expand", mid), ("kernel", int(b["kernel"])), ("stride", stride),
                          ("idskip", int(skip)), ("se", squeeze), ("hs", hs)]
                if int(b.get("pw_groups", 1)) > 1:
                    params.append(("groups", int(b["pw_groups"])))
                keys.append(BlockKey("expanded_conv", (size, size, cin), (so, so, cout), tuple(params)))
            else:
                raise UserError(f"{name}: block {i} has unknown type {btype!r}")
            cin, size = cout, so
    head = config.get("head") or {}
    final = head.get("final_conv")
    if final:
        keys.append(BlockKey("Conv_1", (size, size, cin), (size, size, final["out"]),
                             (("kernel", 1), ("hs", int(_act_is_hswish(final.get("act")))))))
        cin = final["out"]
    keys.append(BlockKey("AvgPool2D", (size, size, cin), (1, 1, cin)))
    post = head.get("post_pool_conv")
    if post:
        keys.append(BlockKey("Conv_2", (1, 1, cin), (1, 1, post["out"]),
                             (("hs", int(_act_is_hswish(post.get("act")))),)))
        cin = post["out"]
    keys.append(BlockKey("Logits", (1, 1, cin), (int(head.get("n_classes", 1000)),)))
    return keys


def network_macs(keys: list[BlockKey]) -> float:
    """Multiply-accumulates of a block list (convs and FCs), for sanity checks."""
    return sum(op.macs for k in keys for op in block_ops(k))

