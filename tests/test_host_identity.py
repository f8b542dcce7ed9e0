"""Host identity: fingerprints from recorded cpuinfo/lscpu texts (x86 and ARM), the speed probe, and
what predict / search / calibrate / validate-latency do with a profile measured on another host."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from latency_predictors import host_calibration, probe as speed_probe
from latency_predictors.cpuinfo import kernel_isa, parse_lscpu, parse_proc_cpuinfo
from latency_predictors.host_calibration import RecalibrationPolicy
from latency_predictors.hostcheck import REPROBES, HostMismatchWarning, check_host, host_differences, this_host
from latency_predictors.probe import PROBE_SHAPES, PROBE_THREADS, PROBE_VERSION, fastest_of, probe_ratio
from latency_predictors.profile import DeviceProfile, Runtime, Source, SpaceTable, SpeedProbe, host_fingerprint
from latency_predictors.registry import load_profile, save_profile
from latency_predictors.timing import RoundPlan
from search_spaces import get_space

FIXTURES = Path(__file__).parent / "fixtures" / "cpuinfo"
QUICK = ["--rounds", "2", "--reps", "2", "--warmup", "1", "--quiet"]
HERE_MS = {name: 0.1 * (i + 1) for i, name in enumerate(PROBE_SHAPES)}  # the injected probe of "this host"


def _text(name: str) -> str:
    return (FIXTURES / name).read_text()


# ---- fingerprints from recorded texts --------------------------------------------------------
def test_arm_proc_cpuinfo_and_lscpu_name_the_same_host():
    proc = parse_proc_cpuinfo(_text("graviton2_m6g_large.proc_cpuinfo.txt"))
    ls = parse_lscpu(_text("graviton2_m6g_large.lscpu.txt"))
    for info in (proc, ls):
        assert info.arch == "aarch64" and info.model == "Neoverse-N1" and info.vendor == "ARM"
        assert info.isa == ("neon", "fp16", "dotprod")  # asimd is NEON; asimddp dot product; no x86 flags
        assert info.logical_cpus == 2 and info.cores == 2 and info.threads_per_core == 1
    assert proc.family == ls.family == "ARM Neoverse-N1 r3p1"  # lscpu's "Socket(s): -" / cluster form too


def test_arm_boards_and_32_bit_kernels():
    g3 = parse_proc_cpuinfo(_text("graviton3_c7g_xlarge.proc_cpuinfo.txt"))
    assert g3.model == "Neoverse-V1" and {"sve", "i8mm", "bf16"} <= set(g3.isa) and g3.logical_cpus == 4
    pi4 = parse_proc_cpuinfo(_text("rpi4_64bit.proc_cpuinfo.txt"))
    assert pi4.model == "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)" and pi4.isa == ("neon",)
    assert pi4.family == parse_lscpu(_text("rpi4_64bit.lscpu.txt")).family == "ARM Cortex-A72 r0p3"
    pi3 = parse_proc_cpuinfo(_text("rpi3_armv7l.proc_cpuinfo.txt"))
    assert pi3.arch == "armv7l" and pi3.isa == ("neon",) and pi3.model.startswith("Cortex-A53")


def test_x86_kernel_flags_separate_avx2_from_avx512_hosts():
    epyc = parse_lscpu(_text("epyc_avx2_2vcpu.lscpu.txt"))
    xeon = parse_proc_cpuinfo(_text("xeon_kvm_2vcpu.proc_cpuinfo.txt"))
    assert epyc.isa == ("avx", "fma", "avx2") and epyc.threads_per_core == 2 and epyc.cores == 1
    assert {"avx512f", "avx512_vnni", "avx512_bf16", "amx_int8"} <= set(xeon.isa)
    assert parse_lscpu(_text("xeon_kvm_2vcpu.lscpu.txt")).isa == xeon.isa
    a, b = host_fingerprint(cpu=epyc), host_fingerprint(cpu=xeon)
    diffs = host_differences(a, b)
    assert any(d.startswith("isa: this host adds") and "avx512f" in d for d in diffs)
    assert a.identity() != b.identity()
    # the same CPU with another Python or OS is the same kind of host
    assert a.identity() == a.model_copy(update={"python": "3.99", "system": "Other 1.0"}).identity()
    assert kernel_isa(["sse2", "rdrand", "avx2"], "x86_64") == ("avx2",)


def test_an_arm_profile_is_another_host_here_and_the_probe_ratio_is_reported(device_dir):
    arm = host_fingerprint(cpu=parse_proc_cpuinfo(_text("graviton2_m6g_large.proc_cpuinfo.txt")))
    arm = arm.model_copy(update={"probe": SpeedProbe(threads=PROBE_THREADS, ms={k: v / 3 for k, v in HERE_MS.items()})})
    prof = _profile("graviton", arm)
    check = check_host(prof, measure_probe=lambda threads: SpeedProbe(threads=threads, ms=HERE_MS))
    assert not check.same and any(d.startswith("machine: 'aarch64'") for d in check.differences)
    assert check.probe_ratio == pytest.approx(3.0)
    assert "3.00x" in check.reason() and check.measured_on.startswith("Neoverse-N1 (2 CPUs, dotprod")


def test_probe_runs_here_and_compares():
    p = speed_probe.measure_probe(plan=RoundPlan(rounds=2, reps=2, warmup=1), warmup_s=0.01)
    assert p.version == PROBE_VERSION and set(p.ms) == set(PROBE_SHAPES) and all(v > 0 for v in p.ms.values())
    assert p.threads == PROBE_THREADS and p.repeat_pct is not None and p.rounds in (2, 4, 6)
    assert probe_ratio(p, p) == pytest.approx(1.0)
    assert probe_ratio(p, p.model_copy(update={"ms": {k: 2 * v for k, v in p.ms.items()}})) == pytest.approx(2.0)
    assert probe_ratio(p, p.model_copy(update={"version": PROBE_VERSION + 1})) is None


def test_fastest_of_two_probes_keeps_each_shapes_faster_time():
    a = SpeedProbe(threads=1, ms={"x": 1.0, "y": 2.0}, repeat_pct=4.0, rounds=8)
    b = SpeedProbe(threads=1, ms={"x": 1.5, "y": 1.0}, repeat_pct=1.0, rounds=8)
    both = fastest_of(a, b)
    assert both.ms == {"x": 1.0, "y": 1.0} and both.repeat_pct == 1.0 and both.rounds == 16
    assert fastest_of(a, b.model_copy(update={"threads": 2})).ms == {"x": 1.5, "y": 1.0}  # not comparable: the new one


class _Probes:
    """This host's probes, one after another: HERE_MS times each factor (the last one repeats)."""

    def __init__(self, *factors: float):
        self.factors, self.calls = list(factors), 0

    def __call__(self, threads: int) -> SpeedProbe:
        f = self.factors[min(self.calls, len(self.factors) - 1)]
        self.calls += 1
        return SpeedProbe(threads=threads, ms={k: v * f for k, v in HERE_MS.items()}, repeat_pct=0.5)


