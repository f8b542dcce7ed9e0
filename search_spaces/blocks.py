"""BlockKey: one operator of a network with its shapes, as a stable human-readable key.

The string form follows Once-for-All's lookup-table keys, e.g.
``expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:3-stride:2-idskip:0-se:0-hs:0``,
so tables move between the two tools unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .errors import UserError


@dataclass(frozen=True)
class BlockKey:
    """An operator type, its input and output shapes (H, W, C or just C) and its parameters."""

    op: str
    input: tuple[int, ...]
    output: tuple[int, ...]
    params: tuple[tuple[str, int], ...] = field(default=())

    def __str__(self) -> str:
        return self._text

    @cached_property
    def _text(self) -> str:
        # kept: every search compiles its device table by these strings (thousands of keys)
        parts = [self.op, "input:" + "x".join(map(str, self.input)),
                 "output:" + "x".join(map(str, self.output))]
        parts += [f"{k}:{v}" for k, v in self.params]
        return "-".join(parts)

    def param(self, name: str) -> int:
        for k, v in self.params:
            if k == name:
                return v
        raise KeyError(f"block {self} has no parameter {name!r}")

    @classmethod
    def parse(cls, text: str) -> "BlockKey":
        """Read a key written by ``str(key)`` (or by Once-for-All / ProxylessNAS tables)."""
        op, _, rest = text.strip().partition("-input:")
        if not op or not rest:
            raise UserError(f"block key {text!r} is malformed: expected OP-input:HxWxC-output:HxWxC[-name:int...]")
        fields = rest.split("-")
        try:
            shape_in = tuple(int(v) for v in fields[0].split("x"))
            if not fields[1].startswith("output:"):
                raise ValueError
            shape_out = tuple(int(v) for v in fields[1][len("output:"):].split("x"))
            params = []
            for f in fields[2:]:
                name, _, value = f.partition(":")
                params.append((name, int(value)))
        except (ValueError, IndexError):
            raise UserError(
                f"block key {text!r} is malformed: expected OP-input:HxWxC-output:HxWxC[-name:int...]"
            ) from None
        return cls(op, shape_in, shape_out, tuple(params))
