"""The public Python API; the CLI calls only these functions."""

from __future__ import annotations

from pathlib import Path

from search_spaces import get_space, list_spaces
from search_spaces.base import NetConfigReader, NetConfigWriter, ResolutionSized, describe_allowed
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
            # Every value the group's slots search (a slot may be fixed, e.g. single_path's first
            # layer, and only some slots may offer skip), with how many slots offer the partial ones.
            free = [d for d in ds if len(d.searched) > 1] or ds
            fixed = [d for d in ds if len(d.searched) == 1 and len(ds) > 1 and d not in free]
            union = list(dict.fromkeys(v for d in free for v in d.searched))
            partial = {str(v): sum(v in d.searched for d in free) for v in union}
            partial = {v: n for v, n in partial.items() if n < len(free)}
            notes = [f"{v} in {n} of {len(free)}" for v, n in partial.items()]
            notes += [f"{d.name} fixed: {d.searched[0]}" for d in fixed]
            text = describe_allowed(union) + (f" ({'; '.join(notes)})" if notes else "")
            dims.append({"names": label, "values": text, "count": len(ds), "choices": [str(v) for v in union],
                         "partial": partial, "fixed": {d.name: str(d.searched[0]) for d in fixed}})
        row = {"name": name, "description": sp.description,
               "version": sp.version, "n_dims": len(sp.dims), "dims": dims, "size": sp.size()}
        if isinstance(sp, ResolutionSized):
            row["size_per_resolution"] = sp.size_per_resolution()
        rows.append(row)
    return rows


def _net_config_spaces():
    return [sp for sp in map(get_space, list_spaces()) if isinstance(sp, NetConfigReader)]


def convert(source: str | Path, resolution: int | None = None, space: str | None = None) -> dict:
    """net.config (file or folder) -> arch file, or arch file -> net.config.

    Returns ``{"kind": "arch"|"net.config", "space": name, "result": dict, "file": dict}``. ``file``
    is what ``--out`` writes: for an arch, an arch file (``nas.archfile``) that records the space and
    its parameters (a released ProxylessNAS net's own widths), so ``predict``/``export`` price and
    build that very net; for a net.config, the net.config itself. ``space_params`` (arch only).
    """
    from .archfile import arch_payload, parse_arch_file, space_of

    src = Path(source)
    cfg_path = src / "net.config" if src.is_dir() else src
    data = read_json(cfg_path, "net.config" if src.is_dir() else "input file")
    if isinstance(data, dict) and "blocks" in data:
        run_cfg = cfg_path.parent / "run.config"
        if resolution is None and run_cfg.is_file():
            run = read_json(run_cfg, "run.config")
            resolution = run.get("image_size") if isinstance(run, dict) else None
        if resolution is None:
            raise UserError(f"{str(cfg_path)!r}: no run.config beside it; pass --resolution")
        candidates = [get_space(space)] if space else _net_config_spaces()
        errors = []
        for sp in candidates:
            if not isinstance(sp, NetConfigReader):
                errors.append(f"{sp.name}: reads no net.config")
                continue
            try:
                arch = sp.from_net_config(data, resolution)
                at = sp.net_config_space(data)
            except UserError as e:
                errors.append(f"{sp.name}: {e}")
                continue
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
                # A released tool's layer list with a field missing or of the wrong type.
                errors.append(f"{sp.name}: malformed net.config ({type(e).__name__}: {e})")
                continue
            return {"kind": "arch", "space": at.name, "space_params": at.space_params(), "result": arch,
                    "file": arch_payload(at, arch)}
        raise UserError("no space accepts this net.config (" + "; ".join(errors) + ")")
    if isinstance(data, (dict, list)):
        af = parse_arch_file(data, repr(str(cfg_path)))
        af.path = str(cfg_path)
        if af.space is None and not space:
            raise UserError("an arch file converts to a net.config only with --space (e.g. --space ofa), "
                            "unless it names its space")
        sp = space_of(af, space)
        if not isinstance(sp, NetConfigWriter):
            raise UserError(f"space {sp.name!r} has no net.config format")
        if len(af.archs) != 1:
            raise UserError(f"{str(cfg_path)!r} holds {len(af.archs)} archs; convert takes exactly one")
        cfg = sp.to_net_config(af.archs[0])
        return {"kind": "net.config", "space": sp.name, "result": cfg, "file": cfg}
    raise UserError(f"{str(cfg_path)!r} is neither a net.config nor an arch")
