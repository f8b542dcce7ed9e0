"""A modelled device profile: fit the operator cost model on published figures, price every space.

``fit_device_profile`` is what ``nas fit-device`` runs: it reads whole-network figures (CSV plus
block lists) and per-block tables, fits ``OperatorCostModel``, evaluates it (leave one family
out; Spearman against each table left out), and writes a ``DeviceProfile`` marked ``modelled``
whose tables price the searched blocks of every registered space that has blocks. The figures
are recorded by citation, file name and hash; they are never copied into the profile.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import ValidationError

from search_spaces.errors import UserError
from search_spaces.fileio import read_text_file

from .cost_model import MODEL_NAME, OperatorCostModel
from .cost_model_eval import evaluate
from .measurements import BlockTable, load_block_table, load_whole_networks
from .profile import (Calibration, DeviceProfile, FitReport, Hardware, Runtime, Source, SourceFile,
                      SpaceTable, now_iso)
from .registry import check_names_free, save_profile

# Public provenance of the reference files this project knows (see ../shared/data/README.md):
# a profile cites these instead of a local path.
KNOWN_CITATIONS = {
    "pixel1_published_latency.csv":
        "Published Pixel 1 latencies (TFLite fp32, one large core, batch 1): MobileNetV2 paper "
        "(Sandler et al., arXiv 1801.04381) Table 4; TF-slim mobilenet README (tensorflow/models "
        "research/slim/nets/mobilenet) V2 and V3 tables; MobileNetV3 paper (Howard et al., arXiv "
        "1905.02244); MnasNet README (tensorflow/tpu models/official/mnasnet); each row cites its source",
    "arch_configs.json":
        "Block lists of those networks from their official code/configs (TF-slim, tensorflow/tpu "
        "mnasnet_models.py, MobileNetV3 paper Tables 1-2); width variants derived by the make-divisible rule",
    "mobile_trim.yaml":
        "ProxylessNAS (Cai et al., ICLR 2019) Pixel 1 per-block latency lookup table mobile_trim.yaml "
        "(han-cai/files, TFLite)",
    "pixel1_runtime_model.json":
        "Single-Path NAS (Stamoulis et al., ECML-PKDD 2019, arXiv 1904.02877) Pixel 1 per-layer runtime "
        "model (enyac-group/single-path-nas, nas-search/pixel1_runtime_model.json, Apache-2.0)",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _csv_meta(path: Path) -> dict:
    """The device, runtime, precision, threads and batch the CSV's rows share (None where they differ)."""
    rows = list(csv.DictReader(io.StringIO(read_text_file(path, "whole-network CSV"), newline="")))
    meta = {}
    for col in ("device", "runtime", "precision", "threads", "batch"):
        vals = {r.get(col, "").strip() for r in rows} - {""}
        meta[col] = vals.pop() if len(vals) == 1 else None
    return meta


def spaces_with_blocks() -> list[str]:
    """Registered spaces that can be priced per block (they implement ``block_keys``)."""
    from search_spaces import get_space, list_spaces

    out = []
    for name in list_spaces():
        try:
            get_space(name).block_keys()
        except NotImplementedError:
            continue
        out.append(name)
    return out


def space_table(model: OperatorCostModel, space_name: str) -> dict[str, float]:
    """Modelled latency of every searched block of a space, by block key (ms, 4 decimals)."""
    from search_spaces import get_space

    space = get_space(space_name)
    keys = space.block_keys()
    try:
        ids = space.searched_block_ids()
    except NotImplementedError:
        ids = np.arange(len(keys))
    chosen = [keys[i] for i in ids]
    ms = model.predict_blocks(chosen)
    return {str(k): round(float(v), 4) for k, v in zip(chosen, ms)}


