"""One reading of each block op: analytic MACs = MACs counted on the built module = the sum of its priced kernels.

For every registered chain space, every op its blocks use: the space's analytic costs
(``block_costs``), the latency cost model's kernels (``latency_predictors.operators.block_ops``)
and, on a few keys per op, forward hooks on the module ``build_block`` makes must agree. This is
what caught ``se:1`` read as a squeeze width of 1 by the analytic costs and as Once-for-All's SE
flag by the cost model (``mobile_blocks.squeeze_channels`` is now the one reading).
"""

from __future__ import annotations

import numpy as np
import pytest

from latency_predictors.operators import block_ops
from search_spaces import get_space
from search_spaces.counting import count_macs_params
from search_spaces.mobile_blocks import squeeze_channels

SPACES = ["ofa", "fbnet", "mbconv", "proxyless", "single_path"]
COUNTED_PER_OP = 3  # built and counted keys per op (building all ~11k ofa blocks would take minutes)


@pytest.mark.parametrize("name", SPACES)
def test_analytic_counted_and_priced_macs_agree_per_op(name):
    sp = get_space(name)
    keys = sp.block_keys()
    macs, _ = sp.block_costs()
    priced = np.array([sum(op.macs for op in block_ops(k)) for k in keys])
    by_op: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_op.setdefault(k.op, []).append(i)
    for op, idx in by_op.items():
        diff = [str(keys[i]) for i in idx if not np.isclose(macs[i], priced[i])]
        assert not diff, f"{name} {op}: analytic != priced MACs for {len(diff)} keys, e.g. {diff[0]}"
        # keys with SE first: they are where readers disagreed
        sample = sorted(idx, key=lambda i: -squeeze_channels(keys[i], 1) if keys[i].op != "Logits" else 0)
        for i in sample[:COUNTED_PER_OP]:
            module, shape = sp.build_block(keys[i])
            counted, _ = count_macs_params(module.eval(), shape)
            assert counted == macs[i], f"{name} {keys[i]}: counted {counted} != analytic {macs[i]}"


def test_se_is_read_once():
    from search_spaces.blocks import BlockKey

    flag = BlockKey.parse("expanded_conv-input:8x8x32-output:4x4x48-expand:96-kernel:3-stride:2-idskip:0-se:1-hs:0")
    width = BlockKey.parse("expanded_conv-input:8x8x32-output:4x4x48-expand:96-kernel:3-stride:2-idskip:0-se:8-hs:0")
    assert squeeze_channels(flag, 96) == 24 and squeeze_channels(width, 96) == 8
    assert squeeze_channels(BlockKey.parse("expanded_conv-input:8x8x32-output:4x4x48-expand:6-kernel:3-stride:2"),
                            192) == 0
