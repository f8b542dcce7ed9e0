"""`nas sweep`: grids of searches on Ray Tune — outputs, resume after kill -9, a cluster, bad input."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NAS = [str(Path(sys.executable).with_name("nas"))]
RAY = str(Path(sys.executable).with_name("ray"))


def write_sweep(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump(sections))
    return path


def read_rows(run: Path) -> list[dict]:
    with open(run / "summary.csv") as f:
        return list(csv.DictReader(f))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_using(marker: str) -> list[int]:
    """PIDs of processes whose command line mentions ``marker`` (our head's private temp dir)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker in (p / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return [p for p in pids if p != os.getpid()]


def _kill_all(marker: str):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids_using(marker)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if pids:
            time.sleep(1.0)


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on 127.0.0.1 in a private temp dir, stopped by its own PIDs (never anyone else's Ray)."""
    temp = tempfile.mkdtemp(prefix="hwnas-rayhead-", dir="/tmp")
    port = _free_port()
    # loopback only: Ray would otherwise advertise the host's interface address
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_AUTH_MODE": "disabled"}
    subprocess.run([RAY, "start", "--head", "--num-cpus", "2", "--port", str(port), "--node-ip-address",
                    "127.0.0.1", "--include-dashboard=false", "--temp-dir", temp, "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, timeout=120)
    yield f"127.0.0.1:{port}"
    _kill_all(temp)
    subprocess.run(["rm", "-rf", temp])


def test_sixteen_trial_sweep_writes_summary_and_plot(tmp_path, note10, nas_cli):
    spec = write_sweep(tmp_path / "sweep.yaml", name="sixteen",
                       fixed={"space": "ofa", "budget": 300, "strategy_params": {"evolution": {"population": 50},
                                                                                  "optuna-nsga2": {"population": 50}}},
                       grid={"target": ["pixel", note10], "latency_ms": [30, 60],
                             "strategy": ["evolution", "optuna-nsga2"], "seed": [0, 1]})
    # how long this takes is measured by experiments/bench/sweep_wall.py, not asserted here
    code, out, err = nas_cli("sweep", spec, "--out", tmp_path / "run", "--cpus", "2")
    assert code == 0, err
    assert err.startswith("sweep sixteen: 16 trials")  # something is printed before the first trial ends
    assert "[16/16]" in err
    rows = read_rows(tmp_path / "run")
    assert len(rows) == 16 and all(r["status"] == "TERMINATED" for r in rows)
    assert {r["target"] for r in rows} == {"pixel", "note10"}
    for r in rows:
        assert float(r["best_latency_ms"]) <= float(r["latency_ms"])
        assert int(r["n_evaluated"]) == 300
        res = json.loads(Path(r["result"]).read_text())
        assert res["strategy"] == r["strategy"] and res["seed"] == int(r["seed"])
    assert (tmp_path / "run" / "sweep.png").stat().st_size > 10_000
    assert "TERMINATED" in out and "summary.csv" in out
    # the optuna trials ran in their own run folders (their study lives in the checkpoint there)
    assert any((tmp_path / "run" / "trials").glob("*optuna-nsga2*"))


def test_kill_driver_then_resume_reruns_nothing_finished(tmp_path, ray_head):
    spec = write_sweep(tmp_path / "sweep.yaml", name="killme", fixed={"space": "ofa", "budget": 3000},
                       grid={"target": ["pixel"], "latency_ms": [40, 50, 60, 70],
                             "strategy": ["evolution"], "seed": [0, 1]})
    run = tmp_path / "run"
    driver = subprocess.Popen([*NAS, "sweep", str(spec), "--out", str(run), "--address", ray_head],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 150
    while time.time() < deadline and len(list(run.glob("trials/*/result.json"))) < 2:
        assert driver.poll() is None, driver.stderr.read().decode()
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = {p.parent.name: (p.stat().st_mtime_ns, json.loads(p.read_text())["created"])
              for p in run.glob("trials/*/result.json")}
    assert 2 <= len(before) < 8, "kill came too late to test resume"
    done = subprocess.run([*NAS, "sweep", "--resume", str(run), "--address", ray_head],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # progress counts the trials finished before the kill: it starts with them and ends at [8/8]
    assert re.search(r"resuming, [1-7] of 8 trials already done", done.stderr), done.stderr
    assert "[8/8]" in done.stderr
    rows = read_rows(run)
    assert len(rows) == 8 and all(r["status"] == "TERMINATED" for r in rows)
    for key, (mtime, created) in before.items():
        p = run / "trials" / key / "result.json"
        assert p.stat().st_mtime_ns == mtime and json.loads(p.read_text())["created"] == created
        assert json.loads((run / "trials" / key / "trial.json").read_text())["starts"] == 1
    assert len(list(run.glob("trials/*/result.json"))) == 8


def test_sweep_on_an_existing_cluster(tmp_path, ray_head, nas_cli):
    spec = write_sweep(tmp_path / "sweep.yaml", fixed={"space": "ofa", "budget": 200, "target": "pixel"},
                       grid={"latency_ms": [40, 60], "strategy": ["random", "evolution"]})
    code, out, err = nas_cli("sweep", spec, "--out", tmp_path / "run", "--address", ray_head, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert [r["status"] for r in summary["rows"]] == ["TERMINATED"] * 4


def test_random_draws_add_trials(tmp_path):
    from nas.sweep import load_sweep

    cfg = load_sweep(write_sweep(tmp_path / "s.yaml", fixed={"budget": 100},
                                 grid={"strategy": ["evolution", "random"]},
                                 random={"samples": 3, "seed": 0, "latency_ms": {"uniform": [40, 80]}}))
    trials = cfg.trials()
    assert len(trials) == 6 and len({t["params"]["latency_ms"] for t in trials}) == 6
    assert all(40 <= t["params"]["latency_ms"] <= 80 for t in trials)
    assert [t["key"] for t in trials] == [t["key"] for t in cfg.trials()]  # deterministic


@pytest.mark.parametrize("sections, expect", [
    ({"grdi": {}}, ["unknown key 'grdi'", "accepted: name, kind, fixed, grid, random, resources"]),
    ({"grid": {"strategy": ["evo"], "latency_ms": [40]}}, ["unknown strategy 'evo'", "evolution", "random"]),
    ({"grid": {"target": ["pixle"], "latency_ms": [40]}}, ["unknown target 'pixle'", "pixel"]),
    ({"fixed": {"latency_ms": 40, "budgett": 5}}, ["fixed.budgett", "accepted:", "budget"]),
    ({"grid": {"latency_ms": ["fast"]}}, ["latency_ms: latency 'fast' is not understood", "80ms"]),
    ({"fixed": {"latency_ms": 40}, "resources": {"gpus": 1}}, ["unknown key 'resources.gpus'", "cpus_per_trial"]),
    ({"kind": "bogus", "fixed": {"latency_ms": 40}}, ["unknown trial kind 'bogus'", "search"]),
    # each trial's objects are built before Ray starts (these used to fail inside Ray workers)
    ({"fixed": {"latency_ms": 40, "accuracy": "predictor:/nonexistent.json"}}, ["'/nonexistent.json' does not exist"]),
    ({"fixed": {"latency_ms": 40, "strategy_params": {"evolution": {"bogus": 1}}}}, ["trial 000", "bogus"]),
    ({"fixed": {"latency_ms": 40, "strategy_params": {"evolutoin": {}}}}, ["strategy_params.evolutoin", "evolution"]),
    ({"grid": {"latency_ms": [40, 2]}}, ["trial 001 (latency_ms=2)", "smallest achievable"]),
])
def test_bad_sweep_file_is_one_line_naming_field_and_accepted_values(tmp_path, nas_cli, sections, expect):
    code, _, err = nas_cli("sweep", write_sweep(tmp_path / "bad.yaml", **sections), "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1, err
    for e in expect:
        assert e in err
    assert not (tmp_path / "run").exists()


def test_unreachable_address_is_a_quick_one_line_error(tmp_path, nas_cli):
    spec = write_sweep(tmp_path / "s.yaml", fixed={"latency_ms": 40})
    code, _, err = nas_cli("sweep", spec, "--address", f"127.0.0.1:{_free_port()}", "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "cannot reach a Ray cluster" in err
    code, _, err = nas_cli("sweep", spec, "--address", "nowhere", "--out", tmp_path / "run")
    assert code == 2 and "expected auto or HOST:PORT" in err


def test_a_killed_drivers_ray_processes_and_folders_are_reaped(tmp_path):
    """Processes carrying a dead driver's session folder are stopped and the folder removed; others stay."""
    from nas.sweep.debris import OWNER_FILE, SCRATCH_ENV, reap_stale_ray_sessions

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has exited
    orphan_dir = tmp_path / "hwnas-ray-dead"
    (orphan_dir / "scratch" / "hwnas-000-40ms-abc").mkdir(parents=True)
    (orphan_dir / OWNER_FILE).write_text(json.dumps({"pid": dead_pid, "start": "1"}))
    live_dir = tmp_path / "hwnas-ray-live"
    live_dir.mkdir()
    (live_dir / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start": None}))
    unowned_dir = tmp_path / "hwnas-ray-unowned"  # no owner record (another tool, an older version): kept
    unowned_dir.mkdir()
    sleep = [sys.executable, "-c", "import time; time.sleep(300)"]
    orphan = subprocess.Popen(sleep, env={**os.environ, SCRATCH_ENV: str(orphan_dir / "scratch")})
    bystander = subprocess.Popen(sleep, env={**os.environ, SCRATCH_ENV: str(live_dir / "scratch")})
    try:
        time.sleep(0.3)
        reaped = reap_stale_ray_sessions(tmp_path)
        assert reaped == [orphan_dir]
        assert orphan.wait(timeout=10) is not None
        assert not orphan_dir.exists() and live_dir.is_dir() and unowned_dir.is_dir()
        assert bystander.poll() is None
    finally:
        for p in (orphan, bystander):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_resume_removes_write_debris_in_trial_folders(tmp_path):
    from nas.sweep.debris import remove_write_debris

    trial = tmp_path / "trials" / "000-40ms"
    trial.mkdir(parents=True)
    (trial / "result.json").write_text("{}")
    (trial / ".search.png.ab12cd.tmp").write_bytes(b"half")
    (tmp_path / "trials" / "summary.csv").write_text("x")  # not ours to remove
    remove_write_debris(tmp_path)
    assert sorted(p.name for p in trial.iterdir()) == ["result.json"]


def test_a_finished_trial_is_never_run_or_copied_again(tmp_path, monkeypatch):
    """Tune's saved state can lag the run folder (driver killed after collecting a trial, before Tune
    saved that it ended); on resume such a trial must be reported done, not run from an older checkpoint,
    and no late copy may replace its results."""
    from ray import tune

    from nas.sweep import runner

    folder = tmp_path / "trials" / "k1"
    folder.mkdir(parents=True)
    (folder / "trial.json").write_text(json.dumps({"key": "k1", "starts": 1, "summary": {"best_top1": 0.8}}))
    (folder / "result.json").write_text('{"first": true}')
    mtime = (folder / "result.json").stat().st_mtime_ns

    class OlderCheckpoint:  # what Tune would restore: a mid-run checkpoint with other files
        def to_directory(self, path):
            Path(path, "trial.json").write_text(json.dumps({"key": "k1", "starts": 1}))
            Path(path, "result.json").write_text('{"second": true}')

    assert runner._collect_trial(tmp_path, "k1", OlderCheckpoint()) == folder
    assert (folder / "result.json").read_text() == '{"first": true}'
    assert (folder / "result.json").stat().st_mtime_ns == mtime
    assert runner._finished_summaries(tmp_path, ["k1", "k2"]) == {"k1": {"best_top1": 0.8, "starts": 1}}

    reported = []
    monkeypatch.setattr(tune, "report", lambda metrics, **kw: reported.append((metrics, kw)))
    monkeypatch.setattr(runner, "get_trial_kind", lambda kind: pytest.fail("a finished trial was run again"))
    runner.tune_trainable({"trial": {"kind": "search", "key": "k1", "params": {}}},
                          finished=runner._finished_summaries(tmp_path, ["k1"]))
    assert reported == [({"best_top1": 0.8, "starts": 1, "done": True}, {})]
