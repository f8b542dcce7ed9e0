"""Single-Path NAS's per-layer runtime model (``pixel1_runtime_model.json``).

The JSON maps each of the 22 searchable MBConv layers to the runtime (ms) of its four options,
``"0": k3e3, "1": k3e6, "2": k5e3, "3": k5e6``; skipping a layer costs 0 ms. It is stored as a
``LayerTable`` under the space name ``single_path``, rows in layer order, columns in option order.
Stem and head are not in the file: the paper adds them as a constant (a calibration offset).
"""

from __future__ import annotations

from pathlib import Path

from search_spaces.errors import UserError
from search_spaces.fileio import read_json_file

from ..profile import LayerTable, Runtime, SpaceTable
from .common import ImportedTables, source_file

SPACE = "single_path"
OPTIONS = ("k3e3", "k3e6", "k5e3", "k5e6")
N_LAYERS = 22
CITATION = ("Stamoulis, Ding, Wang, Lymberopoulos, Priyantha, Liu, Marculescu. Single-Path NAS: Designing "
            "Hardware-Efficient ConvNets in less than 4 Hours. ECML PKDD 2019 (Apache-2.0).")


def read_single_path_runtime(paths: list[Path]) -> ImportedTables:
    if len(paths) != 1:
        raise UserError(f"--format single-path takes one runtime JSON file, got {len(paths)}")
    path = paths[0]
    if not path.is_file():
        raise UserError(f"Single-Path NAS runtime model {str(path)!r} does not exist or is not a file")
    data = read_json_file(path, "Single-Path NAS runtime model")
    expected_layers = {str(i) for i in range(N_LAYERS)}
    if not isinstance(data, dict) or set(data) != expected_layers:
        raise UserError(f"{str(path)!r} must map the {N_LAYERS} layers '0'..'{N_LAYERS - 1}' to their options")
    rows = []
    for i in range(N_LAYERS):
        opts = data[str(i)]
        if not isinstance(opts, dict) or set(opts) != {str(j) for j in range(len(OPTIONS))}:
            raise UserError(f"{str(path)!r}: layer {i} must hold options '0'..'3' ({', '.join(OPTIONS)})")
        row = []
        for j in range(len(OPTIONS)):
            v = opts[str(j)]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise UserError(f"{str(path)!r}: layer {i} option {j}: {v!r} is not a non-negative number of ms")
            row.append(float(v))
        rows.append(row)
    table = SpaceTable(layers=LayerTable(options=list(OPTIONS), ms=rows, skip_ms=0.0))
    return ImportedTables(
        tables={SPACE: table}, citations=[CITATION],
        provenance=("Single-Path NAS per-layer runtime model (22 searchable layers x 4 MBConv options, skip = 0 ms; "
                    "stem and head not included), imported by `nas import-table --format single-path`"),
        files=[source_file(path)], runtime=Runtime(engine="tflite", batch=1, threads=1),
        device="Google Pixel 1" if "pixel1" in path.name.lower() else None)
