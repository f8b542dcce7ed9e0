"""FBNet-A, -B and -C as ``fbnet`` archs.

Layer choices written here from Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via
Differentiable Neural Architecture Search", CVPR 2019, arXiv 1812.03443 (its figure of the
searched FBNet-A/B/C), checked against the released definitions (facebookresearch/mobile-vision,
``mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_fbnet.py``), whose FBNet-A ends in a 1504-channel
1x1 conv where the space's skeleton (Table 1) has 1984. Published (Samsung S8): FBNet-A 249M MACs,
73.0 % top-1; FBNet-B 295M, 74.1 %; FBNet-C 375M, 74.9 %.
"""

from __future__ import annotations

PUBLISHED_ARCHS: dict[str, dict] = {
    "fbnet-a": {"layers": [
        "skip",
        "k3_e3", "k3_e1", "skip", "skip",
        "k5_e6", "k3_e3", "k5_e1", "k3_e3",
        "k5_e6", "k5_e3", "k5_e1_g2", "k5_e6",
        "k3_e6", "k5_e1_g2", "k5_e3", "k3_e1_g2",
        "k5_e6", "k5_e6", "k5_e3", "k5_e6",
        "k5_e6",
    ], "head": 1504, "r": 224},
    "fbnet-b": {"layers": [
        "k3_e1",
        "k3_e6", "k5_e1", "k3_e1", "k3_e1",
        "k5_e6", "k5_e3", "k3_e6", "k5_e6",
        "k5_e6", "k5_e6", "skip", "k5_e3",
        "k5_e6", "k3_e1", "k5_e1", "k5_e3",
        "k5_e6", "k5_e1", "k5_e6", "k5_e6",
        "k3_e6",
    ], "head": 1984, "r": 224},
    "fbnet-c": {"layers": [
        "k3_e1",
        "k3_e6", "skip", "k3_e1", "k3_e1",
        "k5_e6", "k5_e3", "k5_e6", "k3_e6",
        "k5_e6", "k5_e3", "k5_e6", "k5_e6",
        "k5_e6", "k5_e6", "k5_e6", "k5_e3",
        "k5_e6", "k5_e6", "k5_e6", "k5_e6",
        "k3_e6",
    ], "head": 1984, "r": 224},
}

PUBLISHED_MACS_M = {"fbnet-a": 249.0, "fbnet-b": 295.0, "fbnet-c": 375.0}  # arXiv 1812.03443, ImageNet results table
