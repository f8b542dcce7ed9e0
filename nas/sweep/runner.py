"""Running a sweep on Ray Tune: the cluster connection, the generic trainable, resume, collection.

Layout of a sweep's run folder::

    RUN_DIR/sweep.yaml        the sweep file as given
    RUN_DIR/sweep.json        how to resume: trials, Tune experiment path, storage
    RUN_DIR/tune/             Tune's experiment (with the default local storage)
    RUN_DIR/trials/KEY/       each finished trial's folder (result.json, search.png, ...)
    RUN_DIR/summary.csv, RUN_DIR/sweep.png

A trial works in its Tune working directory and hands its folder to Tune as a checkpoint (at most
every few seconds and when done), so Tune persists it to the storage every node reaches; a
restored trial copies its last checkpoint back and resumes the search from it. A trial whose
checkpoint already holds its finished result reports it again without redoing any work, so a
resumed sweep never runs a finished trial twice.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError

from search_spaces.errors import UserError

from ..io import atomic_write_bytes, atomic_write_json, read_json
from ..run_folder import claim_run_folder
from .config import SweepConfig, load_sweep
from .debris import (RAY_TEMP_PREFIX, SCRATCH_ENV, SESSION_ENV, mark_owner, reap_stale_ray_sessions,
                     remove_write_debris, scratch_dir)
from .trials import get_trial_kind

CHECKPOINT_EVERY_S = 5.0
PROBE_TIMEOUT_S = 5.0
EXPERIMENT = "tune"


# ---- the trainable (runs in a Ray worker) -------------------------------------------------------
def tune_trainable(config: dict, finished: dict | None = None) -> None:
    """Ray Tune's function trainable for every trial kind: ``config['trial']`` = {kind, key, params}.

    ``finished``: on a resume, key -> summary of the trials the run folder already holds finished.
    Tune's experiment state can lag the run folder (the driver was killed after a trial was
    collected but before Tune saved that it ended), and would restart such a trial from an older
    checkpoint; it is reported done instead, and nothing is run again.
    """
    from ray import tune

    trial = config["trial"]
    if finished and trial["key"] in finished:
        tune.report({**finished[trial["key"]], "done": True})
        return
    kind = get_trial_kind(trial["kind"])
    work = Path(tempfile.mkdtemp(prefix=f"hwnas-{trial['key']}-", dir=scratch_dir()))
    try:
        starts = 0
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            ckpt.to_directory(str(work))
        meta_path = work / "trial.json"
        if meta_path.is_file():
            starts = json.loads(meta_path.read_text()).get("starts", 0)
        done = work / kind.done_file
        if done.is_file():  # finished before the driver stopped: report it, redo nothing
            summary = json.loads(meta_path.read_text())["summary"]
            tune.report({**summary, "done": True, "starts": starts},
                        checkpoint=tune.Checkpoint.from_directory(str(work)))
            return
        starts += 1
        atomic_write_json(meta_path, {"key": trial["key"], "starts": starts})
        last = [time.perf_counter()]

        def report(info: dict):
            metrics = {k: v for k, v in info.items() if isinstance(v, (int, float))}
            metrics.update(done=False, starts=starts)
            if time.perf_counter() - last[0] > CHECKPOINT_EVERY_S:
                last[0] = time.perf_counter()
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(work)))
            else:
                tune.report(metrics)

        t0 = time.perf_counter()
        summary = kind.run(trial["params"], work, report)
        summary["trial_wall_s"] = time.perf_counter() - t0
        atomic_write_json(meta_path, {"key": trial["key"], "starts": starts, "summary": summary})
        tune.report({**summary, "done": True, "starts": starts},
                    checkpoint=tune.Checkpoint.from_directory(str(work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _trial_name(trial) -> str:
    return trial.config["trial"]["key"]


# ---- the driver's view of finished trials ------------------------------------------------------
def _collect_trial(run_dir: Path, key: str, checkpoint) -> Path | None:
    """Copy a trial's final checkpoint to RUN_DIR/trials/KEY, leaving identical files untouched."""
    if checkpoint is None:
        return None
    dest = run_dir / "trials" / key
    if _finished(run_dir, key):  # a finished trial's results are final: a late or older copy never replaces them
        return dest
    tmp = Path(tempfile.mkdtemp(prefix="hwnas-collect-", dir=scratch_dir()))
    try:
        checkpoint.to_directory(str(tmp))
        if not (tmp / "trial.json").is_file():
            return None
        dest.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            # results only: not the search's checkpoint or study, its lock or a half-written temp file
            if f.is_file() and not (f.name.endswith((".npz", ".db")) or f.name.startswith(".")):
                target = dest / f.name
                if target.is_file() and target.read_bytes() == f.read_bytes():
                    continue  # keep the timestamps of what is already there
                atomic_write_bytes(target, f.read_bytes())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _make_callback(run_dir: Path, keys: list[str], quiet: bool):
    from ray.tune import Callback

    n_trials = len(keys)

    class Collector(Callback):
        """Copies each finished trial into the run folder and prints one line for it."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            key = trial.config["trial"]["key"]
            _collect_trial(run_dir, key, trial.checkpoint)
            # counted from the run folder: a resumed sweep includes what finished before the kill
            self.finished = sum(_finished(run_dir, k) for k in keys)
            r = trial.last_result or {}
            if not quiet:
                top1 = r.get("best_top1")
                lat = r.get("best_latency_ms")
                figs = (f"top-1 {100 * top1:.2f}%  latency {lat:.2f} ms" if isinstance(top1, float)
                        and isinstance(lat, float) else "no feasible arch")
                print(f"[{self.finished}/{n_trials}] {key}: {figs}",
                      file=sys.stderr, flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            if not quiet:  # trial.path is in the run folder's storage; the local path is a temp folder
                print(f"trial {trial.config['trial']['key']} failed: see {trial.path or trial.local_path}",
                      file=sys.stderr, flush=True)

    return Collector()


# ---- the cluster ---------------------------------------------------------------------------------
def _probe(host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise UserError(f"cannot reach a Ray cluster at {host}:{port} ({reason}); start one with "
                        "`ray start --head` or leave out --address to run locally") from None


def resolve_address(address: str) -> str:
    """host:port of an existing cluster ('auto': RAY_ADDRESS or the latest `ray start` here), probed."""
    addr = address.removeprefix("ray://")
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        try:
            addr = canonicalize_bootstrap_address("auto")
        except (ConnectionError, ValueError) as e:
            raise UserError(f"--address auto: no running Ray cluster found ({str(e).splitlines()[0]})") from None
        if addr is None:
            raise UserError("--address auto: no running Ray cluster found; start one with `ray start --head`")
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"--address {address!r}: expected auto or HOST:PORT, e.g. 127.0.0.1:6379")
    _probe(host, int(port))
    return address if address.startswith("ray://") else f"{host}:{port}"


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's node IP stays the loopback address


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rpartition(":")[0]
    return host in ("localhost", "::1") or host.startswith("127.")


def _check_cpus(address: str | None, cpus) -> None:
    if not address and (cpus is None or cpus < 1):
        raise UserError(f"--cpus must be a positive integer, got {cpus}")


class RayContext:
    """Connects to a cluster (``address``) or starts a local one with ``cpus`` CPUs; stops what it started."""

    def __init__(self, address: str | None = None, cpus: int = 2):
        self.address, self.cpus = address, cpus
        self.temp_dir = None

    def __enter__(self):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # experiment state: every 2 s
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        if not self.address:
            # a loopback-only instance for one command: no token written to ~/.ray
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        import logging

        import ray

        _check_cpus(self.address, self.cpus)
        reap_stale_ray_sessions("/tmp")  # what a killed driver left: its Ray processes, temp and trial folders
        self._loopback(self.address is None or _is_loopback(self.address))
        if not self.address:
            # a private temp dir: this sweep never joins (or stops) anyone else's Ray; the trials'
            # scratch folders live inside it, so removing it (here or after a kill) removes them
            self.temp_dir = tempfile.mkdtemp(prefix=RAY_TEMP_PREFIX, dir="/tmp")
            mark_owner(self.temp_dir)
            os.makedirs(os.path.join(self.temp_dir, "scratch"))
            os.environ[SESSION_ENV] = self.temp_dir
            os.environ[SCRATCH_ENV] = os.path.join(self.temp_dir, "scratch")
        env = {k: v for k, v in os.environ.items() if k.startswith("HWNAS_")}
        common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                      runtime_env={"env_vars": env} if env else None)
        try:
            if self.address:
                addr = resolve_address(self.address)
                ray.init(address=addr, **common)
            else:
                ray.init(address="local", num_cpus=int(self.cpus), _temp_dir=self.temp_dir,
                         _node_ip_address="127.0.0.1", **common)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _loopback(self, on: bool):
        """Keep a one-machine Ray on 127.0.0.1: Ray otherwise rewrites loopback to the host's interface IP."""
        from ray._private import ray_constants

        self._saved = (os.environ.get(LOOPBACK_ENV), ray_constants.ENABLE_RAY_CLUSTER)
        if on:
            os.environ[LOOPBACK_ENV] = "0"  # read by the processes Ray starts
            ray_constants.ENABLE_RAY_CLUSTER = False  # read by this one

    def __exit__(self, *exc):
        import ray
        from ray._private import ray_constants

        ray.shutdown()
        env, ray_constants.ENABLE_RAY_CLUSTER = self._saved
        if env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = env
        if self.temp_dir:
            os.environ.pop(SESSION_ENV, None)
            os.environ.pop(SCRATCH_ENV, None)
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        return False


