"""The fbnet space (FBNet's 22-layer space): published nets, costs, schema, mixed ops, search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from search_spaces import InvalidArchError, get_space
from search_spaces.counting import count_macs_params
from search_spaces.fbnet import CANDIDATES

SP = get_space("fbnet")


@pytest.mark.parametrize("name, macs_m", [("fbnet-a", 249.0), ("fbnet-b", 295.0), ("fbnet-c", 375.0)])
def test_published_macs_within_3_percent(name, macs_m):
    X = SP.encode([SP.published(name)])
    assert abs(SP.macs(X)[0] / 1e6 / macs_m - 1) < 0.03


def test_skeleton_follows_the_paper():
    keys = SP.blocks(SP.published("fbnet-c"))
    assert str(keys[0]) == "Conv-input:224x224x3-output:112x112x16-kernel:3-hs:0"
    assert [str(k) for k in keys[-3:]] == ["Conv_1-input:7x7x352-output:7x7x1984-kernel:1-hs:0",
                                           "AvgPool2D-input:7x7x1984-output:1x1x1984",
                                           "Logits-input:1x1x1984-output:1000"]
    widths = sorted({k.output[2] for k in keys if k.op == "expanded_conv"})
    assert widths == [16, 24, 32, 64, 112, 184, 352]
    assert len(SP.dims) == 24 and SP.size() == 9 ** 16 * 8 ** 6
    g2 = [k for k in SP.blocks(SP.published("fbnet-a")) if dict(k.params).get("groups") == 2]
    assert len(g2) == 3 and all(k.param("expand") == k.input[2] for k in g2)


def test_costs_without_building_match_the_built_network():
    rng = np.random.default_rng(0)
    archs = SP.sample(rng, 3) + [SP.published("fbnet-a"), dict(SP.published("fbnet-b"), r=96)]
    X = SP.encode(archs)
    macs, params = SP.macs(X), SP.params(X)
    for i, arch in enumerate(archs):
        model = SP.build(arch)
        assert params[i] == sum(p.numel() for p in model.parameters())
        assert macs[i] == count_macs_params(model, SP.input_shape(arch))[0]


def test_blocks_follow_each_layers_choice():
    X = SP.sample_encoded(np.random.default_rng(1), 100)
    keys = SP.block_keys()
    for row, arch in zip(SP.block_matrix(X), SP.decode(X)):
        expected = [SP.layer_key(i, c, arch["r"]) for i, c in enumerate(arch["layers"])]
        for j, k in zip(row[1:23], expected):
            assert j < 0 if k is None else keys[j] == k


def test_grouped_block_shuffles_channels():
    from search_spaces.mobile_blocks import ChannelShuffle

    x = torch.arange(8.0).reshape(1, 8, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_mixed_op_computes_every_candidate():
    mixed = SP.mixed_layer(6, resolution=96)  # 32 -> 32 at 12x12, stride 1
    assert mixed.names == list(CANDIDATES)
    x = torch.randn(2, 32, 12, 12)
    with torch.no_grad():
        out = mixed.eval()(x)
        assert out.shape == (9, 2, 32, 12, 12)
        assert torch.allclose(out[-1], x)  # skip
        w = torch.zeros(9)
        w[3] = 1.0
        assert torch.allclose(mixed.weighted(x, w), out[3])
    assert SP.mixed_layer(5).names == list(CANDIDATES[:-1])  # stride 2: no skip
    net = SP.mixed_network(resolution=96)
    assert len(net["layers"]) == 22


@pytest.mark.parametrize("edit, field, allowed", [
    (lambda a: a["layers"].__setitem__(3, "k7_e6"), "layers[3]", ", ".join(CANDIDATES)),
    (lambda a: a["layers"].__setitem__(1, "skip"), "layers[1]", ", ".join(CANDIDATES[:-1])),
    (lambda a: a["layers"].pop(), "layers", "22"),
    (lambda a: a.update(head=1280), "head", "1984, 1504"),
    (lambda a: a.update(r=200), "r", "96, 128, 160, 192, 224"),
    (lambda a: a.update(depth=3), "unknown field(s) depth", "layers, head, r"),
])
def test_invalid_arch_names_field_and_allowed_values(edit, field, allowed):
    arch = json.loads(json.dumps(SP.published("fbnet-b")))
    edit(arch)
    with pytest.raises(InvalidArchError) as err:
        SP.validate(arch)
    msg = str(err.value)
    assert msg.startswith(field) and allowed in msg and "\n" not in msg


def test_head_defaults_to_the_skeletons():
    arch = SP.published("fbnet-c")
    arch.pop("head")
    assert SP.validate(arch)["head"] == 1984


def test_cli_search_returns_an_arch_within_the_budget(tmp_path, nas_cli):
    code, out, err = nas_cli("search", "--space", "fbnet", "--target", "pixel", "--latency", "60ms",
                             "--budget", "400", "--seed", "0", "--out", tmp_path / "r", "--json")
    assert code == 0, err
    best = json.loads(out)["best"]
    assert best["latency_ms"]["pixel1"] <= 60
    SP.validate(best["arch"])
