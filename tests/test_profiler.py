"""The ONNX Runtime profiler, whole-network measurement, calibration and validation, on small slices."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from latency_predictors import DeviceProfile, LatencyPredictor, Runtime, Source, SpaceTable, load_profile, save_profile
from latency_predictors.hostcheck import HostMismatchWarning, this_host
from latency_predictors.profiler import distinct_blocks, progress_path
from search_spaces import get_space
from search_spaces.base import Dim, SearchSpace

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--rounds", "2", "--reps", "2", "--warmup", "0", "--quiet"]


@pytest.fixture
def device_dir(tmp_path, monkeypatch):
    d = tmp_path / "devices"
    monkeypatch.setenv("HWNAS_DEVICE_DIR", str(d))
    return d


def finished(progress: dict, rounds: int) -> dict:
    return {k: b["rounds"] for k, b in progress["blocks"].items() if len(b["rounds"]) >= rounds}


def test_profile_measures_a_slice_into_a_measured_profile(nas_cli, device_dir):
    code, out, err = nas_cli("profile", "--device", "here", "--alias", "here-cpu", "--space", "ofa",
                             "--resolutions", "128", "--limit", "6", *QUICK, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["blocks"], info["measured"], info["reused"]) == (6, 6, 0)
    prof = load_profile(device_dir / "here.yaml")
    assert prof.source.kind == "measured" and prof.aliases == ["here-cpu"]
    assert prof.runtime.engine == "onnxruntime" and prof.runtime.execution_provider == "CPUExecutionProvider"
    assert (prof.runtime.threads, prof.runtime.batch, prof.runtime.precision) == (2, 1, "fp32")
    assert prof.host.digest == this_host().digest
    keys = [str(k) for k in distinct_blocks("ofa", [128], limit=6)]
    assert sorted(prof.tables["ofa"].entries) == sorted(keys)
    assert all(v > 0 for v in prof.tables["ofa"].entries.values())
    # Per-block round values live beside the profile; the table holds the fastest round's value.
    progress = json.loads(progress_path(device_dir, "here", "ofa").read_text())
    for k in keys:
        assert prof.tables["ofa"].entries[k] == pytest.approx(min(progress["blocks"][k]["rounds"]), abs=1e-5)
    # Re-running measures nothing; the same device with other settings is refused.
    code, out, _ = nas_cli("profile", "--device", "here", "--space", "ofa", "--resolutions", "128", "--limit", "6",
                           *QUICK, "--json")
    assert code == 0 and json.loads(out)["measured"] == 0
    code, _, err = nas_cli("profile", "--device", "here", "--space", "ofa", "--threads", "1", "--limit", "2", *QUICK)
    assert code == 2 and "threads 2" in err and len(err.strip().splitlines()) == 1


def test_profile_resumes_after_kill_9_without_remeasuring(device_dir):
    n, rounds = 40, 2
    cmd = [str(REPO / ".venv" / "bin" / "nas") if (REPO / ".venv" / "bin" / "nas").exists() else "nas",
           "profile", "--device", "killed", "--space", "ofa", "--resolutions", "224", "--limit", str(n),
           "--chunk", "4", "--rounds", str(rounds), "--reps", "3", "--warmup", "0", "--quiet", "--json"]
    env = {**os.environ, "HWNAS_DEVICE_DIR": str(device_dir)}
    ppath = progress_path(device_dir, "killed", "ofa")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    before = {}
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ppath.is_file():
                try:
                    before = finished(json.loads(ppath.read_text()), rounds)
                except ValueError:
                    before = {}
                if len(before) >= 4:
                    break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 4 <= len(before) < n, "the profiler finished before it could be killed"
    before = finished(json.loads(ppath.read_text()), rounds)  # what had been written when it died
    # The progress file is written first, so the table never holds a block the progress file lacks.
    table_before = load_profile(device_dir / "killed.yaml").tables["ofa"].entries
    assert set(table_before) <= set(before)

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    info = json.loads(again.stdout)
    assert info["measured"] == n - len(before) and info["reused"] == len(before)
    after = json.loads(ppath.read_text())
    assert {k: after["blocks"][k]["rounds"] for k in before} == before  # finished blocks untouched
    assert len(finished(after, rounds)) == n
    entries = load_profile(device_dir / "killed.yaml").tables["ofa"].entries
    assert len(entries) == n and all(entries[k] == table_before[k] for k in table_before)
    assert all(entries[k] == pytest.approx(min(before[k]), abs=1e-5) for k in before)


@pytest.mark.parametrize("argv, message", [
    (["--provider", "tpu"], "unknown execution provider 'tpu'"),
    (["--reps", "0"], "reps must be a positive int"),
    (["--reps", "-3"], "reps must be a positive int"),
    (["--rounds", "0"], "rounds must be a positive int"),
    (["--precision", "fp8"], "unknown precision"),
])
def test_bad_profiler_input_is_one_line(nas_cli, device_dir, argv, message):
    code, _, err = nas_cli("profile", "--device", "x", "--space", "ofa", "--limit", "1", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (device_dir / "x.yaml").exists()


class _NoBlocks(SearchSpace):
    """A space without per-block costs."""

    dims = [Dim("w", (1, 2))]

    def to_values(self, arch):
        return [arch["w"]]

    def from_values(self, values):
        return {"w": values[0]}

    def build(self, arch):
        raise NotImplementedError


def test_space_without_blocks_is_one_line(nas_cli, device_dir, monkeypatch):
    from search_spaces import registry

    monkeypatch.setitem(registry._FACTORIES, "noblocks", _NoBlocks)
    monkeypatch.setattr(registry, "_INSTANCES", dict(registry._INSTANCES))
    code, _, err = nas_cli("profile", "--device", "x", "--space", "noblocks")
    assert code == 2 and "has no blocks" in err and len(err.strip().splitlines()) == 1


def _toy_measured_profile(name: str, resolution: int) -> DeviceProfile:
    """A measured profile with made-up block latencies (1 + MMACs / 100 ms) at one resolution."""
    sp = get_space("ofa")
    keys, macs = sp.block_keys(), sp.block_costs()[0]
    ids = sp.searched_block_ids(resolutions=[resolution])
    entries = {str(keys[i]): round(0.01 + macs[i] / 1e8, 5) for i in ids}
    return DeviceProfile(name=name, source=Source(kind="measured", provenance="test"), host=this_host(),
                         runtime=Runtime(engine="onnxruntime", version="x", execution_provider="CPUExecutionProvider",
                                         threads=2, batch=1, precision="fp32"),
                         tables={"ofa": SpaceTable(entries=entries)})


def test_measure_calibrate_and_validate_on_a_small_sample(nas_cli, device_dir, tmp_path):
    save_profile(_toy_measured_profile("toy-here", 128))
    arch = get_space("ofa").sample(np.random.default_rng(0), 1)[0] | {"r": [128]}
    (tmp_path / "a.json").write_text(json.dumps(arch))
    code, out, err = nas_cli("measure", "--device", "toy-here", "--space", "ofa", "--arch", tmp_path / "a.json",
                             *QUICK, "--json")
    assert code == 0, err
    row = json.loads(out)["archs"][0]
    assert row["measured_ms"] > 0 and len(row["round_ms"]) == 2 and row["predicted_ms"] > 0

    code, out, err = nas_cli("calibrate", "--device", "toy-here", "--space", "ofa", "--n", "4", "--resolutions",
                             "128", *QUICK, "--json")
    assert code == 0, err
    cal = json.loads(out)
    prof = load_profile(device_dir / "toy-here.yaml")
    assert prof.tables["ofa"].calibration.scale == pytest.approx(cal["scale"])

    report, plot = tmp_path / "v.json", tmp_path / "v.png"
    code, out, err = nas_cli("validate-latency", "--device", "toy-here", "--space", "ofa", "--n", "4", "--resolutions",
                             "128", *QUICK, "--report", report, "--plot", plot)
    assert code == 0, err
    assert "MAPE" in out and "noise" in out
    data = json.loads(report.read_text())
    assert len(data["archs"]) == 4 and plot.stat().st_size > 1000
    for k in ("mape_pct", "max_abs_err_pct", "within_5_pct", "within_10_pct", "spearman", "kendall_tau",
              "noise_mape_pct", "noise_within_10_pct"):
        assert k in data
    stored = load_profile(device_dir / "toy-here.yaml").validation["ofa"]
    assert stored.n_archs == 4 and stored.mape_pct == data["mape_pct"]
    # Calibration and validation draw from different streams: no validation arch was fitted on.
    from latency_predictors.measure import STREAM_CALIBRATE, STREAM_VALIDATE, sample_archs

    a = sample_archs("ofa", 4, 0, STREAM_CALIBRATE, [128])
    b = sample_archs("ofa", 4, 0, STREAM_VALIDATE, [128])
    assert not any((row == b).all(axis=1).any() for row in a)


def test_profile_from_another_host_warns(device_dir):
    prof = _toy_measured_profile("elsewhere", 128)
    prof = prof.model_copy(update={"host": prof.host.model_copy(update={"processor": "Some Other CPU", "digest": ""})})
    with pytest.warns(HostMismatchWarning, match="measured on another host"):
        LatencyPredictor(prof, "ofa")


def test_profile_ends_with_a_calibration_on_whole_networks(device_dir, nas_cli):
    """`nas profile` leaves a table that predicts whole networks: its calibration is fitted there and then."""
    import yaml

    code, out, err = nas_cli("profile", "--device", "tinybox", "--space", "ofa-small", "--calibrate", "6",
                             "--rounds", "2", "--reps", "2", "--warmup", "1", "--quiet")
    assert code == 0, err
    assert "calibrated on 6 whole networks" in out
    cal = yaml.safe_load((device_dir / "tinybox.yaml").read_text())["tables"]["ofa-small"]["calibration"]
    assert "6 random ofa-small networks" in cal["note"] and cal["scale"] > 0
    code, out, err = nas_cli("profile", "--device", "rawbox", "--space", "ofa-small", "--calibrate", "0",
                             "--rounds", "2", "--reps", "2", "--warmup", "1", "--quiet")
    assert code == 0 and "calibrated" not in out
    raw = yaml.safe_load((device_dir / "rawbox.yaml").read_text())["tables"]["ofa-small"].get("calibration")
    assert raw is None or (raw["scale"] == 1.0 and raw["offset_ms"] == 0.0)


def test_profile_calibrates_into_the_profile_even_when_a_later_probe_reads_faster(device_dir, nas_cli, monkeypatch):
    """The same host, probed at the start of `nas profile` and again at its calibration, is still this host.

    Once the probe of the run itself was not remembered: the calibration step probed again, got 0.80x on the
    same quiet VM, and stored the profile's own calibration in the other-host cache instead of the profile.
    """
    import yaml

    from latency_predictors import probe as speed_probe
    from latency_predictors.profile import SpeedProbe

    calls = []

    def probe(threads=speed_probe.PROBE_THREADS, **_):
        calls.append(threads)
        f = 1.0 if len(calls) == 1 else 0.8  # every later probe would read 0.80x the stored one
        return SpeedProbe(threads=threads, ms={k: 0.1 * f for k in speed_probe.PROBE_SHAPES})

    monkeypatch.setattr(speed_probe, "measure_probe", probe)
    code, out, err = nas_cli("profile", "--device", "probedbox", "--space", "ofa-small", "--calibrate", "4",
                             "--rounds", "2", "--reps", "2", "--warmup", "1", "--quiet")
    assert code == 0, err
    assert len(calls) == 1 and "HostMismatch" not in err and "speed probe" not in err
    cal = yaml.safe_load((device_dir / "probedbox.yaml").read_text())["tables"]["ofa-small"]["calibration"]
    assert "4 random ofa-small networks" in cal["note"]
    assert not (device_dir / "calibrations").exists()
