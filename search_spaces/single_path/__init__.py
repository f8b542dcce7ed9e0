"""Single-Path NAS's space and its superkernel supernet."""

from .space import SinglePathSpace  # noqa: F401  (registers "single_path")

__all__ = ["SinglePathSpace"]
