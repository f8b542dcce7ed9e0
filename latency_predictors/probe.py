"""The speed probe: a fixed set of conv and GEMM shapes through ONNX Runtime, about a second in all.

A fingerprint says what a host is; the probe says how fast it is. A profile stores the probe of
the host it was measured on (``HostFingerprint.probe``); using the profile elsewhere, the same
shapes are timed here and the geometric mean of the per-shape ratios (``probe_ratio``) says how
much slower or faster this host runs them. The shapes are the kinds a MobileNet-like network
spends its time in: a full 3x3 conv (the stem), a depthwise 3x3, a pointwise 1x1 expand and
project, and the classifier GEMM; each is its own tiny ONNX graph built directly (no torch
export), timed with the same interleaved rounds and fastest-round median as the tables.

This host's probe is cached in the user folder per host identity for ``PROBE_MAX_AGE_S``, so a
``nas predict`` pays the second once a day, not per call.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from .profile import HostFingerprint, SpeedProbe, now_iso
from .timing import RoundPlan, kept_ms, run_rounds

PROBE_VERSION = 1
PROBE_MAX_AGE_S = 24 * 3600
PROBE_PLAN = RoundPlan(rounds=7, reps=10, warmup=2)

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


def measure_probe(settings=None, plan: RoundPlan = PROBE_PLAN, seed: int = 0) -> SpeedProbe:
    """Time the probe shapes here under ``settings`` (a ``RuntimeSettings``; default 2 CPU threads)."""
    from .ort_telemetry import import_onnxruntime
    from .runtime import OrtBackend, OrtTimer, RuntimeSettings

    ort = import_onnxruntime()
    settings = settings or RuntimeSettings()
    if settings.provider != "cpu":  # the probe prices the CPU kernels; a GPU profile keeps none
        settings = RuntimeSettings(threads=settings.threads, batch=1)
    backend = OrtBackend(RuntimeSettings(threads=settings.threads, batch=1))
    rng = np.random.default_rng(0)
    timers = {}
    for name, (op, x_shape, w_shape, group, stride) in PROBE_SHAPES.items():
        sess = ort.InferenceSession(_graph(op, x_shape, w_shape, group, stride), backend.session_options(),
                                    providers=["CPUExecutionProvider"])
        timers[name] = OrtTimer(sess, rng.standard_normal(x_shape, dtype=np.float32), "cpu")
    medians: dict[str, list[float]] = {}
    run_rounds(timers, medians, plan, np.random.default_rng(seed))
    return SpeedProbe(version=PROBE_VERSION, engine="onnxruntime", threads=settings.threads,
                      ms={k: round(kept_ms(v), 5) for k, v in medians.items()}, created=now_iso())


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


def this_host_probe(host: HostFingerprint, threads: int, measure=None, max_age_s: float = PROBE_MAX_AGE_S) -> SpeedProbe:
    """This host's probe at ``threads``: cached in the user folder for ``max_age_s``, else measured now.

    ``measure(threads) -> SpeedProbe`` replaces the measurement (tests inject a fixed probe).
    """
    from search_spaces.fileio import atomic_write_bytes

    path = _cache_path(host, threads)
    try:
        data = json.loads(path.read_text())
        if time.time() - float(data["measured_at"]) < max_age_s:
            probe = SpeedProbe.model_validate(data["probe"])
            if probe.version == PROBE_VERSION:
                return probe
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache, or an unreadable one: measure
    if measure is None:
        from .runtime import RuntimeSettings

        probe = measure_probe(RuntimeSettings(threads=threads))
    else:
        probe = measure(threads)
    try:
        atomic_write_bytes(path, json.dumps({"measured_at": time.time(), "host": host.identity(),
                                             "probe": probe.model_dump()}).encode())
    except OSError:
        pass  # a read-only home folder: the probe is measured again next time, nothing is lost
    return probe
