"""Training checkpoints: everything needed to continue a run exactly, written atomically.

The file holds the supernet, the frozen teacher (progressive shrinking), the optimiser, the
position in the plan (phase, epoch, step), the RNG states (torch's global one for dropout, the
data-order and sampling generators), the per-epoch history and the run's configuration. It is
read with ``torch.load(weights_only=True)``: plain dicts, lists, numbers, strings and tensors only.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from search_spaces.errors import UserError

from ..io import atomic_write_bytes

FORMAT, VERSION = "hwnas.train-checkpoint", 1
CHECKPOINT_FILE = "checkpoint.pt"


def save_training_state(state: dict, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "format_version": VERSION, **state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_training_state(path: str | os.PathLike, map_location="cpu") -> dict:
    p = Path(path)
    where = f"training checkpoint {str(p)!r}"
    if not p.is_file():
        raise UserError(f"{where} does not exist; --resume needs the --out folder of an earlier `nas train`")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same to a user
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{where} is not readable (corrupted or not a torch file): {first}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{where} is not an hwnas training checkpoint")
    if state.get("format_version") != VERSION:
        raise UserError(f"{where} has format version {state.get('format_version')!r}; this hwnas reads {VERSION}")
    return state
