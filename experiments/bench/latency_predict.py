"""Latency prediction throughput: archs/s for one batch of random ``ofa`` archs on a note10 table.

The archs are sampled as encoded matrices (``space.sample_encoded``), resolutions drawn from those
the table covers; the figure is the best of ``--reps`` timed ``predict`` calls on the whole batch
(compiling the table is timed apart). With ../shared/data/ofa present the table is Once-for-All's
note10 tables imported by ``nas import-table``; otherwise a synthetic table of the same shape.

When the ``ofa`` package is installed, its own table scorer
(``LatencyEstimator.predict_network_latency_given_spec``, a dict look-up per block per arch) is
timed on the first ``--ofa-n`` archs of the batch, fed the same tables, and its answers are
compared with ours.

    python experiments/bench/latency_predict.py [--n 1000000] [--reps 3] [--ofa-n 20000]

Prints one JSON object. numpy's gather and sum use no BLAS, but to time a current numpy honestly
run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (see the env notes); the JSON records both.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from latency_predictors.importers import import_tables
from latency_predictors.predictor import LatencyPredictor
from latency_predictors.profile import DeviceProfile, Source, SpaceTable
from search_spaces import get_space

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TABLES = Path(os.environ.get("HWNAS_SHARED_DATA", REPO.parent / "shared" / "data")) / "ofa"


def note10_profile(tables_dir: Path, tmp: str) -> tuple[DeviceProfile, list[Path], str]:
    files = sorted(Path(p) for p in glob.glob(str(tables_dir / "note10_*_lookup_table.yaml")))
    if files:
        info = import_tables("ofa", files, "note10", out_dir=tmp)
        from latency_predictors.registry import load_profile

        return load_profile(info["path"]), files, "Once-for-All note10 tables, imported"
    # No reference data: random latencies at the five note10 resolutions, same shape and cost.
    space = get_space("ofa")
    keys = space.block_keys()
    rng = np.random.default_rng(0)
    sections = {r: {str(keys[i]): float(v) for i, v in zip(ids, rng.random(len(ids)))}
                for r in (160, 176, 192, 208, 224) for ids in [space.searched_block_ids(resolutions=[r])]}
    prof = DeviceProfile(name="synthetic", source=Source(kind="modelled", provenance="random"),
                         tables={"ofa": SpaceTable(by_resolution=sections)})
    return prof, [], "synthetic random table (no ../shared/data/ofa)"


def load_ofa_estimator():
    """Once-for-All's LatencyEstimator class, or None and why not.

    ``ofa.tutorial`` pulls in torchvision through ``ofa.utils``; the scorer needs neither, so when
    that import fails the module file is loaded with a stand-in ``ofa.utils`` (download_url only).
    """
    spec = importlib.util.find_spec("ofa")
    if spec is None:
        return None, "ofa package not installed"
    try:
        from ofa.tutorial.latency_table import LatencyEstimator

        return LatencyEstimator, "ok"
    except Exception:  # noqa: BLE001 - fall back to loading the one file
        pass
    path = Path(spec.submodule_search_locations[0]) / "tutorial" / "latency_table.py"
    saved = {k: sys.modules.get(k) for k in ("ofa", "ofa.utils")}
    try:
        stub = types.ModuleType("ofa.utils")
        stub.download_url = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no downloads in the bench"))
        sys.modules["ofa"] = types.ModuleType("ofa")
        sys.modules["ofa.utils"] = stub
        mod_spec = importlib.util.spec_from_file_location("_ofa_latency_table", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return module.LatencyEstimator, "ofa.utils stubbed for import (torchvision missing)"
    except Exception as e:  # noqa: BLE001
        return None, f"ofa not importable: {type(e).__name__}: {e}".splitlines()[0]
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def time_ofa(estimator_cls, files: list[Path], archs: list[dict]) -> tuple[float, np.ndarray]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    by_res = {}
    for f in files:
        # Its constructor calls yaml.load without a Loader (PyYAML >= 6 refuses), so set the table directly.
        est = estimator_cls.__new__(estimator_cls)
        est.lut = yaml.load(f.read_text(), Loader=loader)
        r = int(f.name.split("_")[1])
        by_res[r] = est
    t0 = time.perf_counter()
    out = [by_res[a["r"][0]].predict_network_latency_given_spec(a) for a in archs]
    return time.perf_counter() - t0, np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="archs in the batch")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ofa-n", type=int, default=20_000, help="archs scored by Once-for-All's scorer")
    ap.add_argument("--tables", type=Path, default=DEFAULT_TABLES, help="folder with note10_*_lookup_table.yaml")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    space = get_space("ofa")
    with tempfile.TemporaryDirectory() as tmp:
        profile, files, table_kind = note10_profile(args.tables, tmp)
    t0 = time.perf_counter()
    predictor = LatencyPredictor(profile, space)
    compile_s = time.perf_counter() - t0

    rng = np.random.default_rng(args.seed)
    X = space.sample_encoded(rng, args.n)
    res_choices = np.array([space.dims[-1].choices.index(r) for r in sorted(profile.tables["ofa"].by_resolution)])
    X[:, -1] = res_choices[rng.integers(0, len(res_choices), size=args.n)]

    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        lat = predictor.predict(X)
        times.append(time.perf_counter() - t0)
    best = min(times)
    result = {
        "bench": "latency_predict",
        "space": "ofa",
        "table": table_kind,
        "n_archs": args.n,
        "compile_s": round(compile_s, 4),
        "predict_s_best": round(best, 4),
        "predict_s_all": [round(t, 4) for t in times],
        "archs_per_s": round(args.n / best),
        "goal_archs_per_s": 1_000_000,
        "mean_latency_ms": round(float(lat.mean()), 4),
    }

    estimator_cls, status = load_ofa_estimator()
    result["ofa_scorer_status"] = status
    if estimator_cls is not None and files:
        n = min(args.ofa_n, args.n)
        archs = space.decode(X[:n])  # decoding is not timed: its scorer takes spec dicts
        ofa_s, ofa_lat = time_ofa(estimator_cls, files, archs)
        result["ofa_scorer_n_archs"] = n
        result["ofa_scorer_archs_per_s"] = round(n / ofa_s)
        result["speedup_vs_ofa"] = round((args.n / best) / (n / ofa_s), 1)
        result["max_abs_diff_vs_ofa_ms"] = float(np.abs(ofa_lat - lat[:n]).max())

    result["numpy"] = np.__version__
    result["openblas_env"] = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "latency_predict"))
