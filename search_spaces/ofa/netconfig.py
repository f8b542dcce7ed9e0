"""Conversion between archs and Once-for-All's released ``net.config`` layer lists."""

from __future__ import annotations

from ..base import Arch
from ..errors import InvalidArchError
from ..layers import make_divisible
from .layout import KERNELS, MAX_DEPTH, N_STAGES

# Imported lazily by OFASpace to keep the space module free of format details.


def net_config_to_arch(space, cfg: dict, image_size: int) -> Arch:
    if not isinstance(cfg, dict) or "blocks" not in cfg or "first_conv" not in cfg:
        raise InvalidArchError("net.config: expected Once-for-All's layer list with first_conv and blocks")
    if cfg.get("name", "MobileNetV3") != "MobileNetV3":
        raise InvalidArchError(f"net.config: {cfg.get('name')!r} is not a MobileNetV3 net of the ofa spaces")
    w = space.widths
    stem = cfg["first_conv"]["out_channels"]
    if stem != w.stem:
        raise InvalidArchError(
            f"net.config: first conv has {stem} channels; space {space.name!r} has {w.stem}")
    layers = [b["mobile_inverted_conv"] for b in cfg["blocks"][1:]]
    ks, es, ds = [], [], []
    pos = 0
    for s in range(N_STAGES):
        stage = []
        while pos < len(layers) and layers[pos]["out_channels"] == w.stages[s]:
            stage.append(layers[pos])
            pos += 1
        if not 2 <= len(stage) <= MAX_DEPTH:
            raise InvalidArchError(
                f"net.config: stage {s} ({w.stages[s]} channels) has {len(stage)} layers; allowed 2..4")
        ds.append(len(stage))
        for layer in stage:
            if layer["kernel_size"] not in KERNELS:
                raise InvalidArchError(f"net.config: kernel {layer['kernel_size']} not in {KERNELS}")
            ks.append(layer["kernel_size"])
            es.append(_expand_ratio(layer))
        ks += [3] * (MAX_DEPTH - len(stage))
        es += [3] * (MAX_DEPTH - len(stage))
    if pos != len(layers):
        raise InvalidArchError(f"net.config: {len(layers) - pos} layers do not fit the space's five stages")
    return space.validate({"ks": ks, "e": es, "d": ds, "r": [int(image_size)]})


def _expand_ratio(layer: dict) -> int:
    """The expand ratio, read from mid_channels when given (released configs store both)."""
    e = layer.get("expand_ratio")
    mid = layer.get("mid_channels")
    if mid is not None:
        for cand in (3, 4, 6):
            if make_divisible(round(layer["in_channels"] * cand), 8) == mid:
                return cand
        raise InvalidArchError(
            f"net.config: mid_channels {mid} on {layer['in_channels']} inputs is no expand ratio in 3, 4, 6")
    return int(e)


def arch_to_net_config(space, arch: Arch) -> dict:
    """Once-for-All's ``net.config`` dict for an arch (``image_size`` goes to run.config)."""
    spec = space.net_spec(arch)

    def conv(cin, cout, k, stride, act, bn=True):
        return {"name": "ConvLayer", "kernel_size": k, "stride": stride, "dilation": 1, "groups": 1,
                "bias": False, "has_shuffle": False, "in_channels": cin, "out_channels": cout,
                "use_bn": bn, "act_func": act, "dropout_rate": 0, "ops_order": "weight_bn_act"}

    blocks = []
    for ls in spec.layers:
        mb = {"name": "MBInvertedConvLayer", "in_channels": ls.cin, "out_channels": ls.cout,
              "kernel_size": ls.kernel, "stride": ls.stride,
              "expand_ratio": ls.mid // ls.cin if ls.mid % ls.cin == 0 else ls.mid / ls.cin,
              "mid_channels": None if ls.mid == ls.cin else ls.mid, "act_func": ls.act, "use_se": ls.se}
        shortcut = ({"name": "IdentityLayer", "in_channels": [ls.cin], "out_channels": [ls.cout],
                     "use_bn": False, "act_func": None, "dropout_rate": 0, "ops_order": "weight_bn_act"}
                    if ls.residual else None)
        blocks.append({"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": mb, "shortcut": shortcut})
    return {
        "name": "MobileNetV3",
        "bn": {"momentum": 0.1, "eps": 1e-5},
        "first_conv": conv(3, spec.stem, 3, 2, "h_swish"),
        "blocks": blocks,
        "final_expand_layer": conv(spec.layers[-1].cout, spec.final_expand, 1, 1, "h_swish"),
        "feature_mix_layer": conv(spec.final_expand, spec.feature_mix, 1, 1, "h_swish", bn=False),
        "classifier": {"name": "LinearLayer", "in_features": spec.feature_mix, "out_features": spec.n_classes,
                       "bias": True, "use_bn": False, "act_func": None, "dropout_rate": 0.1,
                       "ops_order": "weight_bn_act"},
    }
