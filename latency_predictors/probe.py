"""The speed probe: a fixed set of conv and GEMM shapes through ONNX Runtime, well under a second.

A fingerprint says what a host is; the probe says how fast it is. A profile stores the probe of
the host it was measured on (``HostFingerprint.probe``); using the profile elsewhere, the same
shapes are timed here and the geometric mean of the per-shape ratios (``probe_ratio``) says how
much slower or faster this host runs them. The shapes are the kinds a MobileNet-like network
spends its time in: a full 3x3 conv (the stem), a depthwise 3x3, a pointwise 1x1 expand and
project, and the classifier GEMM; each is its own tiny ONNX graph built directly (no torch export).

Why one intra-op thread, whatever the profile's threads: these ops run 0.03-0.25 ms, and with two
threads a run's time is mostly whether the second worker wakes at once on the other core. Measured
on the 2-vCPU Xeon VM, quiet (load 1-2) and with priority, five probes in one process at 2 threads
gave a shape's fastest run anywhere in 0.15-0.24 ms (a gemm 0.09 or 0.18 ms) and geometric-mean
ratios 0.83-1.18 between probes seconds apart; at 1 thread the same probes agreed within 2 %
(experiments/bench/probe_noise.py). The probe compares per-core speed (the ISA path, clock and
memory system); the core count and SMT layout are compared by the fingerprint.

The protocol: an untimed warm-up (the first runs of a session and of a process are slow), then
passes of interleaved rounds, each round's fastest run, the fastest round kept as the tables do.
After each pass the probe measures its own repeatability: the probe computed from the even rounds
against the one from the odd rounds (``repeat_pct``). When they disagree by more than
``REPEAT_OK_PCT`` another pass is run (at most ``MAX_PASSES``), so a burst of interference that
spoils one pass is outvoted by the fastest rounds of the next.

This host's probe is cached in the user folder per host identity for ``PROBE_MAX_AGE_S``, so a
``nas predict`` pays it once a day, not per call; ``fresh=True`` measures again (a re-probe).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from .profile import HostFingerprint, SpeedProbe, now_iso
from .timing import RoundPlan, kept_ms, run_rounds

PROBE_VERSION = 2  # 2: one thread, warm-up, passes until repeatable (1: the profile's threads, one pass)
PROBE_THREADS = 1
PROBE_MAX_AGE_S = 24 * 3600
PROBE_PLAN = RoundPlan(rounds=8, reps=10, warmup=2)  # one pass
PROBE_WARMUP_S = 0.1  # untimed runs of every shape before the first timed round
REPEAT_OK_PCT = 3.0  # even/odd-round disagreement a pass must reach, else another pass
MAX_PASSES = 3

# name -> (op, input NCHW or (M, K), weight shape, group)
PROBE_SHAPES = {
    "conv3x3_s2_3to32_224": ("Conv", (1, 3, 224, 224), (32, 3, 3, 3), 1, 2),
    "dw3x3_96_56": ("Conv", (1, 96, 56, 56), (96, 1, 3, 3), 96, 1),
    "pw1x1_32to192_28": ("Conv", (1, 32, 28, 28), (192, 32, 1, 1), 1, 1),
    "pw1x1_192to64_14": ("Conv", (1, 192, 14, 14), (64, 192, 1, 1), 1, 1),
    "gemm_1x1280x1000": ("Gemm", (1, 1280), (1000, 1280), 1, 1),
}


def _graph(op: str, x_shape, w_shape, group: int, stride: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal(w_shape).astype(np.float32) * 0.1, "w")
    b = numpy_helper.from_array(np.zeros(w_shape[0], np.float32), "b")
    if op == "Conv":
        k = w_shape[2]
        node = helper.make_node("Conv", ["input", "w", "b"], ["output"], kernel_shape=[k, k], group=group,
                                strides=[stride, stride], pads=[k // 2] * 4)
        hw = [(d + 2 * (k // 2) - k) // stride + 1 for d in x_shape[2:]]
        y_shape = [x_shape[0], w_shape[0], *hw]
    else:
        node = helper.make_node("Gemm", ["input", "w", "b"], ["output"], transB=1)
        y_shape = [x_shape[0], w_shape[0]]
    graph = helper.make_graph([node], "probe", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, y_shape)], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)  # readable by older ONNX Runtime builds too
    return model.SerializeToString()


def measure_probe(threads: int = PROBE_THREADS, plan: RoundPlan = PROBE_PLAN, seed: int = 0,
                  max_passes: int = MAX_PASSES, warmup_s: float = PROBE_WARMUP_S) -> SpeedProbe:
    """Time the probe shapes here with ``threads`` intra-op threads on ONNX Runtime's CPU provider."""
    from .ort_telemetry import import_onnxruntime
    from .runtime import OrtBackend, OrtTimer, RuntimeSettings

    ort = import_onnxruntime()
    backend = OrtBackend(RuntimeSettings(threads=threads, batch=1))
    rng = np.random.default_rng(0)
    timers = {}
    for name, (op, x_shape, w_shape, group, stride) in PROBE_SHAPES.items():
        sess = ort.InferenceSession(_graph(op, x_shape, w_shape, group, stride), backend.session_options(),
                                    providers=["CPUExecutionProvider"])
        timers[name] = OrtTimer(sess, rng.standard_normal(x_shape, dtype=np.float32), "cpu")
    t_end = time.perf_counter() + warmup_s
    while time.perf_counter() < t_end:
        for timer in timers.values():
            timer.time_ms(0, 5)
    rounds: dict[str, list[float]] = {}
    order = np.random.default_rng(seed)
    for p in range(1, max_passes + 1):
        run_rounds(timers, rounds, RoundPlan(rounds=plan.rounds * p, reps=plan.reps, warmup=plan.warmup), order)
        repeat = repeat_of(rounds)
        if repeat is None or repeat <= REPEAT_OK_PCT:
            break
    return SpeedProbe(version=PROBE_VERSION, engine="onnxruntime", threads=threads,
                      ms={k: round(kept_ms(v), 5) for k, v in rounds.items()},
                      repeat_pct=None if repeat is None else round(repeat, 2),
                      rounds=len(next(iter(rounds.values()))), created=now_iso())


