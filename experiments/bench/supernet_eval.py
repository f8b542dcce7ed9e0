"""``supernet:CKPT`` measurement rate: in-supernet vs extracting each arch into a static network.

Per arch, both contenders do the whole measurement: activate (or extract) the arch, re-calibrate
BatchNorm on the calibration images, score the held-out split. They run interleaved, arch by arch
in alternating order, so other load on the machine hits them alike; the figures are archs/s over
the same archs, and the two paths' top-1 must agree (printed: max difference).

    python experiments/bench/supernet_eval.py --ckpt runs/ps --data digits [--archs 60] [--threads 2]
    python experiments/bench/supernet_eval.py --quick     # no checkpoint: a randomly initialised
                                                          # ofa-small supernet (same cost per arch)

Prints one JSON object (``--out FILE`` also writes it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_vs_ofa import environment, finish  # noqa: E402

from nas.accuracy.supernet import (HeldOutData, SubnetMeter, load_trained_supernet,  # noqa: E402
                                   measure_extracted)
from search_spaces import get_space  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", help="`nas train` run folder or supernet .pt (default: random ofa-small weights)")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--archs", type=int, default=60)
    ap.add_argument("--calib", type=int, help="calibration images per arch (default: the checkpoint's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="20 archs")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
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
        for r in sp.search_resolutions:
            data.at(r)  # the resized images are built once per run in both paths: not timed
        meter = SubnetMeter(ts.net, data)
        t0 = time.perf_counter()
        for r in sp.search_resolutions:
            meter.measure([dict(archs[0], r=[r])])  # warm-up; builds the shared stem features once per run
        shared_s = time.perf_counter() - t0
        measure_extracted(ts.net, data, archs[:1])
        t_sup = t_ext = 0.0
        acc_sup, acc_ext = np.empty(n), np.empty(n)
        for i, a in enumerate(archs):
            order = ("sup", "ext") if i % 2 == 0 else ("ext", "sup")
            for who in order:
                t0 = time.perf_counter()
                if who == "sup":
                    acc_sup[i] = meter.measure([a])[0]
                    t_sup += time.perf_counter() - t0
                else:
                    acc_ext[i] = measure_extracted(ts.net, data, [a])[0]
                    t_ext += time.perf_counter() - t0
    result = {
        "bench": "supernet_eval",
        "supernet": args.ckpt or "random ofa-small weights (timing only)",
        "space": sp.name, "data": args.data, "held_out_images": data.n_held_out,
        "calibration_images": int(len(data.calib_idx)), "archs": n, "threads": args.threads,
        "supernet_archs_per_s": round(n / t_sup, 2),
        "extracted_archs_per_s": round(n / t_ext, 2),
        "once_per_run_s": round(shared_s, 3),
        "speedup_supernet_over_extracted": round(t_ext / t_sup, 3),
        "top1_max_abs_diff_between_paths": float(np.abs(acc_sup - acc_ext).max()),
        "top1_mean": float(acc_sup.mean()),
    }
    finish(result, env, args.out)


if __name__ == "__main__":
    main()
