"""The published MnasNet nets (and MobileNetV2, the space's skeleton) as ``mbconv`` archs.

Written here from the papers' architecture figures and block lists:
- MnasNet-A1: Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for Mobile",
  CVPR 2019, arXiv 1807.11626, Figure 7(a); released as ``mnasnet_a1`` in tensorflow/tpu
  models/official/mnasnet/mnasnet_models.py. 312M MACs, 3.9M params, 75.2 % top-1, 78 ms on Pixel 1.
  Block 5 has 112 filters (MobileNetV2 has 96; 1.25x would be 120): off the search grid.
- MnasNet-B1: the searched net of the paper's first version (arXiv 1807.11626v1), released as
  ``mnasnet_b1`` in the same file: no SE; block 6 has 192 filters (MobileNetV2: 160), off the grid.
- MobileNetV2 1.0: Sandler et al., CVPR 2018, arXiv 1801.04381, Table 2 (300M MACs): on the grid.
"""

from __future__ import annotations


def _block(op: str, kernel: int, filters: int, layers: int, se: float = 0.0, skip: str = "identity") -> dict:
    return {"op": op, "kernel": kernel, "se": se, "skip": skip, "layers": layers, "filters": filters}


PUBLISHED_ARCHS: dict[str, dict] = {
    "mnasnet-a1": {"blocks": [
        _block("sepconv", 3, 16, 1, skip="none"),
        _block("mbconv6", 3, 24, 2),
        _block("mbconv3", 5, 40, 3, se=0.25),
        _block("mbconv6", 3, 80, 4),
        _block("mbconv6", 3, 112, 2, se=0.25),
        _block("mbconv6", 5, 160, 3, se=0.25),
        _block("mbconv6", 3, 320, 1),
    ], "r": 224},
    "mnasnet-b1": {"blocks": [
        _block("sepconv", 3, 16, 1, skip="none"),
        _block("mbconv3", 3, 24, 3),
        _block("mbconv3", 5, 40, 3),
        _block("mbconv6", 5, 80, 3),
        _block("mbconv6", 3, 96, 2),
        _block("mbconv6", 5, 192, 4),
        _block("mbconv6", 3, 320, 1, skip="none"),
    ], "r": 224},
    "mobilenetv2": {"blocks": [
        _block("sepconv", 3, 16, 1),
        _block("mbconv6", 3, 24, 2),
        _block("mbconv6", 3, 32, 3),
        _block("mbconv6", 3, 64, 4),
        _block("mbconv6", 3, 96, 3),
        _block("mbconv6", 3, 160, 3),
        _block("mbconv6", 3, 320, 1),
    ], "r": 224},
}

# The papers' own figures, for checks (MACs at 224x224).
PUBLISHED_MACS_M = {"mnasnet-a1": 312.0, "mobilenetv2": 300.0}
PUBLISHED_PIXEL1_MS = {"mnasnet-a1": 78.0}  # arXiv 1807.11626, Table 1
