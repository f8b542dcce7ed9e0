"""ProxylessNAS's MobileNetV2-backbone space and its released nets."""

from .space import ProxylessSpace, ProxylessWidths  # noqa: F401  (registers "proxyless")

__all__ = ["ProxylessSpace", "ProxylessWidths"]
