"""Bounded numbers for pydantic settings: one annotated type per bound, one message for every config.

``budget: PositiveInt`` reads as the rule and fails as ``budget: must be >= 1, got 0``, the same
line in a run folder's config.json, a sweep file and a training config.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def at_least(lo: float) -> AfterValidator:
    def check(v):
        if not v >= lo:
            raise ValueError(f"must be >= {lo:g}, got {v}")
        return v

    return AfterValidator(check)


def above(lo: float) -> AfterValidator:
    def check(v):
        if not v > lo:
            raise ValueError(f"must be > {lo:g}, got {v}")
        return v

    return AfterValidator(check)


PositiveInt = Annotated[int, at_least(1)]
NonNegativeInt = Annotated[int, at_least(0)]
PositiveFloat = Annotated[float, above(0)]
