"""What every importer returns, and the small readers they share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from search_spaces.blocks import BlockKey
from search_spaces.errors import UserError
from search_spaces.fileio import read_yaml_file

from ..profile import Runtime, SourceFile, SpaceTable

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class ImportedTables:
    """Tables read from a public tool's files, with what those files tell about their origin."""

    tables: dict[str, SpaceTable]  # space name -> table
    citations: list[str]
    provenance: str
    files: list[SourceFile]
    runtime: Runtime = field(default_factory=Runtime)
    device: str | None = None  # product name when the files say it


def source_file(path: Path) -> SourceFile:
    return SourceFile(name=path.name, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def read_yaml_mapping(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"{what} {str(path)!r} does not exist or is not a file")
    data = read_yaml_file(path, what, loader=_Loader)
    if not isinstance(data, dict) or not data:
        raise UserError(f"{what} {str(path)!r} must be a non-empty YAML mapping of block key -> stats")
    return data


def mean_ms(path: Path, key, stats) -> float:
    """The ``mean`` of one lookup-table entry (Once-for-All / ProxylessNAS style), in ms."""
    mean = stats.get("mean") if isinstance(stats, dict) else None
    if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not mean >= 0:
        raise UserError(f"{str(path)!r}: entry {key!r} has no non-negative number 'mean'")
    return float(mean)


def read_mean_table(path: Path, what: str) -> dict[str, float]:
    """A lookup-table YAML (block key -> stats with a ``mean``) as normalised key -> mean ms."""
    entries = {}
    for key, stats in read_yaml_mapping(path, what).items():
        try:
            norm = str(BlockKey.parse(str(key)))
        except UserError as e:
            raise UserError(f"{str(path)!r}: {e}") from None
        entries[norm] = mean_ms(path, key, stats)
    return entries