def test_same_fingerprint_and_one_slow_probe_is_reprobed_and_stays_this_host(device_dir):
    """The same VM, quiet, once probed 0.80x its own probe of a minute before: one probe must not make it another host."""
    prof = _profile("toy-twin", this_host().model_copy(update={"probe": SpeedProbe(threads=PROBE_THREADS, ms=HERE_MS)}))
    probes = _Probes(1.3, 1.02)  # a burst slowed the first probe; the re-probe is this host's speed
    check = check_host(prof, measure_probe=probes)
    assert check.same and probes.calls == 2 and check.probes == 2
    assert check.probe_ratio == pytest.approx(1.02) and check.reason() == "speed probe 1.02x"
    # the combined probe is cached: the next check measures nothing and agrees
    again = _Probes(5.0)
    assert check_host(prof, measure_probe=again).same and again.calls == 0


def test_same_fingerprint_and_a_probe_off_after_reprobes_says_same_cpu_but(device_dir):
    prof = _profile("toy-twin", this_host().model_copy(update={"probe": SpeedProbe(threads=PROBE_THREADS, ms=HERE_MS)}))
    probes = _Probes(0.8, 0.81, 0.79)  # this host runs the probe faster every time: it is not the same speed
    check = check_host(prof, measure_probe=probes)
    assert not check.same and probes.calls == 1 + REPROBES and check.probes == 1 + REPROBES
    assert check.probe_ratio == pytest.approx(0.79) and check.differences == []
    text = check.describe()
    assert text.startswith("has the same CPU model and runtime as the host it was measured on")
    assert "this host is" not in text and "0.79x the recorded time" in text and f"fastest of {1 + REPROBES} probes" in text
    assert "repeats within 0.5 %" in text


def test_another_fingerprint_is_not_reprobed(device_dir):
    other = this_host().model_copy(update={"cpu_count": this_host().cpu_count + 2, "digest": "",
                                           "probe": SpeedProbe(threads=PROBE_THREADS, ms=HERE_MS)})
    probes = _Probes(1.3, 1.0)
    check = check_host(_profile("toy-big", other), measure_probe=probes)
    assert not check.same and probes.calls == 1 and check.probe_ratio == pytest.approx(1.3)
    assert check.describe().startswith(f"was measured on {other.label()}, this host is {this_host().label()}: the speed")


