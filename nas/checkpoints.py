"""Supernet checkpoint files: written atomically, read with ``weights_only=True``, one-line errors."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from search_spaces import get_space
from search_spaces.errors import UserError
from search_spaces.ofa.space import OFASpace
from search_spaces.ofa.supernet import OFASupernet

from .io import atomic_write_bytes


def save_supernet(supernet: OFASupernet, path: str | os.PathLike) -> Path:
    """Write the supernet (weights, space name and version, config) to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save(supernet.checkpoint(), buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_supernet(path: str | os.PathLike, space: str | None = None,
                  map_location: str | torch.device | None = "cpu") -> OFASupernet:
    """The supernet saved at ``path``; ``space`` (a name) must match the checkpoint's when given.

    A missing, corrupted or foreign file, or one of another space, is a one-line ``UserError``.
    """
    p = Path(path)
    source = f"supernet checkpoint {str(p)!r}"
    if not p.is_file():
        raise UserError(f"{source} does not exist or is not a file")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # zip, pickle and EOF errors all mean the same thing to a user
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{source} is not a readable checkpoint (corrupted or not a torch file): {first}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("space"), str):
        raise UserError(f"{source} is not an hwnas supernet checkpoint")
    if space is not None and ckpt["space"] != space:
        raise UserError(f"{source} holds a supernet of space {ckpt['space']!r}, not {space!r}")
    target = get_space(ckpt["space"] if space is None else space)
    if not isinstance(target, OFASpace):
        raise UserError(f"{source} names space {target.name!r}, which has no Once-for-All supernet")
    if isinstance(ckpt.get("space_params"), dict) and ckpt["space_params"] != target.space_params():
        target = target.with_params(ckpt["space_params"])  # e.g. a head sized for the training data
    return OFASupernet.from_checkpoint(ckpt, target, source)
