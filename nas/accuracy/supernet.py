"""``supernet:CKPT``: top-1 measured on held-out images with a trained weight-shared supernet.

For each arch: activate it, re-calibrate BatchNorm on a few training batches (Once-for-All's
practice: subnets share the weights but not the activation statistics), and count correct
predictions on the held-out split. Everything per arch is tensor work: the calibration and
held-out images are resized and normalised once per resolution, the calibration is one forward
pass in training mode with BatchNorm momentum 1 (the running statistics become the statistics of
the calibration images), and the held-out split is scored in one batched forward.

CKPT is a ``nas train`` run folder, its ``supernet.pt`` or ``checkpoint.pt``, a supernet written by
``nas import-weights``, or ``ofa:NAME`` (a released Once-for-All supernet, see ``nas.ofa_weights``).
The split (held-out fraction and seed), the normalisation and the class list follow the training
run when its ``checkpoint.pt`` is beside the supernet, so the held-out images are the ones the
trainer held out. The estimator declares ``cost_s`` (seconds per arch, measured as it runs), which
marks it expensive for the search (cheap strategies and small default budgets).
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from search_spaces.errors import UserError

DEFAULT_CALIB_IMAGES = 256   # when the checkpoint does not say (Once-for-All uses 2000 on ImageNet)
CACHE_FILE = "supernet_accuracy.json"
CACHE_FORMAT = "hwnas.supernet-accuracy-cache"


# ---- the checkpoint and what the training run knew ------------------------------------------
@dataclass
class TrainedSupernet:
    """A supernet with what its training run knew about the data (when known)."""

    net: torch.nn.Module
    source: str                      # what the user named (path or ofa:NAME)
    fingerprint: str                 # identifies the weights (for the per-arch cache)
    classes: list[str] | None = None
    held_out: float = 0.2
    seed: int = 0
    calib_images: int = DEFAULT_CALIB_IMAGES
    data: str | None = None          # the data the run trained on (default for --data)


def _file_fingerprint(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_trained_supernet(spec: str, space=None) -> TrainedSupernet:
    """The supernet named by ``spec`` (see the module doc), checked against ``space`` when given."""
    from nas.checkpoints import load_supernet

    space_name = getattr(space, "name", space)
    if spec.startswith("ofa:"):
        from nas.ofa_weights import load_released

        net, path = load_released(spec[4:], space_name)
        return TrainedSupernet(net, spec, _file_fingerprint(path))
    p = Path(spec)
    if p.is_dir():
        if (p / "supernet.pt").is_file():
            p = p / "supernet.pt"
        elif (p / "checkpoint.pt").is_file():
            p = p / "checkpoint.pt"
        else:
            raise UserError(f"supernet {spec!r}: the folder holds neither supernet.pt nor checkpoint.pt; "
                            "accepted: a `nas train` run folder, a supernet .pt file or ofa:NAME")
    if not p.is_file():
        raise UserError(f"supernet checkpoint {spec!r} does not exist; accepted: a `nas train` run folder, "
                        "a supernet .pt file or ofa:NAME")
    train_state = None
    train_ckpt = p.parent / "checkpoint.pt"
    if p.name == "checkpoint.pt" or train_ckpt.is_file():
        from nas.train.checkpoint import load_training_state

        train_state = load_training_state(p if p.name == "checkpoint.pt" else train_ckpt)
    if p.name == "checkpoint.pt":
        net = _supernet_from_training_state(train_state, str(p), space_name)
    else:
        from nas.ofa_weights import is_ofa_file, load_ofa_file

        if is_ofa_file(p):
            net = load_ofa_file(p, space_name)
        else:
            net = load_supernet(p, space_name)
    ts = TrainedSupernet(net, spec, _file_fingerprint(p))
    if train_state is not None:
        cfg = train_state.get("config", {})
        ts.classes = [str(c) for c in train_state.get("classes", [])] or None
        ts.held_out = float(cfg.get("held_out", 0.2))
        ts.seed = int(cfg.get("seed", 0))
        ts.calib_images = int(cfg.get("calib_batches", 4)) * int(cfg.get("batch_size", 64))
        ts.data = cfg.get("data")
    return ts


def _supernet_from_training_state(st: dict, source: str, space_name: str | None):
    from search_spaces import get_space
    from search_spaces.ofa.space import OFASpace

    name = st.get("space")
    if space_name is not None and name != space_name:
        raise UserError(f"training checkpoint {source!r} holds a supernet of space {name!r}, not {space_name!r}")
    space = get_space(name)
    if not isinstance(space, OFASpace):
        raise UserError(f"training checkpoint {source!r}: space {name!r} has no Once-for-All supernet to measure")
    if st.get("space_params"):
        space = space.with_params(st["space_params"])
    net = space.supernet(dropout=float(st.get("config", {}).get("dropout", 0.1)))
    try:
        net.load_state_dict(st["supernet"])
    except (KeyError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"training checkpoint {source!r} has weights that do not fit space {name!r}: {first}") from None
    return net


# ---- the data, prepared once per resolution -------------------------------------------------
class HeldOutData:
    """Calibration and held-out tensors of one dataset, resized and normalised once per resolution."""

    def __init__(self, data_spec: str, ts: TrainedSupernet, image_size: int | None = None):
        from nas.data import BatchTransform, load_dataset, split_held_out

        ds = load_dataset(data_spec, image_size)
        n_out = ts.net.classifier.out_features
        if ts.classes is not None and list(ds.classes) != list(ts.classes):
            raise UserError(f"data {data_spec!r} has classes {_short(ds.classes)} but supernet {ts.source!r} "
                            f"was trained on {_short(ts.classes)}; give the data it was trained on")
        if ds.n_classes != n_out:
            raise UserError(f"data {data_spec!r} has {ds.n_classes} classes but supernet {ts.source!r} "
                            f"predicts {n_out}; give data with the checkpoint's classes")
        tr, ho = split_held_out(ds.labels, ts.held_out, ts.seed)
        self.spec = data_spec
        self.train_images = ds.images[torch.as_tensor(tr)]
        self.train_labels = ds.labels[torch.as_tensor(tr)]
        self.held_images = ds.images[torch.as_tensor(ho)]
        self.held_labels = ds.labels[torch.as_tensor(ho)]
        mean, std = ds.subset(tr).mean_std()
        self.tf = BatchTransform(mean, std)
        g = torch.Generator().manual_seed(ts.seed + 12345)
        n_cal = min(ts.calib_images, len(tr))
        self.calib_idx = torch.randperm(len(tr), generator=g)[:n_cal]
        self._by_res: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def n_held_out(self) -> int:
        return len(self.held_labels)

    def at(self, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(calibration images, held-out images) at ``resolution``, normalised; built once."""
        if resolution not in self._by_res:
            cal = self.tf.eval(self.train_images[self.calib_idx], resolution).contiguous()
            held = self.tf.eval(self.held_images, resolution).contiguous()
            self._by_res[resolution] = (cal, held)
        return self._by_res[resolution]


