"""Run folders: earlier results are never written over, one writer at a time, resume checks and cleans up."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nas
from nas.run_folder import LOCK_NAME, claim_run_folder
from search_spaces.errors import UserError

NAS = str(Path(sys.executable).with_name("nas"))


def test_search_refuses_a_folder_holding_anything(tmp_path, nas_cli):
    out = tmp_path / "d"
    out.mkdir()
    (out / "result.json").write_text("mine\n")
    code, _, err = nas_cli("search", "--latency", "80ms", "--budget", "100", "--out", out, "--quiet")
    assert code == 2 and err.count("\n") == 1 and "not empty" in err
    assert (out / "result.json").read_text() == "mine\n" and sorted(p.name for p in out.iterdir()) == ["result.json"]
    with pytest.raises(UserError, match="not empty"):  # the API refuses the same way
        nas.search("ofa", "pixel", 80, budget=100, out=out, plot=False)


def test_a_finished_run_is_resumed_not_overwritten(tmp_path, nas_cli):
    out = tmp_path / "run"
    assert nas_cli("search", "--latency", "80ms", "--budget", "200", "--out", out, "--quiet", "--no-plot")[0] == 0
    before = (out / "result.json").read_bytes()
    code, _, err = nas_cli("search", "--latency", "80ms", "--budget", "200", "--out", out, "--quiet")
    assert code == 2 and f"--resume {out}" in err
    assert (out / "result.json").read_bytes() == before


def test_bad_input_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "new" / "run"
    with pytest.raises(UserError, match="unknown device"):
        nas.search("ofa", "toaster", 80, budget=100, out=out)
    assert not out.exists()


def test_one_writer_at_a_time_in_process(tmp_path):
    with claim_run_folder(tmp_path / "run", resume=False):
        with pytest.raises(UserError, match="in use by another hwnas process"):
            with claim_run_folder(tmp_path / "run", resume=True):
                pass
    with claim_run_folder(tmp_path / "run", resume=True):  # released when the block ends
        pass


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 120):
    deadline = time.time() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_searches_on_one_folder_at_once_then_kill_9_does_not_block(tmp_path):
    out = tmp_path / "run"
    args = [NAS, "search", "--latency", "80ms", "--budget", "50000000", "--seed", "3", "--quiet", "--no-plot"]
    first = subprocess.Popen([*args, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(out / "checkpoint.npz", first)
        # a second search on the same folder while the first writes: refused, nothing lost
        second = subprocess.run([*args, "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert "not empty" in second.stderr or "in use" in second.stderr
        # even a --resume of it is refused while the first holds it
        third = subprocess.run([NAS, "search", "--resume", str(out), "--quiet", "--no-plot"],
                               capture_output=True, text=True, timeout=120)
        assert third.returncode == 2 and "in use by another hwnas process" in third.stderr, third.stderr
        assert first.poll() is None, "the first search ended too soon to test the lock"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the kernel dropped the dead process's lock: the stale lock file does not block a resume
    assert (out / LOCK_NAME).read_text().strip() == str(first.pid)
    with claim_run_folder(out, resume=True):
        pass


def test_resume_removes_what_a_killed_atomic_write_left(tmp_path, nas_cli):
    out = tmp_path / "run"
    assert nas_cli("search", "--latency", "80ms", "--budget", "200", "--out", out, "--quiet", "--no-plot")[0] == 0
    debris = [out / ".search.png.k2j3h4.tmp", out / ".checkpoint.npz.x8d7f6.tmp"]
    for p in debris:
        p.write_bytes(b"half a file")
    code, _, err = nas_cli("search", "--resume", out, "--quiet", "--no-plot")
    assert code == 0, err
    assert not any(p.exists() for p in debris)


def test_progress_eta_is_measured_from_the_first_generation(monkeypatch):
    """Start-up time (and the archs a resumed run had done) must not enter the rate."""
    import importlib

    s = importlib.import_module("nas.search")  # the module (nas.search is also the function)

    clock = [100.0]
    monkeypatch.setattr(s.time, "perf_counter", lambda: clock[0])
    stream = io.StringIO()
    progress = s.Progress(1000, stream)
    clock[0] = 130.0  # 30 s of start-up, then the first generation: 500 archs done (a resumed run)
    info = {"generation": 1, "n_evaluated": 500, "best_top1": 0.75, "best_latency_ms": 50.0}
    progress(info)
    clock[0] = 132.0  # 100 archs in 2 s: 400 left take 8 s
    progress({**info, "generation": 2, "n_evaluated": 600})
    first, second = stream.getvalue().splitlines()
    assert first.endswith("eta --")
    assert second.endswith("eta 8.0s")


def test_progress_writes_to_the_stderr_of_the_moment_not_the_one_at_import(monkeypatch):
    """A caller that swaps sys.stderr after nas was imported (pytest's capture, a notebook) gets the lines."""
    import importlib

    s = importlib.import_module("nas.search")
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    s.Progress(10)({"generation": 1, "n_evaluated": 10, "best_top1": 0.75, "best_latency_ms": 50.0})
    assert "evaluated      10/10" in swapped.getvalue()


def test_search_table_short_source_and_mnas_columns(tmp_path, nas_cli):
    out = tmp_path / "run"
    code, text, err = nas_cli("search", "--latency", "80ms", "--budget", "300", "--out", out, "--reward", "mnas",
                              "--no-plot")
    assert code == 0, err
    target = next(line for line in text.splitlines() if line.startswith("target "))
    assert "soft target T = 80 ms" in target and "<= 80" not in target
    assert len(target) < 160  # the full provenance is in result.json and behind --verbose
    full = json.loads((out / "result.json").read_text())["targets"][0]["latency_source"]
    assert len(full) > 300 and full not in text
    head = next(line for line in text.splitlines() if line.lstrip().startswith("rank"))
    assert "reward" in head.split()
    code, text, _ = nas_cli("search", "--resume", out, "--verbose", "--no-plot")
    assert code == 0 and full in text


def test_resume_validates_the_run_config_before_anything_runs(tmp_path, nas_cli):
    out = tmp_path / "run"
    assert nas_cli("search", "--latency", "80ms", "--budget", "200", "--out", out, "--quiet", "--no-plot")[0] == 0
    cfg = json.loads((out / "config.json").read_text())
    del cfg["targets"]
    (out / "config.json").write_text(json.dumps(cfg))
    code, _, err = nas_cli("search", "--resume", out)
    assert code == 2 and "targets: missing" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_one_line(tmp_path, nas_cli):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = nas_cli("search", "--latency", "80ms", "--budget", "100", "--out", ro / "run")
        assert code == 2 and err.count("\n") == 1 and "cannot be created" in err
    finally:
        ro.chmod(0o755)