def repeat_of(rounds: dict[str, list[float]]) -> float | None:
    """The probe from the even rounds against the one from the odd rounds, in percent (None: under 2 rounds)."""
    if not rounds or min(len(v) for v in rounds.values()) < 2:
        return None
    even = {k: kept_ms(v[0::2]) for k, v in rounds.items()}
    odd = {k: kept_ms(v[1::2]) for k, v in rounds.items()}
    r = float(math.exp(np.mean([math.log(odd[k] / even[k]) for k in rounds])))
    return 100.0 * abs(max(r, 1 / r) - 1)


def fastest_of(a: SpeedProbe, b: SpeedProbe) -> SpeedProbe:
    """Two probes of one host as one: each shape's faster time (interference only slows a run)."""
    if a.version != b.version or a.threads != b.threads:
        return b
    ms = {k: min(a.ms[k], b.ms[k]) if k in a.ms else b.ms[k] for k in b.ms}
    reps = [r for r in (a.repeat_pct, b.repeat_pct) if r is not None]
    return b.model_copy(update={"ms": ms, "repeat_pct": min(reps) if reps else None,
                                "rounds": (a.rounds or 0) + (b.rounds or 0) or None})


def probe_ratio(recorded: SpeedProbe | None, current: SpeedProbe | None) -> float | None:
    """How many times slower this host runs the probe (geometric mean over shared shapes); None when not comparable."""
    if recorded is None or current is None or recorded.version != current.version:
        return None
    common = [k for k in recorded.ms if k in current.ms and recorded.ms[k] > 0 and current.ms[k] > 0]
    if not common:
        return None
    return float(math.exp(np.mean([math.log(current.ms[k] / recorded.ms[k]) for k in common])))


def _cache_path(host: HostFingerprint, threads: int) -> Path:
    import platform

    from .registry import user_dir

    # The node name too: two machines of one kind sharing a home folder still probe each their own.
    node = "".join(c if c.isalnum() or c in "-_." else "_" for c in platform.node())[:40] or "host"
    return user_dir() / "hosts" / f"{host.identity()}-{node}-t{threads}.json"


def this_host_probe(host: HostFingerprint, threads: int, measure=None, max_age_s: float = PROBE_MAX_AGE_S,
                    fresh: bool = False, keep: SpeedProbe | None = None) -> SpeedProbe:
    """This host's probe at ``threads``: cached in the user folder for ``max_age_s``, else measured now.

    ``fresh``: measure again whatever the cache holds (a re-probe); ``keep``: an earlier probe of this
    host to combine with the new one (``fastest_of``), and the combination is what gets cached.
    ``measure(threads) -> SpeedProbe`` replaces the measurement (tests inject fixed probes).
    """
    path = _cache_path(host, threads)
    if not fresh:
        try:
            data = json.loads(path.read_text())
            if time.time() - float(data["measured_at"]) < max_age_s:
                probe = SpeedProbe.model_validate(data["probe"])
                if probe.version == PROBE_VERSION and probe.threads == threads:
                    return probe
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no cache, or an unreadable one: measure
    probe = measure_probe(threads) if measure is None else measure(threads)
    if keep is not None:
        probe = fastest_of(keep, probe)
    return remember_probe(host, probe)


def remember_probe(host: HostFingerprint, probe: SpeedProbe) -> SpeedProbe:
    """Cache ``probe`` as this host's (at its thread count), e.g. the one ``nas profile`` just measured."""
    from search_spaces.fileio import atomic_write_bytes

    try:
        atomic_write_bytes(_cache_path(host, probe.threads or PROBE_THREADS),
                           json.dumps({"measured_at": time.time(), "host": host.identity(),
                                       "probe": probe.model_dump()}).encode())
    except OSError:
        pass  # a read-only home folder: the probe is measured again next time, nothing is lost
    return probe