def test_a_probe_of_an_older_kind_is_not_compared(device_dir):
    old = SpeedProbe(version=1, threads=2, ms={k: v / 3 for k, v in HERE_MS.items()})
    probes = _Probes(1.0)
    check = check_host(_profile("toy-v1", this_host().model_copy(update={"probe": old})), measure_probe=probes)
    assert check.same and check.probe_ratio is None and probes.calls == 0


# ---- another host, simulated by altering the stored probe ----------------------------------
def _profile(name: str, host, resolution: int = 128) -> DeviceProfile:
    """A measured ofa profile (made-up block latencies at one resolution) taken on ``host``."""
    sp = get_space("ofa")
    keys, macs = sp.block_keys(), sp.block_costs()[0]
    ids = sp.searched_block_ids(resolutions=[resolution])
    entries = {str(keys[i]): round(0.01 + macs[i] / 1e8, 5) for i in ids}
    return DeviceProfile(name=name, source=Source(kind="measured", provenance="test"), host=host,
                         runtime=Runtime(engine="onnxruntime", version="x", execution_provider="CPUExecutionProvider",
                                         threads=2, batch=1, precision="fp32"),
                         tables={"ofa": SpaceTable(entries=entries)})


@pytest.fixture
def fake_probe(monkeypatch):
    """This host's probe is HERE_MS (no second spent measuring); a calibration here is 4 networks."""
    monkeypatch.setattr(speed_probe, "measure_probe", lambda threads=PROBE_THREADS, **k: SpeedProbe(
        threads=threads, ms=HERE_MS))
    monkeypatch.setattr(host_calibration, "DEFAULT_N", 4)
    monkeypatch.setattr(host_calibration, "DEFAULT_PLAN", RoundPlan(rounds=2, reps=2, warmup=1))


def _save(name: str, ratio: float) -> None:
    """Save a profile of this very fingerprint whose stored probe makes this host ``ratio`` times slower."""
    host = this_host().model_copy(update={"probe": SpeedProbe(threads=PROBE_THREADS,
                                                              ms={k: v / ratio for k, v in HERE_MS.items()})})
    save_profile(_profile(name, host))


def _arch(tmp_path) -> Path:
    arch = get_space("ofa").sample(np.random.default_rng(0), 1)[0] | {"r": [128]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(arch))
    return path


def test_same_fingerprint_and_probe_is_this_host(nas_cli, fake_probe, tmp_path):
    _save("toy-same", 1.05)  # within +-15 %
    code, out, err = nas_cli("predict", "--device", "toy-same", "--space", "ofa", "--arch", _arch(tmp_path), "--json")
    assert code == 0 and err == "", err
    host = json.loads(out)["host"]
    assert host["status"] == "same-host" and host["probe_ratio"] == pytest.approx(1.05, abs=1e-3)


def test_a_slower_host_is_flagged_in_one_line_with_recalibrate_off(nas_cli, fake_probe, tmp_path):
    _save("toy-far", 2.0)
    arch = _arch(tmp_path)
    code, out, err = nas_cli("predict", "--device", "toy-far", "--space", "ofa", "--arch", arch, "--json",
                             "--recalibrate", "off")
    assert code == 0
    host = json.loads(out)["host"]
    assert host["status"] == "flagged" and host["probe_ratio"] == pytest.approx(2.0) and host["calibration"] is None
    assert err.count("\n") == 1 and "2.00x" in err and "flagged" in err, err
    # a search records it in result.json
    code, _, err = nas_cli("search", "--space", "ofa", "--target", "toy-far", "--latency", "100ms", "--budget", "60",
                           "--quiet", "--no-plot", "--recalibrate", "off", "--out", tmp_path / "run")
    assert code == 0, err
    target = json.loads((tmp_path / "run" / "result.json").read_text())["targets"][0]
    assert target["host"]["status"] == "flagged" and target["host"]["probe_ratio"] == pytest.approx(2.0)
    # an error stays one line: no host warning before it
    code, _, err = nas_cli("predict", "--device", "toy-far", "--space", "ofa", "--arch", tmp_path / "missing.json")
    assert code == 2 and err.count("\n") == 1 and "error" in err


