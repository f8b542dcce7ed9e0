"""Export an arch as ONNX (checked by running it in ONNX Runtime) or as a torch state dict."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from search_spaces import get_space
from search_spaces.base import Arch, SearchSpace
from search_spaces.errors import UserError
from search_spaces.registry import space_spec

from .io import atomic_write_bytes

EXPORT_FORMATS = (".onnx", ".pt")
ONNX_OPSET = 17


def onnx_bytes(model: torch.nn.Module, input_shape: tuple[int, ...], batch: int = 1) -> bytes:
    """Serialise a module to ONNX with the TorchScript exporter.

    The dynamo exporter (torch's default since 2.9) takes ~15x longer per model and needs
    onnxscript; these static CNNs gain nothing from it.
    """
    model = model.eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is chosen on purpose
        torch.onnx.export(model, (torch.zeros(batch, *input_shape),), buf, input_names=["input"],
                          output_names=["output"], opset_version=ONNX_OPSET, dynamo=False)
    return buf.getvalue()


def check_onnx(data: bytes, model: torch.nn.Module, input_shape: tuple[int, ...], atol: float = 1e-4,
               seed: int = 0) -> float:
    """Max abs difference between ONNX Runtime and torch on a random input; raises above ``atol``."""
    from latency_predictors.ort_telemetry import import_onnxruntime

    ort = import_onnxruntime()

    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((1, *input_shape), dtype=np.float32))
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    diff = float(np.abs(got - ref).max())
    if not diff <= atol:
        raise RuntimeError(f"ONNX Runtime output differs from torch by {diff:.2e} (> {atol:.0e})")
    return diff


def with_metadata(data: bytes, meta: dict) -> bytes:
    """The ONNX model with ``meta`` as ``hwnas.<key>`` metadata properties (JSON values)."""
    import json

    import onnx

    model = onnx.load_from_string(data)
    for k, v in meta.items():
        model.metadata_props.add(key=f"hwnas.{k}", value=json.dumps(v, sort_keys=True))
    return model.SerializeToString()


def export(space: str | SearchSpace, arch: Arch, out: str | Path, model: torch.nn.Module | None = None,
           check: bool = True) -> dict:
    """Write ``out`` (.onnx or .pt) for ``arch``; returns what was written and the ORT check."""
    sp = get_space(space)
    arch = sp.validate(arch)
    out = Path(out)
    if out.suffix not in EXPORT_FORMATS:
        raise UserError(f"--out {str(out)!r}: unknown format {out.suffix or '(none)'}; accepted: .onnx, .pt")
    model = sp.build(arch) if model is None else model
    model.eval()
    shape = sp.input_shape(arch)
    spec = space_spec(sp)  # the space and its parameters, so the file says which network it is
    info = {"path": str(out), **spec, "arch": arch}
    if out.suffix == ".onnx":
        data = onnx_bytes(model, shape)
        if check:
            info["ort_max_abs_diff"] = check_onnx(data, model, shape)
        atomic_write_bytes(out, with_metadata(data, {**spec, "space_version": sp.version, "arch": arch}))
    else:
        buf = io.BytesIO()
        torch.save({**spec, "space_version": sp.version, "arch": arch, "state_dict": model.state_dict()}, buf)
        atomic_write_bytes(out, buf.getvalue())
    return info


def load_pt(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model written by ``export(..., 'x.pt')``: (module with weights, arch)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        sp = get_space(ckpt["space"], ckpt.get("space_params"))
        model = sp.build(ckpt["arch"])
        model.load_state_dict(ckpt["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError) as e:
        raise UserError(f"{str(path)!r} is not a readable hwnas .pt export ({type(e).__name__})") from None
    return model, ckpt["arch"]
