"""The found net as a plain network with the weights it inherits from the trained supernet.

``FoundNet`` is the reduced supernet's stem and head around the chosen block of every layer
(nothing of the other candidates). Its held-out accuracy is what a search reports; the run folder
keeps it as ``found_net.pt`` (layer list + state dict, rebuilt by ``load_found_net``), and
``export_found`` writes it as ONNX (checked in ONNX Runtime) or .pt for ``nas search --export``.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from search_spaces.errors import UserError
from search_spaces.mobile_blocks import down

from ..io import atomic_write_bytes
from .supernet import Ends, mbconv

FORMAT = "hwnas.gradient-found-net"


@dataclass(frozen=True)
class FoundLayer:
    """One chosen block at reduced size (``None`` in a layer list: skip)."""

    cin: int
    cout: int
    mid: int
    kernel: int
    stride: int
    residual: bool
    groups: int = 1


class FoundNet(nn.Module):
    """stem -> chosen blocks -> head; the same module names as the supernet's ends."""

    def __init__(self, layers: list[FoundLayer | None], stem: int, last: int, head: int, n_classes: int,
                 image_size: int, act: str = "relu"):
        super().__init__()
        self.config = {"layers": [None if l is None else asdict(l) for l in layers], "stem": stem, "last": last,
                       "head": head, "n_classes": n_classes, "image_size": image_size, "act": act}
        self.ends = Ends(stem, last, head, n_classes, act)
        size = down(image_size, 2)  # after the stem
        blocks = []
        for l in layers:
            if l is None:
                blocks.append(nn.Identity())
                continue
            blocks.append(mbconv(l.cin, l.cout, l.mid, l.kernel, l.stride, l.residual, l.groups, size, act))
            size = down(size, l.stride)
        self.layers = nn.Sequential(*blocks)

    @classmethod
    def of_config(cls, config: dict) -> "FoundNet":
        layers = [None if l is None else FoundLayer(**l) for l in config["layers"]]
        return cls(layers, config["stem"], config["last"], config["head"], config["n_classes"],
                   config["image_size"], config.get("act", "relu"))

    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.config["image_size"], self.config["image_size"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ends.out(self.layers(self.ends.stem(x)))


def assemble(job, layers: list[FoundLayer | None], states: list[dict]) -> FoundNet:
    """A ``FoundNet`` of ``layers`` taking the supernet's stem and head and each block's ``states`` entry."""
    net, p = job.model.net, job.params
    found = FoundNet(layers, net.ends.stem.conv.out_channels, net.ends.head.conv.in_channels, p["head"],
                     job.n_classes, p["image_size"])
    found.ends.load_state_dict(net.ends.state_dict())
    for block, state in zip(found.layers, states):
        block.load_state_dict(state)
    return found


def found_bytes(net: FoundNet, info: dict) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **info, "net": net.config, "state_dict": net.state_dict()}, buf)
    return buf.getvalue()


def load_found_net(path: str | Path) -> tuple[FoundNet, dict]:
    """(the found net with its inherited weights, the file's other entries: arch, choice, strategy, ...)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt.get("format") != FORMAT:
            raise KeyError("format")
        net = FoundNet.of_config(ckpt["net"])
        net.load_state_dict(ckpt["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{str(path)!r} is not a found net of a gradient search ({type(e).__name__}); "
                        "expected the found_net.pt of its run folder") from None
    return net.eval(), {k: v for k, v in ckpt.items() if k not in ("net", "state_dict")}


def export_found(found_path: str | Path, out: str | Path) -> dict:
    """Write the found net (inherited weights) to ``out``: .onnx checked in ONNX Runtime, or .pt."""
    from ..export import check_onnx, onnx_bytes, with_metadata

    out = Path(out)
    if out.suffix not in (".onnx", ".pt"):
        raise UserError(f"--out {str(out)!r}: unknown format {out.suffix or '(none)'}; accepted: .onnx, .pt")
    net, info = load_found_net(found_path)
    meta = {"arch": info["arch"], "strategy": info["strategy"], "input_shape": list(net.input_shape()),
            "weights": "inherited from the trained reduced supernet"}
    result = {"path": str(out), **meta}
    if out.suffix == ".onnx":
        data = onnx_bytes(net, net.input_shape())
        result["ort_max_abs_diff"] = check_onnx(data, net, net.input_shape())
        atomic_write_bytes(out, with_metadata(data, meta))
    else:
        atomic_write_bytes(out, found_bytes(net, info))
    return result
