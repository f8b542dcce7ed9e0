"""The run's checkpoint: strategy state, evaluation cache, archive, history, counters and RNG, in one npz.

Written atomically, so a ``kill -9`` leaves the previous checkpoint intact; a resumed run loads it
and continues bit-for-bit (every arch scored before the kill comes from the cache, not the estimator).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from search_spaces.errors import UserError

from ..io import atomic_write_bytes

FORMAT = 2
HISTORY_COLS = ("n_evaluated", "best_score", "best_top1", "best_latency_ms", "n_proposed", "surrogate_rank_corr")
COUNTERS = ("n_evaluated", "generation", "n_proposed", "n_latency_rows", "idle", "finished")


def save(path: Path, *, state: dict, cache: dict, archive: dict, history: list, counters: dict,
         elapsed_s: float, rng: np.random.Generator, fingerprint: str) -> None:
    arrays = {f"state/{k}": np.asarray(v) for k, v in state.items()}
    arrays.update({f"cache/{k}": v for k, v in cache.items()})
    arrays.update({f"archive/{k}": v for k, v in archive.items()})
    arrays["history"] = np.array(history, dtype=np.float64).reshape(-1, len(HISTORY_COLS))
    arrays["counters"] = np.array([counters[k] for k in COUNTERS], np.int64)
    arrays["elapsed_s"] = np.array(float(elapsed_s))
    arrays["rng"] = np.array(json.dumps(rng.bit_generator.state))
    arrays["fingerprint"] = np.array(fingerprint)
    arrays["format"] = np.array(FORMAT)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path, fingerprint: str) -> dict:
    """The checkpoint's parts; one-line errors for an unreadable, foreign or older checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise UserError(f"checkpoint {str(path)!r} is unreadable ({type(e).__name__}); delete it to start over") from None
    try:
        if int(data.get("format", 1)) != FORMAT:
            raise UserError(f"checkpoint {str(path)!r} was written by an older hwnas; start the search again "
                            "in another --out")
        if str(data["fingerprint"]) != fingerprint:
            raise UserError(f"checkpoint {str(path)!r} belongs to a different search configuration; "
                            "resume with the same settings or use another --out")
        part = {p: {k[len(p) + 1:]: v for k, v in data.items() if k.startswith(p + "/")}
                for p in ("state", "cache", "archive")}
        return {**part, "history": [list(r) for r in data["history"]],
                "counters": dict(zip(COUNTERS, (int(v) for v in data["counters"]))),
                "elapsed_s": float(data["elapsed_s"]), "rng": json.loads(str(data["rng"]))}
    except (KeyError, ValueError, TypeError) as e:
        raise UserError(f"checkpoint {str(path)!r} is damaged ({type(e).__name__}); delete it to start over") from None


def peek_finished(path: Path) -> bool:
    """Whether the checkpoint records a finished search (False when absent or unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return bool(dict(zip(COUNTERS, z["counters"]))["finished"])
    except Exception:  # noqa: BLE001 - any damage: not known to be finished; load() reports it
        return False
