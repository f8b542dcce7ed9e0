"""Runtimes that time a torch module on this machine: ONNX Runtime (CPU or CUDA) or torch with CUDA events.

``RuntimeSettings`` says how a device runs networks (the fields a measured profile records in its
``runtime``); ``make_backend(settings)`` returns a backend whose ``prepare(module, input_shape)``
gives a ``Timer``: a ready session with its input bound, whose ``time_ms(warmup, reps)`` returns the
wall time of each timed run. Building a timer is the slow part (export, optional quantization,
session creation), so callers build each once and reuse it across measurement rounds.

ONNX Runtime runs through IO binding with a pre-allocated output: a plain ``session.run`` copies
every output into a fresh numpy array, which for a 112x112x24 block output costs a noticeable share
of the block's own time and does not happen inside a whole network.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from search_spaces.errors import UserError

from .ort_telemetry import import_onnxruntime

PROVIDERS = ("cpu", "cuda")
PRECISIONS = ("fp32", "int8")
ONNX_OPSET = 17
ORT_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
INPUT_DTYPES = {"tensor(uint8)": np.uint8, "tensor(int8)": np.int8}  # quantized graph inputs
# Inputs the int8 calibrator sees (unit normal; the module's BatchNorm statistics are set on the same scale).
N_CALIBRATION_INPUTS = 4


@dataclass(frozen=True)
class RuntimeSettings:
    """How networks run on the device being measured."""

    provider: str = "cpu"  # cpu | cuda
    threads: int = 2  # intra-op threads (ONNX Runtime CPU); ignored on a GPU
    batch: int = 1
    precision: str = "fp32"  # fp32 | int8

    def __post_init__(self):
        if self.provider not in PROVIDERS:
            raise UserError(f"unknown execution provider {self.provider!r}; accepted: {', '.join(PROVIDERS)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; accepted: {', '.join(PRECISIONS)}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise UserError(f"threads must be a positive int, got {self.threads!r}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise UserError(f"batch must be a positive int, got {self.batch!r}")
        if self.provider == "cuda" and self.precision == "int8":
            raise UserError("int8 is measured on the CPU execution provider only (QDQ int8 on CUDA needs TensorRT)")

    def as_dict(self) -> dict:
        return asdict(self)


def onnx_model_bytes(module, input_shape: tuple[int, ...], batch: int = 1) -> bytes:
    """A module serialised to ONNX with torch's TorchScript exporter (~15x faster than dynamo here).

    Tracing runs the module once, which at 224 px costs more than the rest of the export; images are
    therefore traced at 16x16 with free spatial axes, and the real size is then pinned on the input
    (ONNX Runtime infers every other shape at load, so the session is the same as a full-size trace).
    Only modules whose graph does not depend on the input size may be exported this way, which holds
    for convolutional blocks and networks; ``trace_small=False`` traces at full size.
    """
    return _export(module, input_shape, batch, trace_small=len(input_shape) == 3 and min(input_shape[1:]) > 16)


def _export(module, input_shape, batch, trace_small: bool) -> bytes:
    import onnx
    import torch

    module = module.eval()
    shape = (input_shape[0], 16, 16) if trace_small else tuple(input_shape)
    dynamic = {"input": {2: "h", 3: "w"}, "output": {}} if trace_small else None
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter is chosen on purpose
        torch.onnx.export(module, (torch.zeros(batch, *shape),), buf, input_names=["input"],
                          output_names=["output"], opset_version=ONNX_OPSET, dynamo=False,
                          dynamic_axes=dynamic)
    if not trace_small:
        return buf.getvalue()
    model = onnx.load_from_string(buf.getvalue())
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for i, v in ((2, input_shape[1]), (3, input_shape[2])):
        dims[i].Clear()
        dims[i].dim_value = int(v)
    for out in model.graph.output:  # sizes of the traced run: let the runtime infer them again
        for j, d in enumerate(out.type.tensor_type.shape.dim):
            d.Clear()
            d.dim_param = f"out_{j}"
    del model.graph.value_info[:]
    return model.SerializeToString()


def quantize_int8(model: bytes, input_shape: tuple[int, ...], batch: int, seed: int = 0) -> bytes:
    """Static int8 quantization (QDQ, per-channel weights) with ONNX Runtime's own tooling.

    Static QDQ rather than ``quantize_dynamic``: dynamic quantization turns convolutions into
    ConvInteger with activations quantized at run time, which ONNX Runtime's CPU kernels run slower
    than fp32; static QDQ is fused into QLinearConv, the int8 path a deployed CNN takes on x86 and
    ARM. A few random inputs calibrate the activation ranges. Latency depends on those ranges (ONNX
    Runtime keeps some depthwise convs in float when they are about 1, and fuses them when small), so
    ``OrtBackend.prepare`` first gives the module unit-scale activations (``activation_ranges.py``).
    """
    import onnx
    import_onnxruntime()  # telemetry off before the quantizer's import loads onnxruntime
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)

    class _Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(seed)
            self._it = iter([{"input": rng.standard_normal((batch, *input_shape), dtype=np.float32)}
                             for _ in range(N_CALIBRATION_INPUTS)])

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as tmp:
        out = Path(tmp) / "q.onnx"
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs advice per model through the root logger
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_static(onnx.load_from_string(model), out, _Reader(), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                extra_options={"CalibTensorRangeSymmetric": False})
        finally:
            root.setLevel(level)
        return out.read_bytes()


class OrtTimer:
    """One ONNX Runtime session with its input and output bound, timed with a wall clock."""

    def __init__(self, session, x: np.ndarray, device: str):
        ort = import_onnxruntime()

        self.session = session
        self.binding = session.io_binding()
        if device == "cpu":
            self._x = ort.OrtValue.ortvalue_from_numpy(x)
            self.binding.bind_ortvalue_input("input", self._x)
            out = session.run(None, {"input": x})[0]  # first run: allocates, and gives the output shape
            self._y = ort.OrtValue.ortvalue_from_numpy(np.empty_like(out))
            self.binding.bind_ortvalue_output("output", self._y)
        else:  # untested here (no GPU): device tensors, so no host copies are timed
            self._x = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
            self.binding.bind_ortvalue_input("input", self._x)
            self.binding.bind_output("output", "cuda", 0)
        self.session.run_with_iobinding(self.binding)

    def time_ms(self, warmup: int, reps: int) -> np.ndarray:
        run, binding = self.session.run_with_iobinding, self.binding
        for _ in range(warmup):
            run(binding)
        out = np.empty(reps)
        clock = time.perf_counter_ns
        for i in range(reps):
            t0 = clock()
            run(binding)
            out[i] = clock() - t0
        return out / 1e6


class OrtBackend:
    """ONNX Runtime with the CPU or (when onnxruntime-gpu is installed) CUDA execution provider."""

    engine = "onnxruntime"

    def __init__(self, settings: RuntimeSettings):
        ort = import_onnxruntime()

        self.settings = settings
        self.version = ort.__version__
        self.execution_provider = ORT_PROVIDER_NAMES[settings.provider]
        if self.execution_provider not in ort.get_available_providers():
            raise UserError(f"ONNX Runtime {ort.__version__} here has no {self.execution_provider}")

    def session_options(self):
        ort = import_onnxruntime()

        # A pool per session (a process-wide pool would break every other ONNX Runtime user in the
        # process, the int8 calibrator included). Workers spin between ops (the deployed default), but
        # stop spinning when a run ends: otherwise the sessions timed just before keep spinning on the
        # cores the next one needs. Measured on 2 cores: round medians of one network swung 1.7-7.7 ms
        # with spinning left on, and stayed within 2 % at the lone network's own 2.4 ms with it stopped.
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.settings.threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.force_spinning_stop", "1")
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return so

    def prepare(self, module, input_shape: tuple[int, ...], role: str = "network") -> OrtTimer:
        """A timer for ``module``; ``role="block"``: a block as it runs inside a network (int8: uint8 edges)."""
        ort = import_onnxruntime()

        s = self.settings
        if s.precision == "int8":
            from .activation_ranges import unit_activations

            module = unit_activations(module, input_shape)  # a copy: int8 kernels depend on the ranges (its doc)
        model = onnx_model_bytes(module, input_shape, s.batch)
        if s.precision == "int8":
            model = quantize_int8(model, input_shape, s.batch)
            if role == "block":
                from .int8_edges import as_in_network

                model = as_in_network(model)
        session = ort.InferenceSession(model, self.session_options(), providers=[self.execution_provider])
        x = np.random.default_rng(0).standard_normal((s.batch, *input_shape), dtype=np.float32)
        dtype = INPUT_DTYPES.get(session.get_inputs()[0].type)
        if dtype is not None:  # a quantized input (an int8 block in its network form): values do not matter
            x = np.clip(np.round(64 * x + 128), 0, 255).astype(dtype)
        return OrtTimer(session, x, s.provider)


class TorchCudaTimer:
    """A torch module on the GPU, timed with CUDA events (untested here: this machine has no GPU)."""

    def __init__(self, module, x):
        import torch

        self.torch = torch
        self.module, self.x = module, x
        with torch.no_grad():
            module(x)
        torch.cuda.synchronize()

    def time_ms(self, warmup: int, reps: int) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            for _ in range(warmup):
                self.module(self.x)
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
            for i in range(reps):
                starts[i].record()
                self.module(self.x)
                ends[i].record()
            torch.cuda.synchronize()
        return np.array([s.elapsed_time(e) for s, e in zip(starts, ends)])


class TorchCudaBackend:
    """torch on CUDA, used for ``--provider cuda`` when onnxruntime-gpu is not installed."""

    engine = "torch"
    execution_provider = "cuda-events"

    def __init__(self, settings: RuntimeSettings):
        import torch

        if not torch.cuda.is_available():
            raise UserError("--provider cuda: neither onnxruntime-gpu nor a CUDA-enabled torch with a GPU is "
                            "available here")
        self.settings = settings
        self.version = torch.__version__

    def prepare(self, module, input_shape: tuple[int, ...], role: str = "network") -> TorchCudaTimer:
        import torch

        module = module.eval().cuda()
        x = torch.randn(self.settings.batch, *input_shape, device="cuda")
        return TorchCudaTimer(module, x)


def make_backend(settings: RuntimeSettings):
    """The backend for these settings: ONNX Runtime where it has the provider, else torch on CUDA."""
    if settings.provider == "cuda":
        ort = import_onnxruntime()

        if ORT_PROVIDER_NAMES["cuda"] not in ort.get_available_providers():
            return TorchCudaBackend(settings)
    return OrtBackend(settings)


def settings_of_runtime(runtime) -> RuntimeSettings:
    """The RuntimeSettings a profile's ``runtime`` section was measured with."""
    provider = "cuda" if runtime.execution_provider in ("CUDAExecutionProvider", "cuda-events") else "cpu"
    if runtime.execution_provider not in (None, "CPUExecutionProvider", "CUDAExecutionProvider", "cuda-events"):
        raise UserError(f"this profile was measured with execution provider {runtime.execution_provider!r}, "
                        f"which hwnas cannot run; accepted: cpu, cuda")
    return RuntimeSettings(provider=provider, threads=runtime.threads or 1, batch=runtime.batch,
                           precision=runtime.precision or "fp32")


def profile_settings(profile) -> RuntimeSettings:
    """The runtime settings a measured profile was taken with (what ground truth must match)."""
    if profile.runtime.engine not in ("onnxruntime", "torch"):
        raise UserError(f"device {profile.name!r} was not measured with ONNX Runtime or torch here "
                        f"(runtime engine {profile.runtime.engine!r}); whole networks can only be measured "
                        f"for profiles made with nas profile")
    return settings_of_runtime(profile.runtime)