def test_a_slower_host_is_calibrated_here_cached_and_recorded(nas_cli, fake_probe, tmp_path, device_dir):
    import nas

    _save("toy-slow", 2.0)
    policy = RecalibrationPolicy(n=4, plan=RoundPlan(rounds=2, reps=2, warmup=1), progress=False)
    with pytest.warns(HostMismatchWarning, match=r"2\.00x.*calibrated here"):
        result = nas.search("ofa", "toy-slow", 100, budget=60, out=tmp_path / "run", plot=False, recalibrate=policy)
    host = json.loads((tmp_path / "run" / "result.json").read_text())["targets"][0]["host"]
    assert host["status"] == "calibrated-here" and host["label"].endswith("calibrated here")
    assert host["probe_ratio"] == pytest.approx(2.0) and host["calibration"]["n"] == 4
    cache = Path(host["calibration"]["path"])
    assert cache.is_relative_to(device_dir) and cache.is_file()
    scale = host["calibration"]["scale"]
    assert result.targets[0].host["calibration"]["scale"] == scale
    # the next prediction reads the cache (the default policy here measures nothing: off would flag)
    code, out, err = nas_cli("predict", "--device", "toy-slow", "--space", "ofa", "--arch", _arch(tmp_path), "--json",
                             "--recalibrate", "auto")
    assert code == 0, err
    got = json.loads(out)["host"]
    assert got["status"] == "calibrated-here" and got["calibration"]["cached"] and got["calibration"]["scale"] == scale
    # the profile itself is untouched: its calibration belongs to the host it was measured on
    assert load_profile(device_dir / "toy-slow.yaml").calibration_of("ofa").is_identity


def test_calibrate_and_validate_use_what_predict_uses_and_write_into_out(nas_cli, fake_probe, tmp_path,
                                                                       device_dir, monkeypatch):
    _save("toy-other", 2.0)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = nas_cli("calibrate", "--device", "toy-other", "--space", "ofa", "--n", "4", "--resolutions", "128",
                             *QUICK, "--out", tmp_path / "cal", "--json")
    assert code == 0, err
    cal = json.loads(out)
    assert cal["stored"] == "host calibration cache"
    assert json.loads((tmp_path / "cal" / "calibration-toy-other-ofa.json").read_text())["scale"] == cal["scale"]
    code, out, err = nas_cli("predict", "--device", "toy-other", "--space", "ofa", "--arch", _arch(tmp_path), "--json",
                             "--recalibrate", "off")
    # off never measures, and an explicit calibration here is not used either: flagged
    assert json.loads(out)["host"]["status"] == "flagged"
    code, out, err = nas_cli("predict", "--device", "toy-other", "--space", "ofa", "--arch", _arch(tmp_path), "--json",
                             "--recalibrate", "auto")
    predicted = json.loads(out)["host"]["calibration"]
    assert predicted["cached"] and predicted["scale"] == cal["scale"]

    code, out, err = nas_cli("validate-latency", "--device", "toy-other", "--space", "ofa", "--n", "4",
                             "--resolutions", "128", *QUICK, "--out", tmp_path / "val", "--recalibrate", "auto")
    assert code == 0, err
    written = sorted(os.listdir(tmp_path / "val"))
    assert written == ["latency-validation-toy-other-ofa.json", "latency-validation-toy-other-ofa.png"]
    report = json.loads((tmp_path / "val" / written[0]).read_text())
    assert report["calibration"]["scale"] == cal["scale"] and report["host"]["status"] == "calibrated-here"
    assert os.listdir(work) == []  # nothing in the working folder
    # a profile from another host keeps its own validation figures
    assert "ofa" not in load_profile(device_dir / "toy-other.yaml").validation


def test_a_profile_without_isa_or_probe_on_record_is_never_taken_for_this_host(nas_cli, fake_probe, tmp_path):
    """The shipped x86 profile predates both: "AMD EPYC, 2 CPUs" matched a 2.5x slower AVX2-only VM."""
    legacy = this_host().model_copy(update={"isa": None, "probe": None, "digest": ""})
    save_profile(_profile("toy-legacy", legacy))
    code, out, err = nas_cli("predict", "--device", "toy-legacy", "--space", "ofa", "--arch", _arch(tmp_path), "--json",
                             "--recalibrate", "off")
    assert code == 0 and json.loads(out)["host"]["status"] == "flagged"
    assert err.count("\n") == 1 and "cannot be confirmed" in err, err


def test_validation_report_names_keep_a_dotted_space_name(tmp_path):
    from latency_predictors.validation import report_paths

    json_path, png_path = report_paths(tmp_path, "xeon", "ofa-w1.0")
    assert (json_path.name, png_path.name) == ("latency-validation-xeon-ofa-w1.0.json",
                                               "latency-validation-xeon-ofa-w1.0.png")
    assert json_path.parent == tmp_path
