"""Latency strings as users write them (``80ms``, ``80 ms``, ``0.08s``, ``80``), read into milliseconds.

Every place that takes a latency from a person (CLI flags, configs, profile YAML) goes through
``parse_latency_ms`` so the accepted forms are the same everywhere.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

from search_spaces.errors import UserError

ACCEPTED_FORMS = "80ms, 80 ms, 0.08s, 0.08 s or a bare number of milliseconds (80)"

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_LATENCY = re.compile(rf"^\s*({_NUMBER})\s*(ms|s)?\s*$")
_TO_MS = {None: 1.0, "ms": 1.0, "s": 1000.0}


def parse_latency_ms(value, *, allow_zero: bool = False, allow_negative: bool = False) -> float:
    """Milliseconds of a latency string or number; a UserError listing the accepted forms otherwise.

    A latency is positive; ``allow_zero`` / ``allow_negative`` widen that for offsets and deltas.
    """
    if isinstance(value, bool):  # bool is an int subclass; True is no latency
        raise UserError(f"latency {value!r} is not understood; accepted: {ACCEPTED_FORMS}")
    if isinstance(value, (int, float)):
        ms = float(value)
        text = repr(value)
    elif isinstance(value, str):
        m = _LATENCY.match(value)
        if not m:
            raise UserError(f"latency {value!r} is not understood; accepted: {ACCEPTED_FORMS}")
        ms = float(m.group(1)) * _TO_MS[m.group(2)]
        text = repr(value)
    else:
        raise UserError(f"latency {value!r} is not understood; accepted: {ACCEPTED_FORMS}")
    if not math.isfinite(ms):
        raise UserError(f"latency {text} must be a finite time; accepted: {ACCEPTED_FORMS}")
    if not allow_negative and (ms < 0 or (ms == 0 and not allow_zero)):
        bound = "zero or more" if allow_zero else "more than zero"
        raise UserError(f"latency {text} must be a finite time {bound}; accepted: {ACCEPTED_FORMS}")
    return ms


def format_ms(ms: float) -> str:
    """A latency for people: ``23.79 ms``."""
    return f"{ms:.2f} ms"


def _offset_ms(value) -> float:
    # Offsets may be zero or negative (a fitted line); pydantic wraps the UserError's message into its own field error.
    try:
        return parse_latency_ms(value, allow_zero=True, allow_negative=True)
    except UserError as e:
        raise ValueError(str(e)) from None


# A pydantic field type: YAML may hold `1.5`, `1.5ms` or `0.0015s`; the model stores milliseconds.
OffsetMs = Annotated[float, BeforeValidator(_offset_ms)]
