"""NASNet-A as a ``nasnet`` arch, written from the paper's cell figure (Zoph et al., CVPR 2018, Fig. 4).

Inputs: 0 is the older cell input (h_{i-2}), 1 the newer (h_{i-1}), 2 + j block j. The released
implementation concatenates one state more than the unused block outputs in each cell: the older
input in the normal cell (6 x 176 = 1056 final channels, "4@1056") and block 1 (read by block 3
through an identity) in the reduction cell.
NASNet-A Mobile: N = 4 normal cells per stage, 44 filters in the first stage, 224 x 224 input;
564M MACs and 5.3M parameters in the paper (Table 2).
"""

from __future__ import annotations

NASNET_A = {
    "normal": [
        [1, "sep_conv_5x5", 0, "sep_conv_3x3"],
        [0, "sep_conv_5x5", 0, "sep_conv_3x3"],
        [1, "avg_pool_3x3", 0, "identity"],
        [0, "avg_pool_3x3", 0, "avg_pool_3x3"],
        [1, "sep_conv_3x3", 1, "identity"],
    ],
    "reduce": [
        [1, "sep_conv_5x5", 0, "sep_conv_7x7"],
        [1, "max_pool_3x3", 0, "sep_conv_7x7"],
        [1, "avg_pool_3x3", 0, "sep_conv_5x5"],
        [3, "identity", 2, "avg_pool_3x3"],
        [2, "sep_conv_3x3", 1, "max_pool_3x3"],
    ],
    "normal_concat_extra": "h0",
    "reduce_concat_extra": "b1",
}

PUBLISHED_ARCHS: dict[str, dict] = {"nasnet-a-mobile": NASNET_A}

# The paper's figures for NASNet-A Mobile (4 @ 1056) at 224 x 224.
PUBLISHED_MACS_M = {"nasnet-a-mobile": 564.0}
PUBLISHED_PARAMS_M = {"nasnet-a-mobile": 5.3}
