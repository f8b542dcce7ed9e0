"""The public Python API; the CLI calls only these functions."""

from __future__ import annotations

from pathlib import Path

from search_spaces import get_space, list_spaces
from search_spaces.base import describe_allowed
from search_spaces.errors import UserError

from .io import read_json


def describe_spaces() -> list[dict]:
    """Each registered space: name, description, dims (grouped by name) and size."""
    rows = []
    for name in list_spaces():
        sp = get_space(name)
        groups: dict[str, list] = {}
        for d in sp.dims:
            base = d.name.split("[")[0]
            groups.setdefault(base, []).append(d)
        dims = []
        for base, ds in groups.items():
            label = f"{base}[{len(ds)}]" if len(ds) > 1 or "[" in ds[0].name else base
            dims.append({"names": label, "values": describe_allowed(ds[0].searched),
                         "count": len(ds)})
        row = {"name": name, "description": sp.description,
               "version": sp.version, "n_dims": len(sp.dims), "dims": dims, "size": sp.size()}
        if hasattr(sp, "size_per_resolution"):
            row["size_per_resolution"] = sp.size_per_resolution()
        rows.append(row)
    return rows


def _net_config_spaces():
    return [get_space(n) for n in list_spaces() if hasattr(get_space(n), "from_net_config")]


def convert(source: str | Path, resolution: int | None = None, space: str | None = None) -> dict:
    """net.config (file or folder) -> arch, or arch file -> net.config when ``space`` is given.

    Returns ``{"kind": "arch"|"net.config", "space": name, "result": dict}``.
    """
    src = Path(source)
    cfg_path = src / "net.config" if src.is_dir() else src
    data = read_json(cfg_path, "net.config" if src.is_dir() else "input file")
    if isinstance(data, dict) and "blocks" in data:
        run_cfg = cfg_path.parent / "run.config"
        if resolution is None and run_cfg.is_file():
            resolution = read_json(run_cfg, "run.config").get("image_size")
        if resolution is None:
            raise UserError(f"{str(cfg_path)!r}: no run.config beside it; pass --resolution")
        candidates = [get_space(space)] if space else _net_config_spaces()
        errors = []
        for sp in candidates:
            try:
                return {"kind": "arch", "space": sp.name, "result": sp.from_net_config(data, resolution)}
            except UserError as e:
                errors.append(f"{sp.name}: {e}")
        raise UserError("no space accepts this net.config (" + "; ".join(errors) + ")")
    if isinstance(data, dict) and space:
        sp = get_space(space)
        if not hasattr(sp, "to_net_config"):
            raise UserError(f"space {sp.name!r} has no net.config format")
        return {"kind": "net.config", "space": sp.name, "result": sp.to_net_config(data)}
    if isinstance(data, dict):
        raise UserError("an arch file converts to a net.config only with --space (e.g. --space ofa)")
    raise UserError(f"{str(cfg_path)!r} is neither a net.config nor an arch")
