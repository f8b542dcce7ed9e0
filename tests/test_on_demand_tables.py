"""A measured profile without the asked space's table: its blocks measured on this host, resumably.

The shipped ``x86`` profile was measured on another host and has no table for a user's own block
space; under ``--recalibrate auto`` the space's blocks are measured here, cached in the user folder
and calibrated here, and a killed run resumes without timing a block twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from latency_predictors.profiler import progress_path

REPO = Path(__file__).resolve().parents[1]

# A block space of 96 distinct blocks (one searched resolution), measured in seconds.
TINY = '''
import os
from search_spaces.ofa.space import OFASpace


class Tiny(OFASpace):
    name = "ofa-tiny"

    def __init__(self):
        super().__init__(0.25, n_classes=10, stem_stride=1, resolutions=(12,), search_resolutions=(12,))

    def build_block(self, key):
        log = os.environ.get("TINY_BUILD_LOG")
        if log:  # the test's record of which blocks were built (timed) in this process
            with open(log, "a") as f:
                f.write(str(key) + "\\n")
        return super().build_block(key)
'''

# Small plans (tests): 3 rounds of one run per block; 4 whole networks for the calibration here.
SMALL = """
from latency_predictors import host_calibration, profiler
from latency_predictors.timing import RoundPlan
profiler.DEFAULT_PLAN = RoundPlan(rounds=3, reps=1, warmup=0)
host_calibration.DEFAULT_N = 4
host_calibration.DEFAULT_PLAN = RoundPlan(rounds=2, reps=2, warmup=1)
"""

CHILD = SMALL + """
import os, signal, sys
real_save = profiler.save_progress
saves = []
def save_then_die(path, state):
    # Killed right after the first round of the second chunk (64 blocks a chunk): the first chunk's
    # blocks are complete and in the table, the second's have one round. At any load.
    real_save(path, state)
    saves.append(path)
    if len(saves) == 5:
        os.kill(os.getpid(), signal.SIGKILL)
