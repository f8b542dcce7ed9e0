"""The single_path space: 22 layers, its superkernel supernet, and pricing by the per-layer table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latency_predictors import LatencyPredictor
from search_spaces import InvalidArchError, get_space
from search_spaces.single_path.space import LAYER_OPTIONS


@pytest.fixture(scope="module")
def space():
    return get_space("single_path")


def test_layout_follows_the_single_path_search_code(space):
    assert len(space.dims) == 22
    assert space.dims[0].choices == ("k3e1",)  # the fixed first MBConv
    skippable = [j for j, d in enumerate(space.dims) if "skip" in d.choices]
    assert skippable == [2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20]
    assert all(d.choices[:4] == LAYER_OPTIONS for d in space.dims[1:])
    assert space.size() == 4 ** 6 * 5 ** 15
    keys = space.blocks({"ops": ["k3e1"] + ["k5e6"] * 21})
    assert str(keys[0]) == "Conv-input:224x224x3-output:112x112x32-hs:0"
    assert str(keys[2]) == ("expanded_conv-input:112x112x16-output:56x56x24-expand:96-kernel:5-stride:2-"
                            "idskip:0-se:0-hs:0")
    assert str(keys[-1]) == "Logits-input:7x7x1280-output:1000"


def test_invalid_arch_names_layer_and_allowed_values(space):
    ops = ["k3e1"] + ["k3e3"] * 21
    with pytest.raises(InvalidArchError, match=r"ops\[1\]: 'skip' is not allowed; allowed: k3e3, k3e6, k5e3, k5e6$"):
        space.validate({"ops": ops[:1] + ["skip"] + ops[2:]})
    with pytest.raises(InvalidArchError, match="ops: expected a list of 22"):
        space.validate({"ops": ops[:5]})


def _randomise_bn(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def test_extracted_subnet_equals_the_supernet_path(space):
    torch.manual_seed(0)
    sup = space.supernet().eval()
    _randomise_bn(sup)
    x = torch.randn(1, 3, 224, 224)
    archs = space.sample(np.random.default_rng(0), 3) + [sup.largest_arch()]
    outs = []
    for arch in archs:
        with torch.no_grad():
            y_sup = sup.set_active(arch)(x)
            y_sub = sup.extract(arch).eval()(x)
        assert type(sup.extract(arch)) is type(space.build(arch))
        assert (y_sup - y_sub).abs().max().item() <= 1e-5
        outs.append(y_sup)
    assert (outs[0] - outs[1]).abs().max() > 1e-3  # different paths, different functions


def test_superkernel_shares_the_3x3_centre_and_the_e3_half(space):
    sup = space.supernet().train()
    layer = sup.layers[0]  # layer 1: 16 -> 24, stride 2
    x = torch.randn(2, 16, 16, 16)
    layer.run(x, 16 * 3, 3).sum().backward()
    g = layer.depthwise.conv.weight.grad
    assert g[:48, :, 1:4, 1:4].abs().sum() > 0
    assert g[:, :, 0].abs().sum() == 0 and g[:, :, :, 4].abs().sum() == 0  # the 5x5 ring is unused
    assert g[48:].abs().sum() == 0 and layer.expand.conv.weight.grad[48:].abs().sum() == 0  # e6 half unused


def test_per_layer_table_prices_archs(space, shared_data, nas_cli):
    path = shared_data / "single-path-nas" / "pixel1_runtime_model.json"
    assert nas_cli("import-table", "--format", "single-path", path, "--device", "sp-pixel")[0] == 0
    rows = json.loads(path.read_text())
    pred = LatencyPredictor("sp-pixel", space)
    archs = space.sample(np.random.default_rng(4), 5)
    want = [sum(0.0 if op == "skip" else rows[str(i)][str(0 if op == "k3e1" else LAYER_OPTIONS.index(op))]
                for i, op in enumerate(a["ops"])) for a in archs]
    assert pred.predict(archs) == pytest.approx(want, abs=1e-9)
    assert pred.coverage() == 1.0


def test_priced_on_the_pixel_model(space):
    pred = LatencyPredictor("pixel", space)
    X = space.sample_encoded(np.random.default_rng(0), 1000)
    ms = pred.predict(X)
    assert np.isfinite(ms).all() and 40 < ms.min() < ms.max() < 150
