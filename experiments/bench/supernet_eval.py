"""``supernet:CKPT`` measurement rate: in-supernet vs extracting each arch into a static network.

Per arch, both contenders do the whole measurement: activate (or extract) the arch, re-calibrate
BatchNorm on the calibration images, score the held-out split. Two figures per path:

- one process, one torch thread, the archs interleaved one by one in alternating order (other load
  on the machine hits both alike): archs/s and CPU milliseconds per arch. CPU time is what the
  work costs whatever else runs on the machine; ``--workers`` cores can at best do
  ``workers * 1000 / cpu_ms_per_arch`` archs/s (printed as ``bound_archs_per_s_on_N_cores``).
- ``--workers`` processes (default: the CPUs available), the archs in batches as a search hands
  them over, batches alternating between the paths: archs/s, wall clock. On a quiet machine
  this is the figure the goal (>= 20 archs/s on 2 cores) is about; under load it is lower.

The in-supernet path is ``SubnetMeter`` (what ``supernet:CKPT`` and ``nas eval-subnets`` run);
the extracted path is ``space.build(arch)`` with inherited weights (``extract``), re-calibrated
with ``recalibrate_bn`` and evaluated, on the same channels-last images. The paths' top-1 must
agree (printed: max difference; BatchNorm folding may move a logit by float rounding).

    python -m experiments.bench.supernet_eval --ckpt runs/sw --data digits [--archs 60] [--workers 2]
    python -m experiments.bench.supernet_eval --quick     # no checkpoint: a randomly initialised
                                                          # ofa-small supernet (same cost per arch)

Prints one JSON object (``--out FILE`` also writes it).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


from experiments.bench.search_vs_ofa import environment, finish

from nas.accuracy.supernet import (HeldOutData, SubnetMeter, default_workers,
                                   load_trained_supernet, measure_extracted)
from search_spaces import get_space

_EXTRACT = {}  # what the forked extracted-path workers measure with


def _extract_worker(archs):
    torch.set_num_threads(1)
    return measure_extracted(_EXTRACT["net"], _EXTRACT["data"], archs)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", help="`nas train` run folder or supernet .pt (default: random ofa-small weights)")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--archs", type=int, default=60)
    ap.add_argument("--calib", type=int, help="calibration images per arch (default: the checkpoint's)")
    ap.add_argument("--workers", type=int, default=default_workers(), help="processes (default: the CPUs)")
    ap.add_argument("--batch", type=int, default=16, help="archs per batch in the parallel part")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="20 archs")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    n = 20 if args.quick else args.archs
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.ckpt
        if ckpt is None:
            from nas.checkpoints import save_supernet

            torch.manual_seed(args.seed)
            ckpt = str(Path(tmp) / "supernet.pt")
            save_supernet(get_space("ofa-small").supernet(), ckpt)
        ts = load_trained_supernet(ckpt)
        if args.calib:
            ts.calib_images = args.calib
        data = HeldOutData(args.data, ts)
        sp = ts.net.space
        archs = sp.decode(sp.sample_encoded(np.random.default_rng(args.seed), n))
        t0 = time.perf_counter()
        for r in sp.search_resolutions:
            data.at(r)  # the resized images are built once per run in both paths
        meter = SubnetMeter(ts.net, data)
        for r in sp.search_resolutions:
            meter.measure([dict(archs[0], r=[r])])  # builds the shared stem features once per run
        once_s = time.perf_counter() - t0
        measure_extracted(ts.net, data, archs[:1])  # warm-up

        # 1. one process, one thread, interleaved arch by arch
        wall = {"sup": 0.0, "ext": 0.0}
        cpu = {"sup": 0.0, "ext": 0.0}
        acc = {"sup": np.empty(n), "ext": np.empty(n)}
        for i, a in enumerate(archs):
            for who in (("sup", "ext") if i % 2 == 0 else ("ext", "sup")):
                t0, c0 = time.perf_counter(), time.thread_time()
                acc[who][i] = (meter.measure([a]) if who == "sup" else measure_extracted(ts.net, data, [a]))[0]
                wall[who] += time.perf_counter() - t0
                cpu[who] += time.thread_time() - c0
        load_between = _loadavg()

        # 2. --workers processes, batches alternating between the paths
        w = args.workers
        par = {"sup": 0.0, "ext": 0.0}
        par_acc = {"sup": np.empty(n), "ext": np.empty(n)}
        pmeter = SubnetMeter(ts.net, data, workers=w)
        _EXTRACT.update(net=ts.net, data=data)
        with multiprocessing.get_context("fork").Pool(w) as ext_pool:
            pmeter.measure(archs[:2 * w])  # starts the workers
            ext_pool.map(_extract_worker, [archs[:1]] * w)
            for j, s in enumerate(range(0, n, args.batch)):
                batch = archs[s:s + args.batch]
                for who in (("sup", "ext") if j % 2 == 0 else ("ext", "sup")):
                    t0 = time.perf_counter()
                    if who == "sup":
                        par_acc["sup"][s:s + len(batch)] = pmeter.measure(batch)
                    else:
                        parts = [list(p) for p in np.array_split(np.arange(len(batch)), min(len(batch), 2 * w))]
                        res = ext_pool.map(_extract_worker, [[batch[i] for i in p] for p in parts], chunksize=1)
                        for p, r in zip(parts, res):
                            par_acc["ext"][s + np.asarray(p)] = r
                    par[who] += time.perf_counter() - t0
        pmeter.close()
    everything = np.concatenate([acc["sup"], acc["ext"], par_acc["sup"], par_acc["ext"]]).reshape(4, n)
    result = {
        "bench": "supernet_eval",
        "supernet": args.ckpt or "random ofa-small weights (timing only)",
        "space": sp.name, "data": args.data, "held_out_images": data.n_held_out,
        "calibration_images": int(len(data.calib_idx)), "archs": n,
        "once_per_run_s": round(once_s, 3),
        "one_process": {
            "supernet_archs_per_s": round(n / wall["sup"], 2),
            "extracted_archs_per_s": round(n / wall["ext"], 2),
            "supernet_cpu_ms_per_arch": round(1e3 * cpu["sup"] / n, 1),
            "extracted_cpu_ms_per_arch": round(1e3 * cpu["ext"] / n, 1),
            "speedup_supernet_over_extracted_cpu": round(cpu["ext"] / cpu["sup"], 2),
            f"bound_archs_per_s_on_{w}_cores": round(w * n / cpu["sup"], 1),
        },
        "workers": w,
        "parallel": {
            "supernet_archs_per_s": round(n / par["sup"], 2),
            "extracted_archs_per_s": round(n / par["ext"], 2),
            "speedup_supernet_over_extracted": round(par["ext"] / par["sup"], 2),
        },
        "top1_max_abs_diff_between_paths": float(np.ptp(everything, axis=0).max()),
        "top1_mean": float(acc["sup"].mean()),
        "loadavg_between_parts": load_between,
    }
    finish(result, env, args.out)


def _loadavg():
    try:
        return [round(float(x), 2) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "supernet_eval"))
