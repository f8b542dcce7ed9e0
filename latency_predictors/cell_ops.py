"""The NASNet space's per-op blocks as runtime kernels, so an operator cost model prices cells.

A modelled profile (the shipped ``pixel1``) has no table for ``nasnet``; it prices every block key
of the space through ``operators.block_ops``, so a cell costs the sum of its ops, projections, adds
and concat (the additive model, labelled modelled). The decomposition follows how a mobile runtime
runs these graphs: BN folds into the conv before it; a ReLU *before* a conv (NASNet's order) is
its own element-wise kernel, since the state it reads also feeds other ops without it; pools read
their window once per output; adds and concats move their bytes.
"""

from __future__ import annotations

from search_spaces.blocks import BlockKey

from .operators import BYTES_PER_VALUE, CONV, PWCONV, POOL, Op, conv, elementwise, fully_connected, global_pool, register_op


def _relu(n: int) -> list[Op]:
    return [elementwise(n, n)]


def _shapes(key: BlockKey) -> tuple[int, int, int, int]:
    (h, _, cin), out = key.input, key.output
    return h, cin, out[0], out[-1]


@register_op("nasnet_stem")
def _stem(key: BlockKey) -> list[Op]:
    h, cin, ho, cout = _shapes(key)
    return conv(h, h, cin, ho, ho, cout, 3, act="none")


@register_op("nasnet_pre", "nasnet_identity", "nasnet_conv_1x1")
def _relu_conv1x1(key: BlockKey) -> list[Op]:
    h, cin, ho, cout = _shapes(key)
    return _relu(h * h * cin) + conv(h, h, cin, ho, ho, cout, 1, act="none")


@register_op("nasnet_conv_3x3", "nasnet_dil_conv_3x3")
def _relu_conv3x3(key: BlockKey) -> list[Op]:
    h, cin, ho, cout = _shapes(key)
    return _relu(h * h * cin) + conv(h, h, cin, ho, ho, cout, 3, act="none")


@register_op("nasnet_conv_1x3_3x1", "nasnet_conv_1x7_7x1")
def _factorized(key: BlockKey) -> list[Op]:
    h, cin, ho, cout = _shapes(key)
    k = 3 if key.op.endswith("1x3_3x1") else 7
    first = Op(CONV, h * ho * k * cin * cout, BYTES_PER_VALUE * (h * h * cin + h * ho * cout), BYTES_PER_VALUE * k * cin * cout)
    second = Op(CONV, ho * ho * k * cout * cout, BYTES_PER_VALUE * (h * ho * cout + ho * ho * cout),
                BYTES_PER_VALUE * k * cout * cout)
    return _relu(h * h * cin) + [first, second]


@register_op("nasnet_avg_pool_3x3", "nasnet_max_pool_3x3", "nasnet_max_pool_5x5", "nasnet_max_pool_7x7")
def _pool(key: BlockKey) -> list[Op]:
    h, cin, ho, cout = _shapes(key)
    k = int(key.op[-1])
    ops = [Op(POOL, act_bytes=BYTES_PER_VALUE * (ho * ho * cin * k * k + ho * ho * cin))]
    if cin != cout:
        ops += conv(ho, ho, cin, ho, ho, cout, 1, act="none")
    return ops


@register_op("nasnet_sep_conv_3x3", "nasnet_sep_conv_5x5", "nasnet_sep_conv_7x7")
def _sep(key: BlockKey) -> list[Op]:
    h, cin, ho, cout = _shapes(key)
    k = int(key.op[-1])
    return (_relu(h * h * cin) + conv(h, h, cin, ho, ho, cin, k, cin, "none") + conv(ho, ho, cin, ho, ho, cout, 1, act="none")
            + _relu(ho * ho * cout) + conv(ho, ho, cout, ho, ho, cout, k, cout, "none")
            + conv(ho, ho, cout, ho, ho, cout, 1, act="none"))


@register_op("nasnet_reduce")
def _factorized_reduce(key: BlockKey) -> list[Op]:
    h, cin, ho, cout = _shapes(key)
    half = cout // 2
    return (_relu(h * h * cin) + [elementwise(ho * ho * cin, h * h * cin)]  # the shifted, strided view
            + [Op(PWCONV, ho * ho * cin * c, BYTES_PER_VALUE * (ho * ho * cin + ho * ho * c), BYTES_PER_VALUE * cin * c)
               for c in (half, cout - half)]
            + [elementwise(ho * ho * cout, ho * ho * cout)])


@register_op("nasnet_add")
def _add(key: BlockKey) -> list[Op]:
    h, c, _, _ = _shapes(key)
    return [elementwise(h * h * c, 2 * h * h * c)]


@register_op("nasnet_concat")
def _concat(key: BlockKey) -> list[Op]:
    ho, _, cout = key.output
    return [elementwise(ho * ho * cout, ho * ho * cout)]


@register_op("nasnet_head")
def _head(key: BlockKey) -> list[Op]:
    h, cin, n = key.input[0], key.input[-1], key.output[-1]
    return _relu(h * h * cin) + global_pool(h, h, cin) + fully_connected(cin, n)