def fit_device_profile(name: str, whole_csv: str | os.PathLike | None = None,
                       arch_configs: str | os.PathLike | None = None,
                       block_files: Sequence[str | os.PathLike] = (), aliases: Sequence[str] = (),
                       spaces: Sequence[str] | None = None, evaluate_fit: bool = True,
                       model_params: dict | None = None) -> tuple[DeviceProfile, dict]:
    """A modelled profile fitted on the given figures, and the evaluation report."""
    if whole_csv is None and not block_files:
        raise UserError("give whole-network figures (--whole with --arch-configs) and/or block tables (--blocks)")
    if whole_csv is not None and arch_configs is None:
        raise UserError("--whole needs --arch-configs: the block lists of the networks it times")
    params = dict(model_params or {})
    networks = load_whole_networks(whole_csv, arch_configs) if whole_csv is not None else []
    tables: list[BlockTable] = [load_block_table(p) for p in block_files]
    names = [t.name for t in tables]
    if len(set(names)) != len(names):
        raise UserError(f"block tables must have distinct file names, got {', '.join(names)}")

    model = OperatorCostModel(**params).fit(networks, tables)
    report = evaluate(networks, tables, **params) if evaluate_fit else {"fit": model.fit_report_}

    files = [Path(p) for p in ([whole_csv, arch_configs] if whole_csv is not None else []) + list(block_files)]
    citations = [f"{p.name}: {KNOWN_CITATIONS.get(p.name, 'user-supplied figures')}" for p in files]
    source = Source(
        kind="modelled",
        provenance=(f"{MODEL_NAME}: per-operator analytical cost model (MACs, memory traffic and kernel "
                    f"overhead per operator type, non-negative least squares on relative errors) fitted "
                    f"by `nas fit-device` on {len(networks)} published whole-network latencies and "
                    f"{sum(len(t) for t in tables)} per-block entries, with one speed factor per block "
                    f"table and per source of whole-network figures (TFLite builds differ); every block "
                    f"of every table below is a model prediction, not a measurement, on the speed of the "
                    f"reference source ({_reference_note(model)})"),
        citations=citations,
        files=[SourceFile(name=p.name, sha256=_sha256(p)) for p in files],
        created=now_iso())

    meta = _csv_meta(Path(whole_csv)) if whole_csv is not None else {}
    runtime = Runtime(engine=(meta.get("runtime") or "").lower() or None,
                      threads=int(meta["threads"]) if (meta.get("threads") or "").isdigit() else None,
                      batch=int(meta["batch"]) if (meta.get("batch") or "").isdigit() else 1,
                      precision=meta.get("precision"))

    lofo = report.get("leave_one_family_out", {})
    fit_params: dict = {
        "lofo_mape_pct": {fam: round(r["mape_pct"], 2) for fam, r in lofo.items()},
        "held_out_spearman": {t: round(r["spearman"], 4) for t, r in report.get("table_held_out", {}).items()},
        "fit_mape_pct": {k: round(v["mape_pct"], 2) for k, v in model.fit_report_.items()},
    }
    if model.source_scale_:
        fit_params["source_scale"] = {k: round(v, 4) for k, v in model.source_scale_.items()}
        fit_params["reference_source"] = model.reference_source_
    whole = model.fit_report_.get("whole_networks")
    fit = FitReport(
        method=f"{MODEL_NAME} cost model",
        n_points=len(networks) if whole else sum(len(t) for t in tables),  # the points mape_pct is over
        reference=((f"MAPE over the published whole-network latencies, each at its source's fitted "
                    f"speed factor (also fitted on {sum(len(t) for t in tables)} per-block entries)"
                    if whole else "per-block tables")
                   + "; params: lofo_mape_pct = error on each family left out of the fit (at its "
                     "source's factor fitted on the source's other rows, 1 where it has none), "
                     "held_out_spearman = rank agreement with each block table left out of the fit, "
                     "source_scale = speed factor of each source of whole-network figures relative to "
                     "reference_source (block tables are on the reference's speed); "
                     "model = the fitted coefficients (rebuild with OperatorCostModel.from_dict)"),
        mape_pct=round(whole["mape_pct"] if whole else
                       float(np.mean([v["mape_pct"] for v in model.fit_report_.values()])), 2),
        params=fit_params, model=model.to_dict(), created=now_iso())

    chosen = list(spaces) if spaces is not None else spaces_with_blocks()
    tables_out = {s: SpaceTable(entries=space_table(model, s)) for s in chosen}
    device = meta.get("device")
    try:
        profile = DeviceProfile(
            name=name.strip().lower(), aliases=[a.strip().lower() for a in aliases],
            description=(f"{device or name}: modelled from published measurements (no device attached); "
                         f"see the fit section for its error"),
            hardware=Hardware(device=device), runtime=runtime, source=source,
            calibration=Calibration(offset_ms=round(model.network_overhead_ms, 4),
                                    note="fixed whole-network overhead fitted by the cost model"),
            tables=tables_out, fit=fit)
    except ValidationError as e:
        err = e.errors()[0]
        raise UserError(f"field {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    return profile, report


def _reference_note(model: OperatorCostModel) -> str:
    ref = getattr(model, "reference_source_", "")
    return f"{ref!r}, the one with the most rows" if ref else "all figures share one speed"


def model_from_profile(profile: DeviceProfile) -> OperatorCostModel:
    """The cost model a modelled profile was written with (to price blocks its tables lack)."""
    if profile.fit is None or not profile.fit.model:
        raise UserError(f"device {profile.name!r} records no fitted cost model")
    return OperatorCostModel.from_dict(profile.fit.model)


def write_device_profile(out_dir: str | os.PathLike, **kwargs) -> tuple[Path, DeviceProfile, dict]:
    """``fit_device_profile`` then save ``<out_dir>/<name>.yaml``; returns (path, profile, report)."""
    name = str(kwargs.get("name", "")).strip().lower()
    check_names_free(name, [str(a).strip().lower() for a in kwargs.get("aliases", ())])  # before the fit
    profile, report = fit_device_profile(**kwargs)
    return save_profile(profile, out_dir), profile, report
