"""Importers of public latency tables into device profiles (``nas import-table``).

Each format's reader turns its files into ``SpaceTable``s; ``import_tables`` puts them into a
device profile (a new one, or the existing one of that name, whose other spaces are kept).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from pydantic import ValidationError

from search_spaces.errors import UserError

from ..profile import DeviceProfile, Hardware, Source, now_iso
from ..registry import RegisteredProfile, check_names_free, find_profile, load_profile, save_profile, user_dir
from .common import ImportedTables
from .ofa import read_ofa_tables
from .proxylessnas import config_block_keys, price_block_keys, read_mobile_trim
from .single_path import read_single_path_runtime

FORMATS: dict[str, Callable[[list[Path]], ImportedTables]] = {
    "ofa": read_ofa_tables,
    "proxylessnas": read_mobile_trim,
    "single-path": read_single_path_runtime,
}


def read_tables(fmt: str, files: Sequence[str | os.PathLike]) -> ImportedTables:
    if fmt not in FORMATS:
        raise UserError(f"unknown table format {fmt!r}; known: {', '.join(FORMATS)}")
    if not files:
        raise UserError("give at least one table file to import")
    return FORMATS[fmt]([Path(f).expanduser() for f in files])


def _existing(device: str, out_dir: Path) -> DeviceProfile | None:
    """The profile the import extends: the one in out_dir, else a registered one of that name."""
    path = out_dir / f"{device}.yaml"
    if path.exists():
        return load_profile(path)
    try:
        reg: RegisteredProfile = find_profile(device)
    except UserError:
        return None
    return reg.profile if reg.profile.name == device else None


def import_tables(fmt: str, files: Sequence[str | os.PathLike], device: str,
                  out_dir: str | os.PathLike | None = None, aliases: Sequence[str] = ()) -> dict:
    """Import a public tool's table files into device profile ``device``; returns what was written.

    Tables go into ``<out_dir>/<device>.yaml`` (default: the user directory). An existing profile
    of that name keeps its other spaces; the imported spaces are replaced.
    """
    device = device.strip().lower()
    aliases = [str(a).strip().lower() for a in aliases]
    check_names_free(device, aliases)  # before anything is read or written
    imported = read_tables(fmt, files)
    out = Path(out_dir).expanduser() if out_dir is not None else user_dir()
    source = Source(kind="imported", provenance=imported.provenance, citations=imported.citations,
                    files=imported.files, created=now_iso())
    base = _existing(device, out)
    if base is None:
        data = {"name": device, "aliases": list(aliases), "source": source,
                "hardware": Hardware(device=imported.device), "runtime": imported.runtime,
                "tables": imported.tables}
    else:
        tables = dict(base.tables)
        for space, table in imported.tables.items():
            # The profile's own source describes its other tables; this one carries its own.
            tables[space] = table.model_copy(update={"source": source})
        validation = {k: v for k, v in base.validation.items() if k not in imported.tables}
        merged_aliases = list(dict.fromkeys([*base.aliases, *aliases]))
        data = {**base.model_dump(), "tables": tables, "aliases": merged_aliases, "validation": validation}
    try:
        profile = DeviceProfile.model_validate(data)
    except ValidationError as e:  # a bad device name or alias
        err = e.errors()[0]
        field = ".".join(map(str, err["loc"]))
        raise UserError(f"cannot write device profile {device!r}: field {field}: {err['msg'].removeprefix('Value error, ')}") from None
    path = save_profile(profile, out)
    return {"device": profile.name, "path": str(path), "format": fmt,
            "spaces": {s: t.n_entries() for s, t in imported.tables.items()}}


__all__ = ["FORMATS", "ImportedTables", "import_tables", "read_tables", "read_ofa_tables", "read_mobile_trim",
           "read_single_path_runtime", "config_block_keys", "price_block_keys"]