# ---- the public entry points ---------------------------------------------------------------------
def _trainable(cfg: SweepConfig, finished: dict | None = None):
    from ray import tune

    fn = tune.with_parameters(tune_trainable, finished=finished) if finished else tune_trainable
    return tune.with_resources(fn, {"cpu": cfg.resources.cpus_per_trial})


def _finished_summaries(run_dir: Path, keys: list[str]) -> dict:
    """key -> summary of each trial the run folder holds finished."""
    out = {}
    for k in keys:
        if _finished(run_dir, k):
            meta = json.loads((run_dir / "trials" / k / "trial.json").read_text())
            out[k] = {**meta["summary"], "starts": meta.get("starts", 1)}
    return out


def run_sweep(sweep, out: str | Path | None = None, *, address: str | None = None, storage: str | None = None,
              cpus: int = 2, quiet: bool = False) -> dict:
    """Run every trial of a sweep (a sweep.yaml path, a dict or a SweepConfig) on Ray Tune.

    ``address``: an existing cluster ('auto' or HOST:PORT); by default a local Ray with ``cpus``
    CPUs starts and stops with the call. ``storage``: where Tune keeps trials and checkpoints (a
    path every node reaches, or an object-store URL); by default the run folder. Returns the
    summary (rows, paths).
    """
    cfg = sweep if isinstance(sweep, SweepConfig) else load_sweep(sweep)
    _check_cpus(address, cpus)
    trials = cfg.trials(check=True)  # each trial's objects are built here, before Ray starts
    from datetime import datetime

    if address:  # an unreachable cluster is an error before anything is written
        resolve_address(address)
    run_dir = Path(out) if out else Path("runs") / f"sweep-{cfg.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    with claim_run_folder(run_dir, resume=False, what="sweep run folder", marker="sweep.json") as folder:
        run_dir = folder.resolve()
        if isinstance(sweep, (str, Path)):
            atomic_write_bytes(run_dir / "sweep.yaml", Path(sweep).read_bytes())
        storage_path = storage or str(run_dir)
        name = EXPERIMENT if storage is None else run_dir.name
        exp_path = storage_path.rstrip("/") + "/" + name
        atomic_write_json(run_dir / "sweep.json", {"config": cfg.model_dump(), "storage": storage_path,
                                                   "name": name, "experiment_path": exp_path,
                                                   "trials": [t["key"] for t in trials]})
        _say(quiet, f"sweep {cfg.name}: {len(trials)} trials, {_where(address, cpus)}; run folder {run_dir}")
        with RayContext(address, cpus):
            from ray import tune

            tuner = tune.Tuner(
                _trainable(cfg),
                param_space={"trial": tune.grid_search(trials)},
                tune_config=tune.TuneConfig(trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                                            reuse_actors=True),
                run_config=tune.RunConfig(
                    name=name, storage_path=storage_path, verbose=0,
                    failure_config=tune.FailureConfig(max_failures=cfg.resources.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    callbacks=[_make_callback(run_dir, [t["key"] for t in trials], quiet)]))
            grid = tuner.fit()
            return _finish(run_dir, cfg, grid, quiet)


def resume_sweep(run_dir: str | Path, *, address: str | None = None, cpus: int = 2, quiet: bool = False) -> dict:
    """Finish a sweep whose driver stopped: finished trials are kept, unfinished ones resume."""
    _check_cpus(address, cpus)
    run_dir = Path(run_dir)
    if not (run_dir / "sweep.json").is_file():
        raise UserError(f"--resume {str(run_dir)!r}: no sweep.json there; is it a sweep run folder?")
    with claim_run_folder(run_dir, resume=True, what="sweep run folder", marker="sweep.json") as folder:
        run_dir = folder.resolve()
        remove_write_debris(run_dir)
        meta = read_json(run_dir / "sweep.json", "sweep state")
        try:
            cfg = SweepConfig.model_validate(meta["config"])
            exp_path = str(meta["experiment_path"])
        except (ValidationError, KeyError, TypeError):
            raise UserError(f"sweep state {str(run_dir / 'sweep.json')!r} is damaged or from another version; "
                            "start the sweep again with another --out") from None
        trials = cfg.trials(check=True)  # files a trial reads may have gone since the first start
        keys = [t["key"] for t in trials]
        done = [k for k in keys if _finished(run_dir, k)]
        _say(quiet, f"sweep {cfg.name}: resuming, {len(done)} of {len(keys)} trials already done, "
                    f"{_where(address, cpus)}; run folder {run_dir}")
        with RayContext(address, cpus):
            from ray import tune

            if not tune.Tuner.can_restore(exp_path):
                raise UserError(f"--resume: no Tune experiment at {exp_path!r} to restore")
            # the restored run config brings back the first start's Collector, which counts
            # finished trials from the run folder, so progress reads [k/N] over both starts
            tuner = tune.Tuner.restore(exp_path, trainable=_trainable(cfg, _finished_summaries(run_dir, keys)),
                                       resume_unfinished=True,
                                       resume_errored=True)
            grid = tuner.fit()
            return _finish(run_dir, cfg, grid, quiet)


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(line, file=sys.stderr, flush=True)


def _where(address: str | None, cpus: int) -> str:
    return f"on the Ray cluster at {address}" if address else f"on a local Ray with {cpus} CPUs"


def _finished(run_dir: Path, key: str) -> bool:
    meta = run_dir / "trials" / key / "trial.json"
    try:
        return "summary" in json.loads(meta.read_text())
    except (OSError, ValueError, TypeError):
        return False


def _finish(run_dir: Path, cfg: SweepConfig, grid, quiet: bool) -> dict:
    from .report import write_reports

    rows = []
    for res in grid:
        trial = res.config["trial"]
        folder = _collect_trial(run_dir, trial["key"], res.checkpoint)
        m = res.metrics or {}
        status = "ERROR" if res.error is not None else ("TERMINATED" if m.get("done") else "INCOMPLETE")
        row = {"trial": trial["key"], "status": status, **{k: v for k, v in trial["params"].items()
                                                           if k != "strategy_params"}}
        for k in ("best_top1", "best_latency_ms", "best_macs_m", "n_evaluated", "pareto_size", "search_wall_s",
                  "trial_wall_s", "starts", *get_trial_kind(trial["kind"]).columns):
            row[k] = m.get(k)
        row["result"] = str(folder / get_trial_kind(trial["kind"]).done_file) if folder else ""
        rows.append(row)
    rows.sort(key=lambda r: r["trial"])
    return write_reports(run_dir, rows, quiet)