def _short(classes: Sequence[str], n: int = 6) -> str:
    c = list(classes)
    return "[" + ", ".join(c[:n]) + (f", ... ({len(c)} in all)" if len(c) > n else "") + "]"


# ---- measuring ------------------------------------------------------------------------------
def _batchnorms(net: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


class SubnetMeter:
    """Measures subnets of one supernet on one dataset, sharing all per-arch-independent work.

    Per arch the work is: ``set_active``, one training-mode forward over the calibration images
    with BatchNorm momentum 1 (each active slice of the running statistics becomes exactly those
    images' statistics; other widths' shared statistics are overwritten too, harmless because
    every arch is re-calibrated before it is measured), ``eval()`` and one batched forward over
    the held-out split. What does not depend on the arch is done once per resolution: resizing
    and normalising the images, and the stem plus the fixed first block (same weights for every
    subnet, and their BatchNorm statistics depend on the calibration images alone), whose outputs
    -- training-mode on the calibration images, eval-mode on the held-out ones -- are kept while
    they fit in ``shared_cache_mb``. Activations run channels-last: on CPU the depthwise and
    1x1 convolutions of these small feature maps are several times faster in that layout.
    The classifier's dropout runs in the calibration pass but comes after the last BatchNorm.

    ``workers`` > 1 measures batches of archs in that many forked processes of ``threads`` torch
    threads each (default 1, also when measuring in this process: archs are independent, and on
    a shared or small machine processes scale where torch's own threads, which wait for each
    other after every small op, do not -- two threads under load ran 7x slower than one). The workers measure
    copies of the supernet: the caller's supernet is then not left calibrated for the last arch.
    """

    def __init__(self, net, data: HeldOutData, eval_batch: int = 1024, shared_cache_mb: float = 512.0,
                 workers: int = 1, threads: int = 1):
        self.net = net.to(memory_format=torch.channels_last)
        self.data = data
        self.eval_batch = eval_batch
        self.cache_bytes = int(shared_cache_mb * 2 ** 20)
        self.workers = max(1, int(workers))
        self.threads = max(1, int(threads))  # torch threads of each measuring process
        self._shared: dict[int, tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]] = {}
        self._stem_bns = _batchnorms(torch.nn.ModuleList([net.stem, net.blocks[0]]))
        self._pool = None

    def measure(self, archs: Sequence[dict]) -> np.ndarray:
        """Held-out top-1 (fraction) of each arch, measured inside the supernet (no extraction).

        With one worker the supernet afterwards holds the last arch, active and BatchNorm-calibrated,
        in eval mode.
        """
        if self.workers == 1 or len(archs) < 2:
            return self._measure_here(archs)
        try:
            pool = self._get_pool()
        except (AssertionError, OSError):  # e.g. inside a daemonic process, which may not fork children
            self.workers = 1
            return self._measure_here(archs)
        parts = [list(p) for p in np.array_split(np.arange(len(archs)), min(len(archs), 2 * self.workers))]
        results = pool.map(_worker_measure, [[archs[i] for i in p] for p in parts], chunksize=1)
        out = np.empty(len(archs))
        for p, r in zip(parts, results):
            out[p] = r
        return out

    def _get_pool(self):
        global _FORKED_METER
        if self._pool is None:
            for r in self.net.space.search_resolutions:
                self._shared_features(r)  # built once here, inherited by every worker
            _FORKED_METER = self  # what the forked workers measure with (a copy each, taken at fork)
            try:
                self._pool = multiprocessing.get_context("fork").Pool(self.workers, initializer=_worker_init)
            finally:
                _FORKED_METER = None
            weakref.finalize(self, self._pool.terminate)
        return self._pool

    def close(self) -> None:
        """End the worker processes (they also end with the meter or the program)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    @torch.no_grad()
    def _shared_features(self, resolution: int):
        """(calibration features, held-out features, stem BN statistics) at ``resolution``, or None."""
        if resolution in self._shared:
            return self._shared[resolution]
        cal, held = self.data.at(resolution)
        net = self.net
        momenta = [bn.momentum for bn in self._stem_bns]
        try:
            for bn in self._stem_bns:
                bn.momentum = 1.0  # the running statistics become the calibration images' own
            net.train()
            h_cal = net.shared_features(cal.contiguous(memory_format=torch.channels_last))
        finally:
            for bn, m in zip(self._stem_bns, momenta):
                bn.momentum = m
        net.eval()
        h_held = net.shared_features(held.contiguous(memory_format=torch.channels_last))
        stats = [t.clone() for bn in self._stem_bns for t in (bn.running_mean, bn.running_var)]
        entry = (h_cal, h_held, stats)
        used = sum(a.numel() * a.element_size() for e in self._shared.values() for a in e[:2])
        if used + h_cal.numel() * h_cal.element_size() + h_held.numel() * h_held.element_size() <= self.cache_bytes:
            self._shared[resolution] = entry
        return entry

    def _measure_here(self, archs: Sequence[dict]) -> np.ndarray:
        labels = self.data.held_labels
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)  # as in the workers: see the class doc
        try:
            return np.array([float((self.held_out_logits(a).argmax(1) == labels).sum()) / max(1, len(labels))
                             for a in archs])
        finally:
            torch.set_num_threads(before)

    @torch.no_grad()
    def held_out_logits(self, arch: dict) -> torch.Tensor:
        """Logits of ``arch`` on the held-out images, BatchNorm re-calibrated, in this process.

        Afterwards the supernet holds ``arch``, active and calibrated, in eval mode.
        """
        net = self.net
        bns = _batchnorms(net)
        momenta = [bn.momentum for bn in bns]
        try:
            h_cal, h_held, stem_stats = self._shared_features(int(arch["r"][0]))
            for t, v in zip((t for bn in self._stem_bns for t in (bn.running_mean, bn.running_var)), stem_stats):
                t.copy_(v)  # the stem's statistics at this resolution (it is not re-run below)
            for bn in bns:
                bn.momentum = 1.0
            net.train()
            net.set_active(arch)
            net.forward_from_shared(h_cal)
        finally:
            for bn, m in zip(bns, momenta):
                bn.momentum = m
        net.eval()  # re-derives the frozen eval tensors (BatchNorm folded) of the active arch
        return torch.cat([net.forward_from_shared(h_held[s:s + self.eval_batch])
                          for s in range(0, len(h_held), self.eval_batch)])


_FORKED_METER: SubnetMeter | None = None


def _worker_init() -> None:
    torch.set_num_threads(_FORKED_METER.threads)


def _worker_measure(archs: list[dict]) -> np.ndarray:
    return _FORKED_METER._measure_here(archs)


def default_workers() -> int:
    """Worker processes for measuring: the CPUs this process may run on (``HWNAS_MEASURE_WORKERS``
    overrides), and 1 where processes cannot be forked."""
    if "fork" not in multiprocessing.get_all_start_methods() or multiprocessing.current_process().daemon:
        return 1
    env = os.environ.get("HWNAS_MEASURE_WORKERS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise UserError(f"HWNAS_MEASURE_WORKERS={env!r}: give a whole number of processes") from None
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def measure_supernet(net, data: HeldOutData, archs: Sequence[dict], eval_batch: int = 1024) -> np.ndarray:
    """Held-out top-1 of each arch inside the supernet (one-off; keep a ``SubnetMeter`` to reuse work)."""
    return SubnetMeter(net, data, eval_batch).measure(archs)


@torch.no_grad()
def measure_extracted(net, data: HeldOutData, archs: Sequence[dict], eval_batch: int = 1024) -> np.ndarray:
    """The same measurement through a static copy of each subnet (``extract``): the slow reference.

    Same data layout as ``SubnetMeter`` (channels-last), so a speed comparison shows what
    measuring inside the supernet saves, not what the layout does.
    """
    from search_spaces.ofa.supernet import recalibrate_bn

    cl = torch.channels_last
    out = np.empty(len(archs))
    for i, arch in enumerate(archs):
        cal, held = (t.contiguous(memory_format=cl) for t in data.at(int(arch["r"][0])))
        sub = net.extract(arch).to(memory_format=cl)
        recalibrate_bn(sub, [cal])
        sub.eval()
        correct = 0
        for s in range(0, len(held), eval_batch):
            correct += int((sub(held[s:s + eval_batch]).argmax(1) == data.held_labels[s:s + eval_batch]).sum())
        out[i] = correct / max(1, data.n_held_out)
    return out


# ---- the estimator --------------------------------------------------------------------------
def parse_spec(arg: str) -> dict:
    """``CKPT[,data=SPEC][,calib=N][,workers=N]`` -> {"ckpt", "data", "calib", "workers"} (the CLI
    appends --data here)."""
    parts = arg.split(",")
    opts = {"ckpt": parts[0], "data": None, "calib": None, "workers": None}
    for p in parts[1:]:
        k, sep, v = p.partition("=")
        if not sep or k not in ("data", "calib", "workers"):
            raise UserError(f"supernet:{arg}: unknown option {p!r}; accepted: "
                            "supernet:CKPT[,data=SPEC][,calib=N][,workers=N]")
        opts[k] = v
    for k, what in (("calib", "a positive number of images"), ("workers", "a positive number of processes")):
        if opts[k] is not None:
            try:
                opts[k] = int(opts[k])
                assert opts[k] >= 1
            except (ValueError, AssertionError):
                raise UserError(f"supernet:{arg}: {k} must be {what}") from None
    return opts


class SupernetAccuracy:
    """Measured held-out top-1 of subnets of a trained supernet; declares ``cost_s`` (expensive)."""

    name = "supernet"

    def __init__(self, space, ckpt: str, data: str | None = None, calib_images: int | None = None,
                 progress: bool = True, stream=None, workers: int | None = None):
        self.space = space
        self.trained = load_trained_supernet(ckpt, space)
        if calib_images is not None:
            self.trained.calib_images = calib_images
        data = data or self.trained.data
        if data is None:
            raise UserError(f"supernet {ckpt!r}: give the data to measure on (--data DIR|digits|FILE.npz)")
        self.data = HeldOutData(data, self.trained)
        self.net = self.trained.net.eval()
        self.meter = SubnetMeter(self.net, self.data, workers=default_workers() if workers is None else workers)
        self.cost_s = 0.05   # seconds per arch until measured (declares the estimator expensive)
        self.progress = progress
        self.stream = stream if stream is not None else sys.stderr  # looked up now, not at import
        self.n_measured = 0
        self.measure_s = 0.0
        self._cache: dict[tuple, float] = {}
        self._cache_path: Path | None = None
        self._last_print = 0.0

    @property
    def metric(self) -> str:
        return f"top-1 (fraction) of subnets of this supernet on the held-out images of {self.data.spec}"

    @property
    def source(self) -> str:
        return (f"measured on {self.data.spec}, {self.data.n_held_out} held-out images "
                f"(supernet {self.trained.source}, BatchNorm re-calibrated on {len(self.data.calib_idx)} "
                "training images per arch)")

    def _key(self) -> dict:
        return {"format": CACHE_FORMAT, "weights": self.trained.fingerprint, "data": self.data.spec,
                "n_held_out": self.data.n_held_out, "calib": len(self.data.calib_idx), "space": self.space.name}

    def use_run_dir(self, run_dir: str | Path) -> None:
        """Keep the per-arch measurements in ``run_dir`` so a resumed search never measures twice."""
        from nas.io import read_json

        self._cache_path = Path(run_dir) / CACHE_FILE
        if self._cache_path.is_file():
            doc = read_json(self._cache_path, "supernet accuracy cache")
            if not isinstance(doc, dict) or doc.get("key") != self._key():
                raise UserError(f"{str(self._cache_path)!r} holds measurements of another supernet or data; "
                                "resume with the same --accuracy and --data, or use another --out")
            for row, acc in doc.get("rows", []):
                self._cache[tuple(int(v) for v in row)] = float(acc)

    def _save_cache(self) -> None:
        if self._cache_path is None:
            return
        from nas.io import atomic_write_json

        rows = [[list(k), v] for k, v in self._cache.items()]
        atomic_write_json(self._cache_path, {"key": self._key(), "rows": rows})

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.int64)
        Xc = self.space.canonical(X)
        keys = [tuple(r.tolist()) for r in Xc]
        todo = {k: i for i, k in enumerate(keys) if k not in self._cache}
        if todo:
            rows = np.array(list(todo.keys()), dtype=np.int64)
            archs = self.space.decode(rows)
            chunk = 16
            for s in range(0, len(archs), chunk):
                t0 = time.perf_counter()
                acc = self.meter.measure(archs[s:s + chunk])
                dt = time.perf_counter() - t0
                for k, a in zip(list(todo.keys())[s:s + chunk], acc):
                    self._cache[k] = float(a)
                self.n_measured += len(acc)
                self.measure_s += dt
                self.cost_s = self.measure_s / self.n_measured
                self._report(len(archs) - s - len(acc))
            self._save_cache()
        return np.array([self._cache[k] for k in keys])

    def _report(self, left: int) -> None:
        if not self.progress:
            return
        now = time.perf_counter()
        if now - self._last_print < (0.5 if self.stream.isatty() else 10.0) and left:
            return
        self._last_print = now
        rate = self.n_measured / max(self.measure_s, 1e-9)
        eta = f", ETA {left / rate:.0f} s for this batch" if left and math.isfinite(rate) else ""
        self.stream.write(f"supernet: {self.n_measured} archs measured, {rate:.1f} evaluations/s{eta}\n")
        self.stream.flush()
