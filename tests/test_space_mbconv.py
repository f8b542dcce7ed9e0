"""The mbconv space (MnasNet's factorized hierarchical space): published nets, costs, schema, search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from search_spaces import InvalidArchError, get_space
from search_spaces.counting import count_macs_params
from search_spaces.mnasnet.space import BASE_LAYERS, STEM, STRIDES, down, layer_key

SP = get_space("mbconv")


def reference_keys(arch) -> list[str]:
    """Block keys of an arch walked layer by layer (what the vectorised tables must reproduce)."""
    r = arch["r"]
    size, cin = down(r, 2), STEM
    keys = [f"Conv-input:{r}x{r}x3-output:{size}x{size}x{STEM}-kernel:3-hs:0"]
    for b, blk in enumerate(arch["blocks"]):
        for j in range(blk["layers"]):
            s = STRIDES[b] if j == 0 else 1
            res = blk["skip"] == "identity" and s == 1 and cin == blk["filters"]
            keys.append(str(layer_key(size, cin, blk["filters"], s, blk["op"], blk["kernel"], blk["se"], res)))
            size, cin = down(size, s), blk["filters"]
    return keys + [f"Conv_1-input:{size}x{size}x{cin}-output:{size}x{size}x1280-kernel:1-hs:0",
                   f"AvgPool2D-input:{size}x{size}x1280-output:1x1x1280", "Logits-input:1x1x1280-output:1000"]


@pytest.mark.parametrize("name, macs_m", [("mnasnet-a1", 312.0), ("mobilenetv2", 300.0)])
def test_published_macs_within_3_percent(name, macs_m):
    X = SP.encode([SP.published(name)])
    assert abs(SP.macs(X)[0] / 1e6 / macs_m - 1) < 0.03
    if name == "mnasnet-a1":
        assert abs(SP.params(X)[0] / 1e6 / 3.9 - 1) < 0.03  # the paper's 3.9M


def test_published_nets_sit_off_the_grid_but_build():
    a1, b1 = SP.published("mnasnet-a1"), SP.published("mnasnet-b1")
    assert a1["blocks"][4]["filters"] == 112 and b1["blocks"][5]["filters"] == 192
    X = SP.encode([a1, b1])
    searched = set(SP.searched_block_ids().tolist())
    assert all(i in searched for i in SP.block_matrix(X).ravel() if i >= 0)
    with torch.no_grad():
        assert SP.build(dict(b1, r=96)).eval()(torch.zeros(1, 3, 96, 96)).shape == (1, 1000)


def test_mnasnet_a1_matches_the_reference_block_list(shared_data):
    from latency_predictors.operators import network_blocks

    cfg = json.loads((shared_data / "published" / "arch_configs.json").read_text())["mnasnet_a1_1.0"]
    assert [str(k) for k in SP.blocks(SP.published("mnasnet-a1"))] == [str(k) for k in network_blocks(cfg, 224)]


def test_costs_without_building_match_the_built_network():
    rng = np.random.default_rng(0)
    archs = SP.sample(rng, 3) + [SP.published("mnasnet-a1")]
    conv_se = SP.validate({"blocks": [dict(b, op="conv", se=0.25, kernel=5) for b in SP.published("mobilenetv2")["blocks"]],
                           "r": 96})
    archs.append(conv_se)
    X = SP.encode(archs)
    macs, params = SP.macs(X), SP.params(X)
    for i, arch in enumerate(archs):
        model = SP.build(arch)
        assert params[i] == sum(p.numel() for p in model.parameters())
        assert macs[i] == count_macs_params(model, SP.input_shape(arch))[0]


def test_vectorised_blocks_match_a_layer_by_layer_walk():
    rng = np.random.default_rng(1)
    X = SP.sample_encoded(rng, 200)
    X[:50, -1] = rng.integers(0, len(SP.dims[-1].choices), 50)  # other resolutions too
    X = SP.canonical(X)
    keys = SP.block_keys()
    for row, arch in zip(SP.block_matrix(X), SP.decode(X)):
        assert [str(keys[i]) for i in row if i >= 0] == reference_keys(arch)


def test_relative_form_and_canonical_form():
    mbv2 = SP.published("mobilenetv2")
    relative = {"blocks": [{k: v for k, v in b.items() if k not in ("layers", "filters")}
                           | {"layers_delta": 0, "filter_mult": 1.0} for b in mbv2["blocks"]], "r": 224}
    assert SP.key(relative) == SP.key(mbv2)
    # A vanished block's other choices do not change the network.
    a = json.loads(json.dumps(mbv2))
    a["blocks"][6].update(layers=0, op="conv", filters=400)
    b = json.loads(json.dumps(mbv2))
    b["blocks"][6].update(layers=0, op="mbconv3", kernel=5)
    assert SP.key(a) == SP.key(b)
    # A one-layer block that changes width has no identity to keep or drop.
    c = json.loads(json.dumps(mbv2))
    c["blocks"][0]["skip"] = "none"
    assert SP.key(c) == SP.key(mbv2)
    d = json.loads(json.dumps(mbv2))
    d["blocks"][1]["skip"] = "none"
    assert SP.key(d) != SP.key(mbv2)


def test_size_counts_distinct_networks():
    # On the grid no block's first layer can keep its width at stride 1, so blocks are independent.
    expected = 1
    for b, n in enumerate(BASE_LAYERS):
        widths = len(SP.dims[b * 6 + 5].searched)
        per = sum(1 if d == 0 else 16 * widths * (2 if d >= 2 else 1) for d in range(max(0, n - 1), n + 2))
        expected *= per
    assert SP.size() == expected
    X = SP.sample_encoded(np.random.default_rng(2), 300)
    assert (SP.canonical(X) == X).all()
    assert (SP.resolution(X) == 224).all()


@pytest.mark.parametrize("edit, field, allowed", [
    (lambda a: a["blocks"][2].update(op="dwconv"), "blocks[2].op", "conv, sepconv, mbconv3, mbconv6"),
    (lambda a: a["blocks"][0].update(kernel=7), "blocks[0].kernel", "3, 5"),
    (lambda a: a["blocks"][3].update(se=0.5), "blocks[3].se", "0.0, 0.25"),
    (lambda a: a["blocks"][3].update(skip="pool"), "blocks[3].skip", "none, identity"),
    (lambda a: a["blocks"][1].update(layers=5), "blocks[1].layers", "1, 2, 3"),
    (lambda a: a["blocks"][4].update(filters=100), "blocks[4].filters", "72, 96, 112, 120"),
    (lambda a: a["blocks"][4].pop("filters") and a["blocks"][4].update(filter_mult=2), "blocks[4].filter_mult",
     "0.75, 1.0, 1.25"),
    (lambda a: a["blocks"][5].pop("op"), "blocks[5].op", "missing"),
    (lambda a: a["blocks"][5].update(colour=1), "blocks[5]", "colour"),
    (lambda a: a["blocks"].pop(), "blocks", "7"),
    (lambda a: a.update(r=200), "r", "96, 128, 160, 192, 224"),
    (lambda a: a.pop("r"), "r", "missing"),
])
def test_invalid_arch_names_field_and_allowed_values(edit, field, allowed):
    arch = json.loads(json.dumps(SP.published("mnasnet-a1")))
    edit(arch)
    with pytest.raises(InvalidArchError) as err:
        SP.validate(arch)
    msg = str(err.value)
    assert msg.startswith(field) and allowed in msg and "\n" not in msg


def test_mnasnet_a1_pixel1_latency_near_published():
    from latency_predictors.predictor import LatencyPredictor

    ms = LatencyPredictor("pixel1", "mbconv").predict([SP.published("mnasnet-a1")])[0]
    assert abs(ms / 78.0 - 1) < 0.15, ms  # arXiv 1807.11626 Table 1: 78 ms


def test_cli_search_returns_an_arch_within_the_budget(tmp_path, nas_cli):
    code, out, err = nas_cli("search", "--space", "mbconv", "--target", "pixel", "--latency", "70ms",
                             "--budget", "400", "--seed", "0", "--out", tmp_path / "r", "--json")
    assert code == 0, err
    best = json.loads(out)["best"]
    assert best["latency_ms"]["pixel1"] <= 70
    SP.validate(best["arch"])