profiler.save_progress = save_then_die
from nas.cli import main
main(sys.argv[1:])
"""


@pytest.fixture
def tiny(tmp_path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(TINY)
    return f"{path}:Tiny"


@pytest.fixture
def small_plans(monkeypatch):
    from latency_predictors import host_calibration, profiler
    from latency_predictors.timing import RoundPlan

    monkeypatch.setattr(profiler, "DEFAULT_PLAN", RoundPlan(rounds=3, reps=1, warmup=0))
    monkeypatch.setattr(host_calibration, "DEFAULT_N", 4)
    monkeypatch.setattr(host_calibration, "DEFAULT_PLAN", RoundPlan(rounds=2, reps=2, warmup=1))
    monkeypatch.setenv("HWNAS_RECALIBRATE", "auto")


def test_off_and_unmeasurable_profiles_are_one_line_errors_naming_nas_profile(nas_cli, device_dir, tiny):
    code, _, err = nas_cli("search", "--space-module", tiny, "--target", "x86", "--latency", "1ms",
                           "--recalibrate", "off", "--budget", "20", "--no-plot", "--out", device_dir.parent / "r")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "no latency table for space 'ofa-tiny'" in err and "--recalibrate auto" in err
    assert "nas profile --device x86-2core-ort --space ofa-tiny" in err
    assert not (device_dir.parent / "r").exists() and not device_dir.exists()  # nothing measured or written
    # A modelled profile prices any block space through its cost model: nothing to measure.
    code, out, err = nas_cli("search", "--space-module", tiny, "--target", "pixel", "--latency", "5ms",
                             "--budget", "20", "--no-plot", "--json", "--out", device_dir.parent / "p")
    assert code == 0, err
    assert json.loads(out)["targets"][0]["latency_source"].startswith("modelled") and not device_dir.exists()


def test_kill_9_while_measuring_then_resume_times_no_block_twice(nas_cli, device_dir, tiny, small_plans,
                                                              tmp_path, monkeypatch):
    run = tmp_path / "run"
    argv = ["search", "--space-module", tiny, "--target", "x86", "--latency", "1ms", "--budget", "40",
            "--no-plot", "--quiet", "--recalibrate", "auto", "--out", str(run)]
    env = {**os.environ, "HWNAS_DEVICE_DIR": str(device_dir), "PYTHONWARNINGS": "ignore"}
    child = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=REPO, env=env, capture_output=True,
                           timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    progress = progress_path(device_dir, "x86-2core-ort", "ofa-tiny")
    before = {k: b["rounds"] for k, b in json.loads(progress.read_text())["blocks"].items()}
    assert sorted(map(len, before.values())) == [1] * 32 + [3] * 64  # killed mid-way: 2nd chunk, 1st round
    from latency_predictors.registry import load_profile

    assert len(load_profile(device_dir / "x86-2core-ort.yaml").tables["ofa-tiny"].entries) == 64
    assert (run / "config.json").is_file()  # a kill before the search started still leaves a run to resume

    log = tmp_path / "built.txt"
    monkeypatch.setenv("TINY_BUILD_LOG", str(log))
    code, out, err = nas_cli("search", "--resume", run, "--space-module", tiny, "--json", "--no-plot")
    assert code == 0, err
    after = {k: b["rounds"] for k, b in json.loads(progress.read_text())["blocks"].items()}
    built = log.read_text().split()
    assert len(built) == len(set(built)) == 96 - sum(len(r) >= 3 for r in before.values())
    for k, rounds in after.items():
        assert len(rounds) == 3, k  # exactly its rounds: none timed twice
        assert rounds[:len(before.get(k, []))] == before.get(k, [])  # rounds from before the kill kept
    assert len(after) == 96
    table = load_profile(device_dir / "x86-2core-ort.yaml").tables["ofa-tiny"]
    assert len(table.entries) == 96 and "measured on demand" in table.source.provenance
    host = json.loads(out)["targets"][0]["host"]
    assert host["status"] == "calibrated-here" and host["calibration"]["n"] == 4
    assert host["measured_here"]["blocks"] == 96 and "ofa-tiny blocks measured on this host" in host["label"]

    # The next search reads the table and the cached calibration: nothing is measured again.
    log.unlink()
    code, out, err = nas_cli("search", "--space-module", tiny, "--target", "x86", "--latency", "1ms", "--budget",
                             "40", "--no-plot", "--quiet", "--out", tmp_path / "again")
    assert code == 0, err
    assert not log.exists()
    assert "ofa-tiny blocks measured on this host" in out and "(earlier)" in out
    # and --recalibrate off now prices with the table measured here (flagged: not calibrated)
    code, out, err = nas_cli("search", "--space-module", tiny, "--target", "x86", "--latency", "1ms", "--budget",
                             "40", "--no-plot", "--json", "--recalibrate", "off", "--out", tmp_path / "off")
    assert code == 0, err
    assert json.loads(out)["targets"][0]["host"]["status"] == "flagged"


def test_a_profile_of_this_host_gets_the_table_and_its_calibration(nas_cli, device_dir, tiny, small_plans, tmp_path):
    from latency_predictors import DeviceProfile, Runtime, Source, load_profile, save_profile
    from latency_predictors.hostcheck import this_host

    assert this_host().isa is not None  # a fingerprint with ISA features: this host, not a legacy record
    save_profile(DeviceProfile(name="here", source=Source(kind="measured", provenance="test"), host=this_host(),
                               runtime=Runtime(engine="onnxruntime", version="x", threads=2, batch=1,
                                               execution_provider="CPUExecutionProvider", precision="fp32")))
    code, out, err = nas_cli("search", "--space-module", tiny, "--target", "here", "--latency", "1ms", "--budget",
                             "40", "--no-plot", "--json", "--out", tmp_path / "run")
    assert code == 0, err
    host = json.loads(out)["targets"][0]["host"]
    assert host["status"] == "same-host" and host["measured_here"]["measured"] == 96
    table = load_profile(device_dir / "here.yaml").tables["ofa-tiny"]
    assert len(table.entries) == 96 and table.calibration is not None and "4 random" in table.calibration.note
