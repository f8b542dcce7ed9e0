"""Accuracy models shipped inside the package, one per space: ``nas/accuracy/models/SPACE.json``.

Each is a ``predictor:PATH`` file (plain JSON, no pickle) built by ``nas fit-predictor --teacher``;
its metadata holds the provenance (teacher, the teacher file's SHA-256, sampling, the rebuild
command, held-out fidelity). A space with a shipped model uses it as its default estimator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).with_name("models")


def shipped_model_path(space_name: str) -> Path | None:
    p = MODELS_DIR / f"{space_name}.json"
    return p if p.is_file() else None


@dataclass(frozen=True)
class ShippedModelInfo:
    """What `nas spaces` says about a shipped model, read from its metadata."""

    source: str
    ranking: str
    metadata: dict

    @classmethod
    def read(cls, path: Path) -> "ShippedModelInfo":
        from .learned import ranking_text

        meta = json.loads(Path(path).read_text()).get("metadata") or {}
        return cls(source=str(meta.get("description", f"shipped model {path.name}")),
                   ranking=ranking_text(meta), metadata=meta)
