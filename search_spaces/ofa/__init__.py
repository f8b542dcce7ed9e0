"""Once-for-All's MobileNetV3 spaces: ``ofa`` (width 1.2) and ``ofa-w1.0``."""

from .model import LayerSpec, NetSpec, OFAMobileNetV3
from .space import OFASpace

__all__ = ["OFASpace", "OFAMobileNetV3", "NetSpec", "LayerSpec"]
