"""Once-for-All's per-resolution lookup tables (``<device>_<res>_lookup_table.yaml``).

Each file prices the 96 blocks of the MobileNetV3 space at one input resolution. The same key
(e.g. the 1x1 head convs) carries a different mean in each file, so every file becomes its own
``by_resolution`` section: summing a section over an arch's blocks is exactly what Once-for-All's
``LatencyEstimator`` does.
"""

from __future__ import annotations

import re
from pathlib import Path

from search_spaces.errors import UserError
from search_spaces.registry import get_space

from ..profile import Runtime, SpaceTable
from .common import ImportedTables, read_mean_table, source_file

CITATION = ("Cai, Gan, Wang, Zhang, Han. Once-for-All: Train One Network and Specialize it for Efficient "
            "Deployment. ICLR 2020. Tables from mit-han-lab/once-for-all (MIT licence).")
CANDIDATE_SPACES = ("ofa", "ofa-w1.0")
# Once-for-All's file prefixes -> product names, for the profile's hardware field.
KNOWN_DEVICES = {"note10": "Samsung Galaxy Note10", "note8": "Samsung Galaxy Note8", "pixel1": "Google Pixel 1",
                 "pixel2": "Google Pixel 2", "s7edge": "Samsung Galaxy S7 edge", "LG-G8": "LG G8 ThinQ"}
_STEM = re.compile(r"^Conv-input:(\d+)x(\d+)x3-")


def _resolution(path: Path, keys) -> int:
    for k in keys:
        m = _STEM.match(str(k))
        if m and m.group(1) == m.group(2):
            return int(m.group(1))
    raise UserError(f"{str(path)!r}: no stem entry 'Conv-input:RxRx3-...' to tell the input resolution; "
                    "is this a Once-for-All lookup table?")


def _space_for(path: Path, r: int, keys: set[str], space: str | None) -> str:
    candidates = [space] if space else list(CANDIDATE_SPACES)
    first_miss = {}
    for name in candidates:
        sp = get_space(name)
        all_keys = sp.block_keys()
        at_r = {str(all_keys[i]) for i in sp.searched_block_ids(resolutions=[r])}
        extra = sorted(keys - at_r)
        if not extra:
            return name
        first_miss[name] = extra[0]
    detail = "; ".join(f"{n} has no block {k}" for n, k in first_miss.items())
    raise UserError(f"{str(path)!r} does not match the blocks of {' or '.join(candidates)} at resolution {r} "
                    f"({detail})")


def read_ofa_tables(paths: list[Path], space: str | None = None) -> ImportedTables:
    """One ``by_resolution`` section per file, under the Once-for-All space whose blocks it prices."""
    sections: dict[int, dict[str, float]] = {}
    seen: dict[int, Path] = {}
    space_name = None
    for path in paths:
        entries = read_mean_table(path, "Once-for-All lookup table")
        r = _resolution(path, entries)
        if r in seen:
            raise UserError(f"{str(path)!r} and {str(seen[r])!r} both hold resolution {r}; give one file each")
        seen[r] = path
        name = _space_for(path, r, set(entries), space)
        if space_name is not None and name != space_name:
            raise UserError(f"{str(path)!r} prices space {name!r} but the other files price {space_name!r}")
        space_name = name
        sections[r] = entries
    table = SpaceTable(by_resolution=dict(sorted(sections.items())))
    m = re.match(r"^([A-Za-z0-9]+)_\d+_lookup_table\.ya?ml$", paths[0].name)
    device = KNOWN_DEVICES.get(m.group(1)) if m else None
    return ImportedTables(
        tables={space_name: table}, citations=[CITATION],
        provenance=(f"Once-for-All per-resolution lookup tables (mean of each block's runs), imported by "
                    f"`nas import-table --format ofa`; resolutions {', '.join(map(str, sorted(sections)))}"),
        files=[source_file(p) for p in paths],
        runtime=Runtime(engine="tflite", batch=1), device=device)
